"""Progress on rank 0: step, loss, samples/s and ETA, as text or JSON lines (`--json-logs`)."""

from __future__ import annotations

import json
import sys
import time


class Progress:
    def __init__(self, enabled=True, json_logs=False, every_s=2.0, total_steps=None, stream=None):
        self.enabled, self.json_logs, self.every_s = enabled, json_logs, every_s
        self.total_steps = total_steps
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self.samples = 0
        self._last = 0.0
        self._steps0 = None

    def event(self, name, **fields):
        if not self.enabled:
            return
        if self.json_logs:
            print(json.dumps({"event": name, "time": time.time(), **fields}), file=self.stream, flush=True)
        else:
            extra = " ".join(f"{k}={v}" for k, v in fields.items())
            print(f"[train] {name} {extra}".rstrip(), file=self.stream, flush=True)

    def step(self, step, loss, samples, force=False):
        self.samples += samples
        if self._steps0 is None:
            self._steps0 = step - 1
        now = time.perf_counter()
        if not self.enabled or (not force and now - self._last < self.every_s):
            return
        self._last = now
        elapsed = now - self.t0
        rate = self.samples / elapsed if elapsed > 0 else 0.0
        eta = None
        if self.total_steps:
            done = step - self._steps0
            eta = (self.total_steps - step) * elapsed / max(done, 1)
        if self.json_logs:
            print(json.dumps({"event": "step", "step": step, "loss": loss, "samples_per_s": round(rate, 1),
                              "eta_s": None if eta is None else round(eta, 1)}), file=self.stream, flush=True)
        else:
            eta_s = "" if eta is None else f" eta {eta:.0f}s"
            total = f"/{self.total_steps}" if self.total_steps else ""
            print(f"[train] step {step}{total} loss {loss:.6f} {rate:,.0f} samples/s{eta_s}", file=self.stream, flush=True)
