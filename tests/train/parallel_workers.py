"""Rank functions for the model- and task-parallel tests (importable by torch.multiprocessing.spawn)."""

from __future__ import annotations

import json
import os

import torch
import torch.distributed as dist


def _init(rank, world, port):
    os.environ["GLOO_SOCKET_IFNAME"] = "lo"
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)


def _finish():
    """Leave the group together, then exit without interpreter finalization.

    Under load, a rank whose peer has already closed its sockets could abort in gloo's
    background threads during finalization ("terminate called without an active exception",
    SIGABRT; see pytorch/pytorch#179291). The results are on disk by now, and exit code 0 is
    what torch.multiprocessing.spawn checks.
    """
    dist.barrier()
    dist.destroy_process_group()
    os._exit(0)


def _data():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(96, 10, generator=g, dtype=torch.float64)
    y = (x[:, 0] + x[:, 1] > 0).long() + (x[:, 2] > 1).long()
    return x, y


def pipeline_rank(rank, world, port, out):
    from runtime.model import MLP
    from runtime.train.pipeline import train_pipeline
    _init(rank, world, port)
    torch.manual_seed(0)
    mlp = MLP(10, 3, (16, 16, 16)).double()
    x, y = _data()
    losses = train_pipeline(mlp, x, y, steps=5, lr=0.1, rank=rank, world=world, microbatches=4)
    with open(f"{out}.{rank}", "w") as f:
        json.dump(losses, f)
    _finish()


def tasks_rank(rank, world, port, out):
    from runtime.train.tasks import kmeans_sweep
    _init(rank, world, port)
    x, _ = _data()
    res = kmeans_sweep(x, [2, 3, 4, 5], rank, world)
    if rank == 0:
        with open(out, "w") as f:
            json.dump(res, f)
    _finish()
