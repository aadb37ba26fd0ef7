"""A rank's run lifecycle: stop requests, RNG state, run events, fault injection, outputs.

This is the lowest layer of a training run: the runners (`classifier`, `clustering`,
`pipeline`, `tasks`) import it, and it imports none of them.

- `Stopper` turns a stop request (SIGTERM, a termination notice) into one step that all ranks
  stop at: the flag is all-reduced asynchronously every `STOP_SYNC_EVERY` steps, so asking
  costs no synchronous collective on the step path.
- `events` appends machine-readable run events to OUT/events.jsonl (restarts are timed from
  them); `maybe_fault` is the test hook that SIGKILLs a chosen rank at a chosen step.
- `write_outputs` writes the model artifact and metrics.json (rank 0), whole or not at all.
"""

from __future__ import annotations

import json
import os
import random
import signal
import time

import numpy as np
import torch
import torch.distributed as dist

from runtime.model import save_artifact
from runtime.store import write_json
from runtime.train import dist as tdist

STOP_SYNC_EVERY = 8  # steps between the (asynchronous) all-reduces that agree on stopping
# Figures of metrics.json that also go into the model artifact's metadata.
ARTIFACT_METRICS = ("final_loss", "accuracy", "inertia")


class Stopped(Exception):
    """Raised inside a loop that cannot return early (k-means' callback) at the agreed stop step."""

    def __init__(self, step):
        super().__init__(step)
        self.step = step


class Stopper:
    """A stop request (SIGTERM, termination notice) turned into one step all ranks stop at."""

    def __init__(self, ctx):
        self.ctx, self.requested, self.reason = ctx, False, None
        self._handle, self._flag = None, None

    def request(self, reason):
        self.requested, self.reason = True, self.reason or reason

    def should_stop(self, step, force=False):
        if not self.ctx.distributed:
            return self.requested
        if not force and step % STOP_SYNC_EVERY:
            return False
        stop = False
        if self._handle is not None:
            self._handle.wait()
            stop = bool(self._flag.item() > 0)
            self._handle = None
        if force:
            flag = torch.tensor([1.0 if self.requested else 0.0], device=self.ctx.device)
            dist.all_reduce(flag)
            return stop or bool(flag.item() > 0)
        if not stop:
            self._flag = torch.tensor([1.0 if self.requested else 0.0], device=self.ctx.device)
            self._handle = dist.all_reduce(self._flag, async_op=True)
        return stop

    def drain(self):
        if self._handle is not None:
            self._handle.wait()
            self._handle = None


def rng_state():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def set_rng(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def restart_count() -> int:
    """How many times the elastic agent has restarted this group (0 on the first attempt)."""
    return int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))


def events(cfg, ctx, name, **fields):
    """Machine-readable run events in OUT/events.jsonl (rank 0, and faults): restarts are timed from them."""
    if not cfg.out:
        return
    os.makedirs(cfg.out, exist_ok=True)
    with open(os.path.join(cfg.out, "events.jsonl"), "a") as f:
        f.write(json.dumps({"event": name, "time": time.time(), "rank": ctx.rank,
                            "restart": restart_count(), **fields}) + "\n")


def maybe_fault(cfg, ctx, step):
    """Test hook: GPUFLEET_TRAIN_FAULT="RANK:STEP" SIGKILLs that rank at that step, first attempt only."""
    spec = os.environ.get("GPUFLEET_TRAIN_FAULT")
    if not spec or restart_count() != 0:
        return
    r, s = (int(v) for v in spec.split(":"))
    if ctx.rank == r and step == s:
        events(cfg, ctx, "kill", step=step)
        os.kill(os.getpid(), signal.SIGKILL)


def write_outputs(cfg, module, metrics, meta):
    """The model artifact (float32, on CPU) and OUT/metrics.json; rank 0 calls it once, at the end."""
    module = module.to(device="cpu", dtype=torch.float32)
    save_artifact(cfg.out, cfg.workload, module,
                  {**meta, "metrics": {k: v for k, v in metrics.items() if k in ARTIFACT_METRICS}})
    write_json(os.path.join(cfg.out, "metrics.json"), metrics)
    events(cfg, tdist.Context(), "finish", step=metrics["steps"])
