"""The dynamic batcher on its own: immediate dispatch, merging, limits and deadlines."""

from __future__ import annotations

import asyncio
import threading
import time

import numpy as np
import pytest

from runtime.serve.batcher import DEADLINE, Batcher, DeadlineUnmeetable, QueueFull


class GatedModel:
    """predict() records batch sizes; when `gate` is set, each call waits for it to open."""

    def __init__(self, gated=False):
        self.batches = []
        self.gate = threading.Event()
        if not gated:
            self.gate.set()
        self.entered = threading.Event()

    def predict(self, x):
        self.batches.append(len(x))
        self.entered.set()
        self.gate.wait(5)
        return x[:, 0].tolist()


def rows(n, value=1.0):
    return np.full((n, 2), value, dtype=np.float32)


def run(coro):
    return asyncio.run(coro)


def test_lone_request_does_not_wait_for_the_timer():
    async def go():
        model = GatedModel()
        b = Batcher(model.predict, max_batch_size=64, max_delay_ms=500)
        b.start(asyncio.get_running_loop())
        t0 = time.monotonic()
        out = await b.submit(rows(1, 3.0), time.monotonic() + 5)
        b.stop()
        return out, time.monotonic() - t0

    out, took = run(go())
    assert out == [3.0] and took < 0.1  # the 500 ms timer was not waited for


def test_requests_arriving_during_a_forward_are_merged_and_split_back():
    async def go():
        model = GatedModel(gated=True)
        b = Batcher(model.predict, max_batch_size=8, max_delay_ms=0)
        b.start(asyncio.get_running_loop())
        first = b.submit(rows(1, 0.0), time.monotonic() + 5)
        await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 5)
        rest = [b.submit(rows(n, float(i + 1)), time.monotonic() + 5) for i, n in enumerate((1, 2, 3, 4))]
        assert b.queued == 4
        model.gate.set()
        results = [await first] + [await f for f in rest]
        b.stop()
        return model.batches, results

    batches, results = run(go())
    # 1 alone, then 1+2+3 = 6 rows (adding 4 would pass 8), then the 4 rows
    assert batches == [1, 6, 4]
    assert results == [[0.0], [1.0], [2.0, 2.0], [3.0] * 3, [4.0] * 4]


def test_batching_off_runs_one_request_per_forward():
    async def go():
        model = GatedModel(gated=True)
        b = Batcher(model.predict, max_batch_size=1, max_delay_ms=0)
        b.start(asyncio.get_running_loop())
        futures = [b.submit(rows(1), time.monotonic() + 5) for _ in range(4)]
        model.gate.set()
        await asyncio.gather(*futures)
        b.stop()
        return model.batches

    assert run(go()) == [1, 1, 1, 1]


def test_full_queue_and_unmeetable_deadline_are_refused():
    async def go():
        model = GatedModel(gated=True)
        b = Batcher(model.predict, max_batch_size=4, max_delay_ms=0, queue_size=2)
        b.start(asyncio.get_running_loop())
        running = b.submit(rows(1), time.monotonic() + 5)
        queued = [b.submit(rows(1), time.monotonic() + 5) for _ in range(2)]
        with pytest.raises(QueueFull):
            b.submit(rows(1), time.monotonic() + 5)
        b._forward_s = 1.0  # pretend forwards take a second: a 10 ms deadline cannot be met
        b.queue_size = 10
        with pytest.raises(DeadlineUnmeetable):
            b.submit(rows(1), time.monotonic() + 0.01)
        model.gate.set()
        await asyncio.gather(running, *queued)
        b.stop()

    run(go())


def test_expired_request_is_answered_at_its_deadline_and_never_run():
    async def go():
        model = GatedModel(gated=True)
        b = Batcher(model.predict, max_batch_size=64, max_delay_ms=0)
        b.start(asyncio.get_running_loop())
        running = b.submit(rows(1, 1.0), time.monotonic() + 5)
        t0 = time.monotonic()
        late = b.submit(rows(1, 9.0), time.monotonic() + 0.05)
        ok = b.submit(rows(1, 2.0), time.monotonic() + 5)
        assert await late is DEADLINE
        waited = time.monotonic() - t0
        assert b.queued == 1
        model.gate.set()
        results = await running, await ok
        b.stop()
        return model.batches, results, waited

    batches, results, waited = run(go())
    assert waited < 1.0
    assert batches == [1, 1] and results == ([1.0], [2.0])  # the expired row took no batch slot


def test_batch_waits_at_most_max_delay_to_fill():
    async def go():
        model = GatedModel(gated=True)
        b = Batcher(model.predict, max_batch_size=64, max_delay_ms=30)
        b.start(asyncio.get_running_loop())
        first = b.submit(rows(1), time.monotonic() + 5)
        await asyncio.get_running_loop().run_in_executor(None, model.entered.wait, 5)
        second = b.submit(rows(1), time.monotonic() + 5)
        model.gate.set()
        await first
        await asyncio.sleep(0.005)
        third = b.submit(rows(1), time.monotonic() + 5)  # joins the waiting batch
        await asyncio.gather(second, third)
        b.stop()
        return model.batches

    assert run(go()) == [1, 2]
