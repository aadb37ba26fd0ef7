"""The process group a rank runs in: the same code on one process and under the elastic launcher.

torchrun's machinery sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR/PORT; without them the run
is one process and no process group is created. gloo on CPU, NCCL when CUDA is present.
"""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass
class Context:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None

    @property
    def distributed(self):
        return self.world_size > 1

    @property
    def is_main(self):
        return self.rank == 0


def init(timeout_s: float = 120.0) -> Context:
    threads = int(os.environ.get("GPUFLEET_TRAIN_THREADS", "1"))
    torch.set_num_threads(threads)
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    cuda = torch.cuda.is_available()
    device = torch.device(f"cuda:{local}") if cuda else torch.device("cpu")
    if cuda:
        torch.cuda.set_device(device)
    if world <= 1:
        return Context(device=device)
    backend = "nccl" if cuda else "gloo"
    dist.init_process_group(backend, timeout=datetime.timedelta(seconds=timeout_s))
    return Context(rank, world, local, device, backend)


def finish(ctx: Context, together: bool = False):
    """Leave the process group. After a normal run (`together`), all ranks pass a barrier
    first: a rank closing its sockets while a peer still talks can make gloo abort that peer
    from a background thread. After a failure there is no barrier: the peers may be inside
    another collective, and leaving at once is what lets the launcher restart the group."""
    if ctx.distributed and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()


def all_reduce_sum(ctx: Context, t: torch.Tensor) -> torch.Tensor:
    if ctx.distributed:
        dist.all_reduce(t)
    return t


def broadcast(ctx: Context, t: torch.Tensor, src: int = 0) -> torch.Tensor:
    if ctx.distributed:
        dist.broadcast(t, src)
    return t

