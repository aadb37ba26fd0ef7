"""Elastic deterministic sharding and worker assignment: coverage, resume, move bounds."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.data.assignment import assign, assign_partitions, plan_moves
from runtime.data.sharding import GlobalOrder, ShardedSampler, to_numpy
from runtime.data.storage import write_partitioned
from runtime.errors import BadInput

FAST = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _manifest(n, fp="fp"):
    return {"total_rows": n, "fingerprint": fp, "partitions": []}


def _epoch(manifest, seed, epoch, world, batch, cursor=None, steps=None, **kw):
    """Run `steps` lockstep steps (all if None) on every rank; return (ids per step, cursor)."""
    samplers = [ShardedSampler(manifest, seed, epoch, r, world, cursor=cursor, batch_size=batch, **kw)
                for r in range(world)]
    iters = [s.iter_indices() for s in samplers]
    taken = []
    done = 0
    while steps is None or done < steps:
        got = [next(it, None) for it in iters]
        if all(g is None for g in got):
            break
        taken.extend(g for g in got if g is not None)
        done += 1
        cursors = {tuple(sorted(s.cursor().items())) for s in samplers}
        assert len(cursors) == 1  # every rank saves the same cursor
    return taken, samplers[0].cursor()


@FAST
@given(n=st.integers(0, 3000), seed=st.integers(0, 2**32), epoch=st.integers(0, 5), world=st.integers(1, 9),
       batch=st.integers(1, 64), block=st.sampled_from([1, 8, 64, 1024]))
def test_each_epoch_covers_every_sample_once(n, seed, epoch, world, batch, block):
    taken, cursor = _epoch(_manifest(n), seed, epoch, world, batch, block_size=block)
    ids = np.concatenate(taken) if taken else np.zeros(0, np.int64)
    assert sorted(ids.tolist()) == list(range(n))
    assert cursor["position"] == n


@FAST
@given(n=st.integers(1, 3000), seed=st.integers(0, 1000), w1=st.integers(1, 8), w2=st.integers(1, 8),
       batch=st.integers(1, 50), frac=st.floats(0, 1), block=st.sampled_from([16, 256]))
def test_resize_mid_epoch_continues_the_same_order(n, seed, w1, w2, batch, frac, block):
    m = _manifest(n)
    steps = int(frac * (n // (w1 * batch) + 1))
    first, cursor = _epoch(m, seed, 3, w1, batch, steps=steps, block_size=block)
    rest, end = _epoch(m, seed, 3, w2, batch, cursor=cursor, block_size=block)
    ids = np.concatenate(first + rest)
    assert sorted(ids.tolist()) == list(range(n))  # none lost, none repeated
    # The consumed prefix is the global order's prefix, whatever the world sizes.
    order = GlobalOrder(n, seed, 3, "fp", block).samples(0, n)
    assert sorted(np.concatenate(first).tolist() if first else []) == sorted(order[:cursor["position"]].tolist())
    assert end == {**cursor, "position": n}


def test_order_is_pure_and_depends_on_seed_epoch_and_dataset():
    a = GlobalOrder(5000, 1, 0, "fp", 64).samples(0, 5000)
    assert (a == GlobalOrder(5000, 1, 0, "fp", 64).samples(0, 5000)).all()
    assert (a[100:200] == GlobalOrder(5000, 1, 0, "fp", 64).samples(100, 200)).all()
    for other in (GlobalOrder(5000, 2, 0, "fp", 64), GlobalOrder(5000, 1, 1, "fp", 64), GlobalOrder(5000, 1, 0, "x", 64)):
        assert not (other.samples(0, 5000) == a).all()
    # Pinned so a change of the algorithm (which would break resuming old checkpoints) is noticed.
    assert GlobalOrder(10, 0, 0, "", 4).samples(0, 10).tolist() == [4, 5, 7, 6, 8, 9, 3, 0, 1, 2]


def test_cursor_checks(tmp_path):
    m = _manifest(100)
    with pytest.raises(BadInput, match="different dataset"):
        ShardedSampler(m, cursor={"epoch": 0, "position": 0, "fingerprint": "other"})
    with pytest.raises(BadInput, match="seed 5"):
        ShardedSampler(m, seed=1, cursor={"epoch": 0, "position": 0, "seed": 5, "fingerprint": "fp"})
    with pytest.raises(BadInput, match="rank"):
        ShardedSampler(m, rank=3, world_size=2)


def test_iter_batches_reads_the_rows_of_the_global_order(tmp_path):
    n = 5000
    t = pa.table({"k": np.arange(n), "v": np.arange(n) * 2.0})
    out = str(tmp_path / "ds")
    write_partitioned(t, out, "hash", ["k"], 8)
    s0 = ShardedSampler(out, seed=3, rank=0, world_size=2, batch_size=100, block_size=256, columns=["k", "v"])
    s1 = ShardedSampler(out, seed=3, rank=1, world_size=2, batch_size=100, block_size=256)
    seen = []
    for i0, (b0, b1) in enumerate(zip(s0.iter_batches(), s1.iter_batches())):
        for b in (b0, b1):
            arr = to_numpy(b)
            assert (arr["v"] == arr["k"] * 2.0).all()
            seen.extend(arr["k"].tolist())
    assert sorted(seen) == list(range(n))
    # The rows come in the order iter_indices gives, mapped through the manifest's file order.
    ids = next(ShardedSampler(out, seed=3, batch_size=100, block_size=256).iter_indices())
    first = next(ShardedSampler(out, seed=3, batch_size=100, block_size=256).iter_batches())
    from runtime.data.storage import read_table
    assert first.column("k").to_pylist() == read_table(out).column("k").take(pa.array(ids)).to_pylist()


@FAST
@given(n=st.integers(1, 40), per=st.integers(16, 40))
def test_moving_to_one_more_worker_is_near_ideal_and_balanced(n, per):
    v = n * per + (per % 7)
    r = plan_moves(v, n, n + 1)
    assert r.fraction <= 1.1 / (n + 1)
    assert all(dst == n for _, _, dst in r.moves)  # only the new worker receives
    if v >= 16 * (n + 1):
        assert r.skew <= 1.1
    loads = np.bincount(assign(v, n), minlength=n)
    assert loads.max() - loads.min() <= 1


def test_assignment_is_deterministic_and_partitions_map():
    assert (assign(100, 7) == assign(100, 7)).all()
    m = {"num_partitions": 4, "partitions": [{"id": i, "rows": 1} for i in range(4)] + [{"id": 4, "rows": 3}]}
    owners = assign_partitions(m, 2)
    assert sorted(sum(owners.values(), [])) == [0, 1, 2, 3, 4]
    with pytest.raises(BadInput):
        assign(10, 0)
