"""Starting the ranks: in this process (one rank, no restarts) or through PyTorch's elastic agent.

The elastic agent (torchrun's machinery, `torch.distributed.launcher.api.elastic_launch`) starts
`nproc` workers per node running `python -m runtime.train.worker CONFIG.json`, watches them,
and on a failure (a SIGKILLed rank) stops the group and starts it again, up to `max_restarts`
times; the workers resume from the latest checkpoint by themselves.

`TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1`: by default the agent shares one rendezvous store across
restarts and new workers can read a dead worker's gloo address; a fresh store per round made
every restart succeed here. Locally everything binds to 127.0.0.1.
`GPUFLEET_TRAIN_START_METHOD=spawn` starts ranks in fresh interpreters instead of forking them.
"""

from __future__ import annotations

import os
import socket
import sys
import uuid
from dataclasses import asdict

from runtime.errors import EXIT_STOPPED, OperationFailed
from runtime.store import write_json
from runtime.train.config import TrainConfig


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def local_gpus() -> int:
    """How many GPUs this machine's ranks can use: 0 with a CPU build of torch."""
    import torch

    return torch.cuda.device_count() if torch.backends.cuda.is_built() else 0


def write_config(cfg: TrainConfig) -> str:
    os.makedirs(cfg.out, exist_ok=True)
    path = os.path.join(cfg.out, ".train-config.json")
    write_json(path, asdict(cfg))
    return path


def worker_env(local=True):
    env = {"TORCH_DISABLE_SHARE_RDZV_TCP_STORE": "1", "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    if local:
        env["GLOO_SOCKET_IFNAME"] = os.environ.get("GLOO_SOCKET_IFNAME", "lo")
    return env


def launch(cfg: TrainConfig, min_nodes=1, max_nodes=1, rdzv_endpoint=None, local=True, run_id=None,
           local_addr=None, is_host=None) -> int:
    """Run `cfg` on this node's ranks; returns the exit code (0: the run finished)."""
    if cfg.nproc == 1 and cfg.max_restarts == 0 and max_nodes == 1:
        from runtime.train.worker import run
        return run(cfg)
    from torch.distributed.elastic.multiprocessing.api import SignalException
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    path = write_config(cfg)
    os.environ.update(worker_env(local))
    # On a machine without GPUs, ranks are forked from this process with torch, the worker
    # and DDP's lazy imports (torch._dynamo, ~1 s) already loaded, so a restart after a
    # killed rank does not pay for a fresh interpreter: most of the time from kill to the
    # first resumed step was imports. With a GPU, ranks are spawned: once this process has
    # asked CUDA anything (even how many devices there are), a forked rank cannot use it
    # ("Cannot re-initialize CUDA in forked subprocess", seen on an H200).
    from runtime.train import worker

    worker.preload()
    start_method = os.environ.get("GPUFLEET_TRAIN_START_METHOD") or ("spawn" if local_gpus() else "fork")
    lc = LaunchConfig(
        min_nodes=min_nodes, max_nodes=max_nodes, nproc_per_node=cfg.nproc,
        run_id=run_id or f"gpufleet-{uuid.uuid4().hex[:8]}",
        rdzv_backend="c10d", rdzv_endpoint=rdzv_endpoint or f"127.0.0.1:{free_port()}",
        rdzv_configs={"is_host": True if local else bool(is_host)}, max_restarts=cfg.max_restarts,
        monitor_interval=0.05, local_addr=local_addr or ("127.0.0.1" if local else None),
        start_method=start_method,
    )
    stopped = os.path.join(os.path.dirname(path), worker.STOPPED_MARKER)
    if os.path.exists(stopped):
        os.remove(stopped)
    try:
        elastic_launch(lc, worker.entry)(path)
    except SignalException as e:
        # SIGTERM/SIGINT to the launcher: the agent passed it on, the ranks checkpointed and stopped.
        print(f"[train] stopped by signal {e.sigval.name}; the next run resumes from the last checkpoint",
              file=sys.stderr, flush=True)
        return 128 + int(e.sigval)
    except ChildFailedError as e:
        failures = "; ".join(f"rank {r}: exit {f.exitcode}" for r, f in e.failures.items())
        raise OperationFailed(f"training failed after {cfg.max_restarts} restart(s) ({failures})") from None
    if os.path.exists(stopped):  # the ranks stopped on a termination notice, after the checkpoint
        print("[train] stopped on request after a checkpoint; the next run resumes from it", file=sys.stderr, flush=True)
        return EXIT_STOPPED
    return 0
