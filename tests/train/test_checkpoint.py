"""Checkpoints: atomic commit, keep K, corrupt-latest skipped, local and S3 (the emulator)."""

from __future__ import annotations

import os

import pytest
import torch

from runtime.train.checkpoint import COMMIT, STATE, Checkpointer


def _state(step):
    return {"step": step, "model": {"w": torch.full((4,), float(step))}, "data": {"epoch": 0, "position": step}}


@pytest.mark.parametrize("async_save", [False, True])
def test_save_keep_and_resume_latest_local(tmp_path, async_save):
    c = Checkpointer(str(tmp_path / "ck"), keep=2, async_save=async_save)
    for s in (5, 10, 15):
        c.save(s, _state(s))
    c.wait()
    assert sorted(os.listdir(tmp_path / "ck")) == ["step-000000010", "step-000000015"]
    st = c.load_latest()
    assert st["step"] == 15 and torch.equal(st["model"]["w"], torch.full((4,), 15.0))


def test_async_snapshot_is_isolated_from_later_updates(tmp_path):
    c = Checkpointer(str(tmp_path / "ck"), keep=3, async_save=True)
    w = torch.zeros(1000)
    c.save(1, {"step": 1, "w": w})
    c.fence()  # the contract: nothing mutates the state before the copy is done
    w += 7  # training goes on while the writer runs
    c.wait()
    assert torch.equal(c.load_latest()["w"], torch.zeros(1000))


def test_uncommitted_checkpoint_is_invisible(tmp_path):
    c = Checkpointer(str(tmp_path / "ck"), keep=3, async_save=False)
    c.save(5, _state(5))
    os.makedirs(tmp_path / "ck" / "step-000000009")
    (tmp_path / "ck" / "step-000000009" / STATE).write_bytes(b"half written")
    assert c.load_latest()["step"] == 5


def test_corrupt_latest_is_skipped_with_a_warning(tmp_path):
    warnings = []
    c = Checkpointer(str(tmp_path / "ck"), keep=3, async_save=False, log=warnings.append)
    c.save(5, _state(5))
    c.save(10, _state(10))
    p = tmp_path / "ck" / "step-000000010" / STATE
    p.write_bytes(p.read_bytes()[:-20] + b"x" * 20)
    assert c.load_latest()["step"] == 5
    assert warnings and "step-000000010" in warnings[0] and "corrupt" in warnings[0]


def test_s3_checkpoints_on_the_emulator(aws_client, moto_reset):
    s3 = aws_client("s3")
    s3.create_bucket(Bucket="ckpt")
    c = Checkpointer("s3://ckpt/runs/a", keep=2, async_save=True, endpoint=moto_reset)
    for s in (1, 2, 3):
        c.save(s, _state(s))
    c.wait()
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="ckpt")["Contents"])
    assert keys == [f"runs/a/step-00000000{s}/{n}" for s in (2, 3) for n in (COMMIT, STATE)]
    s3.put_object(Bucket="ckpt", Key="runs/a/step-000000003/state.pt", Body=b"garbage")
    warnings = []
    c2 = Checkpointer("s3://ckpt/runs/a", endpoint=moto_reset, log=warnings.append)
    assert c2.load_latest()["step"] == 2 and warnings


def test_async_write_is_paced_over_part_of_the_checkpoint_interval(tmp_path):
    """The second save has an interval (0.4 s) and writes over pace x interval; the first does not wait."""
    import time
    c = Checkpointer(str(tmp_path / "ck"), keep=3, async_save=True, pace=0.5)
    state = {"step": 1, "w": torch.arange(3_000_000, dtype=torch.float32)}  # 12 MB: three 4 MB chunks
    t = time.perf_counter()
    c.save(1, state)
    c.wait()
    first = time.perf_counter() - t
    time.sleep(0.4 - first if first < 0.4 else 0)
    t = time.perf_counter()
    c.save(2, {**state, "step": 2})
    c.wait()
    paced = time.perf_counter() - t
    assert paced >= 0.15, f"paced save took {paced:.3f} s, expected about 0.2 s"
    st = c.load_latest()
    assert st["step"] == 2 and torch.equal(st["w"], state["w"])
