"""Task parallelism: independent jobs spread over ranks, results gathered on rank 0.

Job `i` of a list runs on rank `i % W`; each rank runs its jobs one after the other with no
communication, then one `gather_object` brings every result to rank 0 in job order. Typical
jobs: k-means for several k (`kmeans_sweep`), a learning-rate sweep (`logreg_lr_sweep`).
"""

from __future__ import annotations

import torch
import torch.distributed as dist
import torch.nn.functional as F

from runtime.train import kmeans as km


def run_tasks(jobs, fn, rank=0, world=1):
    """[fn(job) for job in jobs] on rank 0 (None elsewhere), the jobs spread over the ranks."""
    mine = {i: fn(job) for i, job in enumerate(jobs) if i % world == rank}
    if world == 1:
        return [mine[i] for i in range(len(jobs))]
    gathered = [None] * world if rank == 0 else None
    dist.gather_object(mine, gathered, dst=0)
    if rank != 0:
        return None
    merged = {}
    for part in gathered:
        merged.update(part)
    return [merged[i] for i in range(len(jobs))]


def kmeans_job(x, seed=0, max_iter=100):
    def fn(k):
        c, iters = km.lloyd(x, km.kmeans_pp(x, k, seed=seed), max_iter=max_iter)
        return {"k": k, "inertia": km.inertia(x, c), "iterations": iters, "rank": dist.get_rank() if dist.is_initialized() else 0}
    return fn


def kmeans_sweep(x, ks, rank=0, world=1, seed=0):
    return run_tasks(list(ks), kmeans_job(x, seed), rank, world)


def logreg_lr_job(x, y, n_classes, steps=100, seed=0):
    def fn(lr):
        torch.manual_seed(seed)
        lin = torch.nn.Linear(x.shape[1], n_classes).to(x.dtype)
        opt = torch.optim.SGD(lin.parameters(), lr=lr)
        for _ in range(steps):
            opt.zero_grad()
            loss = F.cross_entropy(lin(x), y)
            loss.backward()
            opt.step()
        return {"lr": lr, "loss": float(F.cross_entropy(lin(x), y))}
    return fn


def logreg_lr_sweep(x, y, n_classes, lrs, rank=0, world=1, steps=100):
    return run_tasks(list(lrs), logreg_lr_job(x, y, n_classes, steps), rank, world)
