"""Task parallelism: independent jobs spread over ranks, results gathered on rank 0.

Job `i` of a list runs on rank `i % W`; each rank runs its jobs one after the other with no
communication, then one `gather_object` brings every result to rank 0 in job order. Typical
jobs: k-means for several k (`kmeans_sweep`), a learning-rate sweep (`logreg_lr_sweep`).

`run_sweep` is `gpufleet train --sweep PARAM=V1,V2,...`: each value is a whole single-rank
training run of the configured workload, with its own output directory `OUT/PARAM=V` (model
artifact, metrics.json) and checkpoint directory, so a stopped sweep resumes job by job.
Rank 0 writes `OUT/sweep.json` with every job's figures and the best value (highest held-out
accuracy, else lowest final loss; none for a k sweep, whose inertia always falls with k).
"""

from __future__ import annotations

import json
import os
from dataclasses import replace

import torch
import torch.distributed as dist
import torch.nn.functional as F

from runtime.errors import EXIT_STOPPED
from runtime.store import write_json
from runtime.train import dist as tdist
from runtime.train import kmeans as km
from runtime.train.checkpoint import Checkpointer
from runtime.train.classifier import run_classifier
from runtime.train.clustering import run_kmeans
from runtime.train.progress import Progress


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


class _JobStopper:
    """A sweep job's stop check: the rank's own stop request, with no collective (a job is one rank)."""

    def __init__(self, outer):
        self.outer = outer

    @property
    def reason(self):
        return self.outer.reason

    def should_stop(self, step, force=False):
        return self.outer.requested

    def drain(self):
        pass


SUMMARY_KEYS = ("final_loss", "accuracy", "inertia", "iterations", "steps", "train_time_s", "samples_per_s")


def run_sweep(cfg, ctx, stopper, progress) -> int:
    """Run one job per value of cfg.sweep over the ranks; 0, or EXIT_STOPPED if a stop request cut it short."""
    param, values = cfg.sweep["param"], list(cfg.sweep["values"])
    single = tdist.Context(device=ctx.device)

    def job(value):
        if stopper.requested:
            return {"value": value, "rank": ctx.rank, "stopped": True}
        name = f"{param}={value}"
        jcfg = replace(cfg, sweep=None, nproc=1, max_restarts=0, out=os.path.join(cfg.out, name),
                       checkpoint_dir=f"{cfg.checkpoint_dir.rstrip('/')}/{name}", **{param: value}).resolved()
        progress.event("job", **{param: value}, rank=ctx.rank)
        jprog = Progress(enabled=ctx.is_main, json_logs=cfg.json_logs, every_s=cfg.log_every_s)
        ckpt = Checkpointer(jcfg.checkpoint_dir, keep=jcfg.keep, async_save=jcfg.async_checkpoint,
                            endpoint=jcfg.endpoint, log=lambda m: progress.event("warning", message=m))
        run = run_kmeans if jcfg.workload == "kmeans" else run_classifier
        code = run(jcfg, single, _JobStopper(stopper), ckpt, jprog)
        ckpt.wait()
        if code:
            return {"value": value, "rank": ctx.rank, "stopped": True}
        with open(os.path.join(jcfg.out, "metrics.json")) as f:
            m = json.load(f)
        return {"value": value, "rank": ctx.rank, "out": jcfg.out, **{k: m[k] for k in SUMMARY_KEYS if k in m}}

    results = run_tasks(values, job, ctx.rank, ctx.world_size)
    if not ctx.is_main:
        return EXIT_STOPPED if stopper.requested else 0
    done = [r for r in results if not r.get("stopped")]
    best = None
    if param != "k" and done:
        if all("accuracy" in r for r in done):
            best = max(done, key=lambda r: (r["accuracy"], -r["final_loss"]))
        else:
            best = min(done, key=lambda r: r.get("final_loss", float("inf")))
    summary = {"workload": cfg.workload, "param": param, "values": values, "world_size": ctx.world_size,
               "results": results, "best": None if best is None else {param: best["value"], "out": best["out"]}}
    os.makedirs(cfg.out, exist_ok=True)
    write_json(os.path.join(cfg.out, "sweep.json"), summary)
    for r in results:
        figures = " ".join(f"{k}={r[k]:.6g}" for k in ("final_loss", "accuracy", "inertia") if k in r)
        progress.event("result", **{param: r["value"]}, rank=r["rank"], status="stopped" if r.get("stopped") else "done",
                       figures=figures or "-")
    if best is not None:
        progress.event("best", **{param: best["value"]}, out=best["out"])
    return EXIT_STOPPED if len(done) < len(results) else 0
