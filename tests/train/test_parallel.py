"""Model parallel (pipeline stages on ranks) and task parallel (jobs spread over ranks), with gloo."""

from __future__ import annotations

import json
import os
import sys

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(__file__))
import parallel_workers as pw  # noqa: E402

from runtime.train.launcher import free_port  # noqa: E402

pytestmark = pytest.mark.slow


def test_pipeline_loss_matches_single_process(tmp_path):
    from runtime.model import MLP
    from runtime.train.pipeline import train_single
    out = str(tmp_path / "loss")
    mp.spawn(pw.pipeline_rank, args=(2, free_port(), out), nprocs=2, join=True)
    torch.manual_seed(0)
    ref = train_single(MLP(10, 3, (16, 16, 16)).double(), *pw._data(), steps=5, lr=0.1)
    for r in range(2):
        got = json.load(open(f"{out}.{r}"))
        assert len(got) == 5
        for a, b in zip(got, ref):
            assert abs(a - b) < 1e-5


def test_kmeans_sweep_spread_over_ranks(tmp_path):
    from runtime.train.tasks import kmeans_sweep
    out = str(tmp_path / "sweep.json")
    mp.spawn(pw.tasks_rank, args=(2, free_port(), out), nprocs=2, join=True)
    res = json.load(open(out))
    assert [r["k"] for r in res] == [2, 3, 4, 5]
    assert [r["rank"] for r in res] == [0, 1, 0, 1]
    ref = kmeans_sweep(pw._data()[0], [2, 3, 4, 5])
    assert [r["inertia"] for r in res] == pytest.approx([r["inertia"] for r in ref], rel=1e-12)


def test_split_stages_covers_the_model():
    from runtime.model import MLP
    from runtime.train.pipeline import split_stages
    torch.manual_seed(0)
    mlp = MLP(10, 3, (16, 16, 16))
    x = torch.randn(5, 10)
    stages = split_stages(mlp, 2)
    y = x
    for s in stages:
        y = s(y)
    assert torch.allclose(y, mlp(x))
