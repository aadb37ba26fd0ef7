"""HAProxy's config for a local stack: jinja2 over templates/haproxy.cfg.j2.

The config holds no servers: the fleet manager adds and removes replicas through HAProxy's
runtime API (runtime.fleet.haproxy), with the same per-server options rendered here as a comment.
"""

from __future__ import annotations

from runtime.fleet.config import HealthCheck
from runtime.fleet.haproxy import server_options

LOOPBACK = "127.0.0.1"
CONNECT_TIMEOUT_MS = 500


def render_config(*, stack: str, port: int, socket_path: str, algorithm: str, health: HealthCheck,
                  server_timeout_s: float = 30.0, host: str = LOOPBACK) -> str:
    """The HAProxy config text for one stack; `algorithm` is the spec's name for it."""
    import jinja2

    from infra.assets import template_loader
    from infra.spec.resolve import HAPROXY_ALGORITHMS

    if host != LOOPBACK:
        raise ValueError("the local target listens on 127.0.0.1 only")
    env = jinja2.Environment(loader=template_loader(), undefined=jinja2.StrictUndefined,
                             keep_trailing_newline=True)
    return env.get_template("haproxy.cfg.j2").render(
        stack=stack, port=port, host=host, socket=socket_path, algorithm=algorithm,
        balance=HAPROXY_ALGORITHMS[algorithm], health=health, connect_timeout_ms=CONNECT_TIMEOUT_MS,
        server_timeout_s=int(server_timeout_s), server_options=server_options(health, 1).replace("weight 1", "weight W"),
    )
