"""Checkpoints: a run's whole state, committed atomically, to a local directory, S3 or GCS.

Layout under the checkpoint root (a directory, `s3://bucket/prefix` or `gs://bucket/prefix`)::

    step-000000120/state.pt     torch.save of {model, optimizer, data cursor, rng, step, ...}
    step-000000120/COMMIT       {"step": 120, "xxh3_64": ..., "bytes": ...}, written last

A checkpoint exists only once its COMMIT marker does (data first, then the marker), so a save
cut short by a kill is invisible. `load_latest` walks committed checkpoints newest first and
verifies the checksum and that the state unpickles; a corrupt one is skipped with a warning
and the previous one used. After each commit only the newest `keep` checkpoints are kept.

The state is replicated across data-parallel ranks (DDP keeps replicas equal and the data
cursor is global), so rank 0 alone writes it: no collective runs during a save, which is what
makes the asynchronous save safe (a save that runs collectives on DDP's process group can
deadlock). Asynchronous save copies the tensors into staging buffers kept between saves, then
serializes and writes them in a background thread at the lowest CPU priority, paced over part
of the checkpoint interval; the training loop only waits, at `fence()` before its optimizer
step, for a copy that has not finished. A new save waits for the previous one.
Checksums are xxh3-64 (a 200 MB state hashes in ~30 ms; sha256 would take ~10x longer).
A checkpoint taken with W ranks resumes on any W': nothing in it depends on the world size.
Storage goes through runtime.store, whose endpoint rules (the `endpoint` argument, else
`GPUFLEET_S3_ENDPOINT`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` for S3; `GPUFLEET_GCS_ENDPOINT`,
`STORAGE_EMULATOR_HOST` for GCS) every object-store user shares.
"""

from __future__ import annotations

import io
import json
import os
import sys
import threading
import time

import torch
import xxhash

from runtime import store

COMMIT = "COMMIT"
STATE = "state.pt"


def _name(step):
    return f"step-{int(step):09d}"


def _snapshot(obj, staging, devices, path=()):
    """A copy of the tensors in `obj`, so training may go on while it is written.

    Tensors are copied into `staging` (path -> tensor), buffers kept from the previous save
    when the shape and dtype still match. Copying 200 MB into fresh memory costs ~90 ms, almost
    all of it page faults; into warm buffers ~15 ms, which keeps the copy inside the forward
    and backward passes it overlaps. GPU tensors are staged in pinned host memory (no second
    copy of the state on the GPU, and the device-to-host copies run asynchronously); their
    devices are added to `devices`, which the caller synchronizes before it declares the copy done.
    """
    if isinstance(obj, torch.Tensor):
        buf = staging.get(path)
        if buf is None or buf.shape != obj.shape or buf.dtype != obj.dtype:
            buf = staging[path] = torch.empty(obj.shape, dtype=obj.dtype, device="cpu",
                                              pin_memory=obj.is_cuda)
        if obj.is_cuda:
            devices.add(obj.device)
        return buf.copy_(obj.detach(), non_blocking=obj.is_cuda)
    if isinstance(obj, dict):
        return {k: _snapshot(v, staging, devices, path + (k,)) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_snapshot(v, staging, devices, path + (i,)) for i, v in enumerate(obj))
    return obj


def _digest(data) -> str:
    return xxhash.xxh3_64_hexdigest(data)


class _HashingWriter:
    """A file object that hashes what passes through it (torch.save writes straight to disk).

    With a `budget` (seconds) and the `expected` byte count it paces itself: records are
    written in chunks, and after each chunk it sleeps until the byte count is on schedule to
    finish in `budget`. A background save then takes a thin, steady share of memory bandwidth
    and CPU instead of a burst that slows the training steps it overlaps. With `sync_every`,
    written data is flushed to disk every that many bytes, so the kernel's writeback is spread
    the same way instead of landing in one fsync at the end.
    """

    CHUNK = 4 << 20

    def __init__(self, f, budget=0.0, expected=0, sync_every=0):
        self.f, self.h, self.n = f, xxhash.xxh3_64(), 0
        self.budget, self.expected, self.sync_every = budget, expected, sync_every
        self._start, self._synced = time.perf_counter(), 0

    def write(self, b):
        mv = memoryview(b).cast("B")
        for i in range(0, len(mv), self.CHUNK):
            chunk = mv[i:i + self.CHUNK]
            self.h.update(chunk)
            self.f.write(chunk)
            self.n += len(chunk)
            if self.sync_every and self.n - self._synced >= self.sync_every:
                self.f.flush()
                os.fdatasync(self.f.fileno())
                self._synced = self.n
            if self.budget and self.expected:
                due = self._start + self.budget * min(self.n / self.expected, 1.0)
                ahead = due - time.perf_counter()
                if ahead > 0:
                    time.sleep(ahead)
        return len(mv)

    def flush(self):
        self.f.flush()


def _lower_priority():
    """The writer thread yields the CPU to training (Linux: a thread is a task with its own nice value)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)
    except (AttributeError, OSError):
        pass


class Checkpointer:
    """Save and find checkpoints under `root`; `writer` is True on the rank that writes (rank 0).

    Asynchronous save has two phases in a background thread: copying the tensors, then writing.
    Training may keep reading the parameters (forward, backward) during the copy, but must call
    `fence()` before anything mutates them (the optimizer step): that is the only stall it sees,
    and it is zero when the copy finishes within the forward and backward passes.

    The write is paced to take `pace` of the time since the previous save (the checkpoint
    interval as training runs it), so it ends well before the next save is due while touching
    each step only lightly; 0 writes as fast as the CPU allows. The first save, with no interval
    yet, is not paced. Measured on two busy cores: a burst write slows the 2-3 steps it overlaps
    by ~11%; paced over half the interval, the ~5 steps it overlaps by ~3-8%. The price is
    durability: a checkpoint commits up to `pace` x interval after its step, so a rank killed
    in that window resumes from the one before.
    """

    SYNC_EVERY = 32 << 20

    def __init__(self, root, keep=3, writer=True, async_save=True, pace=0.5, endpoint=None, log=None):
        self.root, self.keep, self.writer, self.async_save = root, keep, writer, async_save
        self.pace = pace
        self._last_save = None  # when the previous save began: its interval sets the write budget
        self.loc, self.endpoint = (store.parse(root) if root else None), endpoint
        self.log = log or (lambda msg: print(msg, file=sys.stderr, flush=True))
        self._thread = None
        self._copied = None
        self._staging = {}  # reused by each asynchronous save; the previous save has finished with it
        self._error = None
        self.last_stall_s = 0.0

    def save(self, step, state, block=False):
        """Checkpoint `state` at `step`; returns the seconds the caller was stalled."""
        if not self.writer or self.loc is None:
            return 0.0
        t0 = time.perf_counter()
        self.wait()
        budget = self.pace * (t0 - self._last_save) if self._last_save is not None else 0.0
        self._last_save = t0
        if self.async_save and not block:
            self._copied = threading.Event()
            self._thread = threading.Thread(target=self._copy_and_write, args=(step, state, self._copied, budget),
                                            daemon=True, name="checkpoint-writer")
            self._thread.start()
        else:
            self._write(step, state)
            self.wait()
        self.last_stall_s = time.perf_counter() - t0
        return self.last_stall_s

    def fence(self):
        """Wait until an asynchronous save has copied the state; returns the seconds waited."""
        if self._copied is None or self._copied.is_set():
            return 0.0
        t0 = time.perf_counter()
        self._copied.wait()
        return time.perf_counter() - t0

    def _copy_and_write(self, step, state, copied, budget):
        try:
            devices = set()
            snap = _snapshot(state, self._staging, devices)
            for device in devices:
                torch.cuda.synchronize(device)  # the non-blocking device-to-host copies have landed
        finally:
            copied.set()
        _lower_priority()
        self._write(step, snap, budget, sum(b.nbytes for b in self._staging.values()))

    def busy(self):
        """A background save is running."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self):
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def _write(self, step, state, budget=0.0, expected=0):
        try:
            name = _name(step)
            data = self.loc.join(name, STATE)
            if not data.is_remote:  # streamed to disk: no second copy of the state in memory
                os.makedirs(os.path.dirname(data.key), exist_ok=True)
                with store.open_atomic(data.key, "wb", fsync=True) as f:
                    w = _HashingWriter(f, budget, expected, sync_every=self.SYNC_EVERY if budget else 0)
                    torch.save(state, w)
            else:
                w = _HashingWriter(io.BytesIO(), budget, expected)
                torch.save(state, w)
                store.put_bytes(data, w.f.getvalue(), self.endpoint)
            marker = {"step": int(step), "xxh3_64": w.h.hexdigest(), "bytes": w.n, "time": time.time()}
            store.put_bytes(self.loc.join(name, COMMIT), json.dumps(marker).encode(), self.endpoint)
            self._prune(step)
        except BaseException as e:  # surfaced to the training loop by wait()
            self._error = e

    def _steps(self):
        """(committed, pending) checkpoint names, oldest first; pending ones have no COMMIT marker."""
        keys = store.list_keys(self.loc, self.endpoint)
        names = {k.split("/")[0] for k in keys if k.startswith("step-")}
        committed = {k.split("/")[0] for k in keys if k.startswith("step-") and k.endswith("/" + COMMIT)}
        return sorted(committed), sorted(names - committed)

    def _delete(self, name):
        store.delete_tree(self.loc.join(name), self.endpoint, first=(COMMIT,))

    def _prune(self, step):
        committed, pending = self._steps()
        for name in committed[:-self.keep]:
            self._delete(name)
        for name in pending:  # interrupted saves older than the one just committed
            if name < _name(step):
                self._delete(name)

    def load_latest(self):
        """The newest valid checkpoint's state (dict), or None; corrupt ones are skipped with a warning."""
        if self.loc is None:
            return None
        committed, _ = self._steps()
        for name in reversed(committed):
            try:
                marker = json.loads(store.get_bytes(self.loc.join(name, COMMIT), self.endpoint))
                data = store.get_bytes(self.loc.join(name, STATE), self.endpoint)
                if len(data) != marker["bytes"] or _digest(data) != marker["xxh3_64"]:
                    raise ValueError("checksum mismatch")
                state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=False)
                if not isinstance(state, dict) or "step" not in state:
                    raise ValueError("not a training state")
                return state
            except Exception as e:  # noqa: BLE001 - any unreadable checkpoint is skipped
                self.log(f"warning: checkpoint {self.root}/{name} is corrupt ({type(e).__name__}: {e}); "
                         "using the previous one")
        return None
