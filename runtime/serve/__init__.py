"""Model serving: one replica = one process serving a model artifact over HTTP.

app.py (ASGI app: routes, validation, states), batcher.py (dynamic batching, deadlines,
backpressure), server.py (uvicorn, startup, drain on SIGTERM), metrics.py (Prometheus),
config.py (`ServeConfig`), cli.py (`gpufleet serve`).
"""

from runtime.serve.config import ServeConfig

__all__ = ["ServeConfig"]
