"""Peer model servers for bench/serve_bench.py, each serving the same artifact and API.

    python bench/serve_peers.py {fastapi|litserve|ray} MODEL_DIR PORT

Every peer answers `POST /v1/predict {"instances": [[...]]}` with `{"predictions": [...]}` using
runtime.model.load_artifact, so only the serving stack differs. torch runs at one thread in each.
- fastapi: the plain baseline: FastAPI + uvicorn (uvloop, httptools), a pydantic body model,
  predict inline in an async endpoint, no batching.
- litserve: LitServe with its batching (max 64 rows, 1 ms batch timeout), one CPU worker.
- ray: Ray Serve, one replica, `@serve.batch` (max 64, 1 ms). Ray binds every interface, so the
  bench runs it only inside a private network namespace.
"""

import os
import sys

os.environ.setdefault("OMP_NUM_THREADS", "1")
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

BATCH, TIMEOUT_S = 64, 0.001


def _load(model_dir):
    import torch

    from runtime.model import load_artifact

    torch.set_num_threads(1)
    return load_artifact(model_dir)


def run_fastapi(model_dir: str, port: int) -> None:
    import numpy as np
    import uvicorn
    from fastapi import FastAPI
    from pydantic import BaseModel

    predictor = _load(model_dir)
    app = FastAPI()

    class Body(BaseModel):
        instances: list[list[float]]

    globals()["Body"] = Body  # FastAPI resolves the annotation by name

    @app.post("/v1/predict")
    async def predict(body: Body):
        return {"predictions": predictor.predict(np.asarray(body.instances, dtype=np.float32))}

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False,
                loop="uvloop", http="httptools")


def run_litserve(model_dir: str, port: int) -> None:
    import litserve as ls

    os.environ["GPUFLEET_PEER_MODEL"] = model_dir  # read by LitModelAPI.setup in the worker process
    server = ls.LitServer(_lit_api_class()(max_batch_size=BATCH, batch_timeout=TIMEOUT_S, api_path="/v1/predict"),
                          accelerator="cpu", workers_per_device=1)
    server.run(host="127.0.0.1", port=port, generate_client_file=False, num_api_servers=1, log_level="warning")


def _lit_api_class():
    """LitServe pickles the API into a spawned worker: the class must live at module level."""
    return LitModelAPI


try:
    import litserve as _ls
    import numpy as _np

    class LitModelAPI(_ls.LitAPI):
        def setup(self, device):
            self.predictor = _load(os.environ["GPUFLEET_PEER_MODEL"])

        def decode_request(self, request):
            return request["instances"][0]

        def batch(self, inputs):
            return _np.asarray(inputs, dtype=_np.float32)

        def predict(self, x):
            return self.predictor.predict(x if x.ndim == 2 else x[None, :])

        def unbatch(self, output):
            return list(output)

        def encode_response(self, output):
            return {"predictions": [output]}
except ImportError:  # the bench reports litserve as left out
    pass


def run_ray(model_dir: str, port: int) -> None:
    import time

    import numpy as np
    import ray
    from ray import serve
    from starlette.requests import Request

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    serve.start(http_options={"host": "127.0.0.1", "port": port})

    @serve.deployment(num_replicas=1, max_ongoing_requests=256)
    class Model:
        def __init__(self):
            self.predictor = _load(model_dir)

        @serve.batch(max_batch_size=BATCH, batch_wait_timeout_s=TIMEOUT_S)
        async def run(self, rows: list):
            return self.predictor.predict(np.asarray(rows, dtype=np.float32))

        async def __call__(self, request: Request):
            body = await request.json()
            return {"predictions": [await self.run(body["instances"][0])]}

    serve.run(Model.bind(), route_prefix="/v1/predict")
    print("ray serve: ready", flush=True)
    while True:
        time.sleep(3600)


if __name__ == "__main__":
    kind, model, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    {"fastapi": run_fastapi, "litserve": run_litserve, "ray": run_ray}[kind](model, port)
