"""Dynamic batching: merge concurrent requests into one forward pass, off the event loop.

The algorithm (one forward worker thread per replica, torch at one thread):

1. A request arrives (`submit`). If the worker is idle and nothing is queued, its rows are
   dispatched at once: a lone request never waits for a timer.
2. While a forward runs, new requests queue up (a bounded deque; full -> `QueueFull`, the
   server answers 429).
3. When the forward finishes, the worker takes what accumulated, oldest first, up to
   `max_batch_size` rows, concatenates it into one array and runs one forward pass; results
   are split back per request by row counts. If fewer than `max_batch_size` rows accumulated,
   the batch may wait until its oldest request is `max_delay_ms` old (never longer, and never
   when the queue was idle); `max_delay_ms=0` dispatches what is there immediately.
4. Deadlines: a queued request whose deadline passes is answered `DEADLINE` at that moment by
   a loop timer, and is skipped when the batch is formed, so it never takes a batch slot. A
   request whose deadline cannot be met given the current queue (estimated from the recent
   forward time) is refused on arrival.

All bookkeeping runs on the event loop thread, so it needs no locks; only `predict` runs on the
worker. Results travel back through `loop.call_soon_threadsafe`, one call per batch. Queue items
are plain `__slots__` objects with no reference cycles, so they die by reference counting and
never reach the cyclic garbage collector (whose full collections lengthen the tail latency).
A request with more rows than `max_batch_size` is run as a batch of its own.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from typing import Callable

import numpy as np


class QueueFull(Exception):
    """The queue holds `queue_size` requests already; retry later (HTTP 429)."""


class DeadlineUnmeetable(Exception):
    """The request's deadline cannot be met (HTTP 504)."""


DEADLINE = object()  # the result of a request whose deadline passed while it was queued


class _Item:
    __slots__ = ("rows", "n", "future", "deadline", "enqueued", "timer")

    def __init__(self, rows, future, deadline, enqueued):
        self.rows = rows
        self.n = len(rows)
        self.future = future
        self.deadline = deadline
        self.enqueued = enqueued
        self.timer = None


class Batcher:
    """Queue, batch and run `predict(np.ndarray[n, f]) -> list` for one replica.

    Use from the event loop thread only: `start(loop)`, then `await batcher.submit(rows,
    deadline)` per request; the awaited value is the request's list of predictions or `DEADLINE`.
    `observe(batch_rows, queue_wait_s_list, forward_s)` is called after each forward (metrics).
    """

    def __init__(self, predict: Callable[[np.ndarray], list], max_batch_size: int = 64,
                 max_delay_ms: float = 1.0, queue_size: int = 1024, test_delay_ms: float = 0.0,
                 observe: Callable | None = None):
        self._predict = predict
        self.max_batch_size = max_batch_size
        self.max_delay = max_delay_ms / 1000.0
        self.queue_size = queue_size
        self._test_delay = test_delay_ms / 1000.0
        self._observe = observe
        self._pending: deque[_Item] = deque()
        self.queued = 0  # live requests in _pending (expired ones are dropped from the count at once)
        self._queued_rows = 0
        self._busy = False
        self._fill_timer = None
        self._forward_s = 0.0  # moving average of one forward pass, for deadline admission
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # -- lifecycle ---------------------------------------------------------------------------
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._thread = threading.Thread(target=self._work, name="forward", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 5.0) -> bool:
        """Ask the worker to finish after its current batch; True if it has exited."""
        if self._thread is None:
            return True
        self._jobs.put(None)
        self._thread.join(timeout=timeout_s)
        done = not self._thread.is_alive()
        self._thread = None if done else self._thread
        return done

    @property
    def started(self) -> bool:
        return self._loop is not None

    @property
    def idle(self) -> bool:
        return not self._busy and self.queued == 0

    # -- event loop side ---------------------------------------------------------------------
    def submit(self, rows: np.ndarray, deadline: float) -> asyncio.Future:
        """Queue `rows` (float32 [n, f]); `deadline` is a time.monotonic() value."""
        loop = self._loop
        now = time.monotonic()
        future = loop.create_future()
        item = _Item(rows, future, deadline, now)
        if not self._busy and self.queued == 0:
            self._run([item], now)
            return future
        if self.queued >= self.queue_size:
            raise QueueFull()
        # Estimated wait: the forward in progress plus one forward per full batch ahead.
        ahead = 1 + self._queued_rows // self.max_batch_size
        if now + ahead * self._forward_s > deadline:
            raise DeadlineUnmeetable()
        item.timer = loop.call_at(loop.time() + (deadline - now), self._expire, item)
        self._pending.append(item)
        self.queued += 1
        self._queued_rows += item.n
        if not self._busy and self._queued_rows >= self.max_batch_size:
            self._dispatch()
        return future

    def _expire(self, item: _Item) -> None:
        if not item.future.done():
            item.future.set_result(DEADLINE)
        if item.timer is not None:
            item.timer = None
            self.queued -= 1
            self._queued_rows -= item.n

    def _dispatch(self) -> None:
        """Form one batch from the queue (worker idle) and hand it to the worker."""
        if self._fill_timer is not None:
            self._fill_timer.cancel()
            self._fill_timer = None
        now = time.monotonic()
        batch: list[_Item] = []
        rows = 0
        pending = self._pending
        while pending:
            item = pending[0]
            if item.timer is None:  # already answered DEADLINE and uncounted
                pending.popleft()
                continue
            if item.future.done():  # the client went away: drop it without running it
                pending.popleft()
                self._unqueue(item)
                continue
            if batch and rows + item.n > self.max_batch_size:
                break
            pending.popleft()
            self._unqueue(item)
            batch.append(item)
            rows += item.n
        if batch:
            self._run(batch, now)

    def _unqueue(self, item: _Item) -> None:
        item.timer.cancel()
        item.timer = None
        self.queued -= 1
        self._queued_rows -= item.n

    def _run(self, batch: list[_Item], now: float) -> None:
        self._busy = True
        x = batch[0].rows if len(batch) == 1 else np.concatenate([it.rows for it in batch])
        self._jobs.put((x, batch, now))

    def _complete(self, batch: list[_Item], out, error, started: float, forward_s: float) -> None:
        self._busy = False
        self._forward_s = forward_s if self._forward_s == 0.0 else 0.8 * self._forward_s + 0.2 * forward_s
        if error is not None:
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(error)
        else:
            offset = 0
            for item in batch:
                if not item.future.done():
                    item.future.set_result(out[offset:offset + item.n] if len(batch) > 1 else out)
                offset += item.n
        if self._observe is not None:
            self._observe(sum(it.n for it in batch), [started - it.enqueued for it in batch], forward_s)
        if self.queued:
            self._schedule()

    def _schedule(self) -> None:
        """Worker free and requests queued: dispatch now, or wait for the batch to fill."""
        if self._queued_rows >= self.max_batch_size or self.max_delay <= 0:
            self._dispatch()
            return
        oldest = next((it for it in self._pending if it.timer is not None), None)
        if oldest is None:
            return
        wait = oldest.enqueued + self.max_delay - time.monotonic()
        if wait <= 0:
            self._dispatch()
        elif self._fill_timer is None:
            self._fill_timer = self._loop.call_later(wait, self._dispatch)

    # -- worker thread -----------------------------------------------------------------------
    def _work(self) -> None:
        import torch

        torch.set_num_threads(1)  # one core per replica: two threads fight over 2 cores
        predict, delay, loop = self._predict, self._test_delay, self._loop
        while True:
            job = self._jobs.get()
            if job is None:
                return
            x, batch, queued_at = job
            t0 = time.monotonic()
            out, error = None, None
            try:
                if delay:
                    time.sleep(delay)
                out = predict(x)
            except Exception as e:  # an internal error: the batch's requests get 500
                error = e
            if loop.is_closed():
                return
            loop.call_soon_threadsafe(self._complete, batch, out, error, t0, time.monotonic() - t0)
