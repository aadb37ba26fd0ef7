"""The serve role of an instance: one replica plus the agent that scales and drains it.

`gpufleet run --config` calls `run_from_config` with the resolved runtime config. The agent
runs as a separate process so a stuck model cannot stop metrics or the lifecycle hook; it
drains the replica through the replica's pid file (SIGTERM), then completes the hook.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from runtime import store
from runtime.errors import BadInput
from runtime.serve.config import ServeConfig


def serve_config(config: dict) -> ServeConfig:
    serve = dict(config["serve"])
    if not serve.get("model"):
        bucket = config["artifacts"].get("bucket")
        if not bucket:
            env = config["artifacts"].get("bucket_env")
            raise BadInput(f"serve.model: not set, and no artifacts bucket in ${env} to find the latest model in")
        serve["model"] = store.bucket_url(config["artifacts"], config["artifacts"]["models"], config.get("cloud"))
    return ServeConfig.from_dict(serve)


def agent_settings(config: dict) -> dict:
    """The agent's section, with the runtime config's `cloud` and, on GCP, `gcp.project`
    (settings the section itself gives win)."""
    agent = dict(config.get("agent") or {})
    agent.setdefault("cloud", config.get("cloud") or "aws")
    project = (config.get("gcp") or {}).get("project")
    if agent["cloud"] == "gcp" and project:
        agent.setdefault("project", project)
    return agent


def run_from_config(config: dict) -> int:
    from runtime.serve.server import run_replica

    cfg = serve_config(config)
    workdir = Path(tempfile.mkdtemp(prefix="gpufleet-serve-"))
    pid_file = workdir / "replica.pid"
    agent_config = workdir / "agent.json"
    agent_config.write_text(json.dumps({"agent": agent_settings(config)}))
    agent = subprocess.Popen([
        sys.executable, "-m", "runtime.agent", "--config", str(agent_config),
        "--server-url", f"http://127.0.0.1:{cfg.port}", "--pid-file", str(pid_file),
    ])
    try:
        return run_replica(cfg, pid_file=str(pid_file))
    finally:
        if agent.poll() is None:
            os.kill(agent.pid, signal.SIGTERM)
            try:
                agent.wait(timeout=10)
            except subprocess.TimeoutExpired:
                agent.kill()
