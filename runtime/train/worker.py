"""One training rank: `python -m runtime.train.worker CONFIG.json` (the elastic launcher starts it).

The same function runs as a single process (no launcher, no process group) and as rank r of W.
The loop: resume from the latest valid checkpoint if there is one, walk the epochs with the
sharded sampler, checkpoint every K steps and at epoch ends, stop at a step boundary agreed by
all ranks when SIGTERM or an instance-termination notice arrives (checkpoint first), and at the
end write the model artifact and metrics.json (rank 0).

Gradient scale: each rank's loss is `W * sum(per-sample loss) / global_count`; DDP's all-reduce
averages over W, so the update is the gradient of the global mean over the step's training
samples, whatever the shares (see runtime.train.data).
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import random
import signal
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from runtime.data import Dataset, ShardedSampler
from runtime.model import KMeans, LogisticRegression, MLP, save_artifact
from runtime.train import dist as tdist
from runtime.train import kmeans as km
from runtime.train.checkpoint import Checkpointer
from runtime.train.config import TrainConfig
from runtime.train.data import Steps, block_size_for, describe, load_table, split_mask
from runtime.train.progress import Progress

STOP_SYNC_EVERY = 8  # steps between the (asynchronous) all-reduces that agree on stopping


class _Stopped(Exception):
    def __init__(self, step):
        super().__init__(step)
        self.step = step


class Stopper:
    """A stop request (SIGTERM, termination notice) turned into one step all ranks stop at."""

    def __init__(self, ctx):
        self.ctx, self.requested, self.reason = ctx, False, None
        self._handle, self._flag = None, None

    def request(self, reason):
        self.requested, self.reason = True, self.reason or reason

    def should_stop(self, step, force=False):
        if not self.ctx.distributed:
            return self.requested
        if not force and step % STOP_SYNC_EVERY:
            return False
        stop = False
        if self._handle is not None:
            self._handle.wait()
            stop = bool(self._flag.item() > 0)
            self._handle = None
        if force:
            flag = torch.tensor([1.0 if self.requested else 0.0], device=self.ctx.device)
            dist.all_reduce(flag)
            return stop or bool(flag.item() > 0)
        if not stop:
            self._flag = torch.tensor([1.0 if self.requested else 0.0], device=self.ctx.device)
            self._handle = dist.all_reduce(self._flag, async_op=True)
        return stop

    def drain(self):
        if self._handle is not None:
            self._handle.wait()
            self._handle = None


def _rng_state():
    return {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()}


def _set_rng(state):
    torch.set_rng_state(state["torch"])
    np.random.set_state(state["numpy"])
    random.setstate(state["python"])


def _events(cfg, ctx, name, **fields):
    """Machine-readable run events in OUT/events.jsonl (rank 0, and faults): restarts are timed from them."""
    if not cfg.out:
        return
    os.makedirs(cfg.out, exist_ok=True)
    with open(os.path.join(cfg.out, "events.jsonl"), "a") as f:
        f.write(json.dumps({"event": name, "time": time.time(), "rank": ctx.rank,
                            "restart": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")), **fields}) + "\n")


def _maybe_fault(cfg, ctx, step):
    """Test hook: GPUFLEET_TRAIN_FAULT="RANK:STEP" SIGKILLs that rank at that step, first attempt only."""
    spec = os.environ.get("GPUFLEET_TRAIN_FAULT")
    if not spec or os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        return
    r, s = (int(v) for v in spec.split(":"))
    if ctx.rank == r and step == s:
        _events(cfg, ctx, "kill", step=step)
        os.kill(os.getpid(), signal.SIGKILL)


def run(cfg: TrainConfig) -> int:
    cfg = cfg.resolved()
    t_import = time.time()
    ctx = tdist.init()
    if ctx.is_main and os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") != "0":
        _events(cfg, ctx, "init", imported=t_import)
    stopper = Stopper(ctx)
    signal.signal(signal.SIGTERM, lambda *_: stopper.request("SIGTERM"))
    watcher = None
    if cfg.termination_watch and ctx.local_rank == 0:
        from runtime.train.termination import TerminationWatcher
        watcher = TerminationWatcher(on_notice=lambda why: stopper.request(why),
                                     endpoint=cfg.endpoint, **cfg.termination_watch)
        watcher.start()
    progress = Progress(enabled=ctx.is_main, json_logs=cfg.json_logs, every_s=cfg.log_every_s)
    ckpt = Checkpointer(cfg.checkpoint_dir, keep=cfg.keep, writer=ctx.is_main, async_save=cfg.async_checkpoint,
                        endpoint=cfg.endpoint, log=lambda m: progress.event("warning", message=m) if ctx.is_main else None)
    finished = False
    try:
        if cfg.sweep:
            from runtime.train.tasks import run_sweep
            code = run_sweep(cfg, ctx, stopper, progress)
        elif cfg.parallel == "pipeline":
            from runtime.train.pipeline import run_pipeline
            code = run_pipeline(cfg, ctx, stopper, progress)
        elif cfg.workload == "kmeans":
            code = _run_kmeans(cfg, ctx, stopper, ckpt, progress)
        else:
            code = _run_classifier(cfg, ctx, stopper, ckpt, progress)
        ckpt.wait()
        if code and watcher is not None:
            watcher.complete()
        finished = True
        return code
    finally:
        stopper.drain()
        if watcher is not None:
            watcher.stop()
        tdist.finish(ctx, together=finished)


def _load(cfg, ctx, need_label):
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    manifest, feats = describe(cfg.data, cfg.label if need_label else None, cfg.features, cfg.endpoint, need_label)
    n = int(manifest["total_rows"])
    small = n * (len(feats) + 1) * np.dtype(dtype).itemsize <= cfg.in_memory_limit_bytes
    table = load_table(cfg.data, cfg.label if need_label else None, feats, dtype, cfg.endpoint) if small else None
    classes = table.classes if table is not None else None
    if classes is None and need_label:
        col = Dataset(cfg.data, cfg.endpoint).read_table(columns=[cfg.label]).column(cfg.label).to_numpy(zero_copy_only=False)
        classes = [c.item() if hasattr(c, "item") else c for c in np.unique(col)]
    test = split_mask(n, cfg.test_fraction, cfg.seed)
    ds = Dataset(cfg.data, cfg.endpoint, manifest=manifest)
    if "_row" in ds.schema.names:  # a file partitioned by prepare_source: split by the file's row number
        rows = ds.read_table(columns=["_row"]).column("_row").to_numpy()
        test = test[rows]
    return manifest, feats, n, table, classes, test, dtype


def _standardization(table, test, ctx, feats, dtype):
    """Population mean/std of the training rows (std 0 -> 1), as scikit-learn's StandardScaler."""
    x = table.x[~test].astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    return torch.tensor(mean), torch.tensor(std)


def _streamed_standardization(cfg, ctx, manifest, test, feats, dtype, n):
    """The same statistics from one pass over this rank's shard (its own rows only), all-reduced:
    every training row is in exactly one rank's share of an epoch."""
    sampler = ShardedSampler(Dataset(cfg.data, cfg.endpoint, manifest=manifest), seed=cfg.seed, rank=ctx.rank,
                             world_size=ctx.world_size, batch_size=65536, block_size=block_size_for(n))
    steps = Steps(cfg.data, None, test, sampler, None, feats, dtype)
    acc = torch.zeros(2 * len(feats) + 1, dtype=torch.float64)
    for x, _, _ in steps:
        xd = torch.from_numpy(x).double()
        acc[0] += xd.shape[0]
        acc[1:1 + len(feats)] += xd.sum(0)
        acc[1 + len(feats):] += (xd * xd).sum(0)
    acc = tdist.all_reduce_sum(ctx, acc.to(ctx.device)).cpu()
    cnt = max(float(acc[0]), 1.0)
    mean = acc[1:1 + len(feats)] / cnt
    std = (acc[1 + len(feats):] / cnt - mean * mean).clamp_min(0).sqrt()
    std[std == 0] = 1.0
    return mean, std


def _module_state(model):
    return model.module.state_dict() if hasattr(model, "module") else model.state_dict()


def _classifier_module(cfg, ctx, manifest, feats, n, table, classes, test, dtype):
    """cfg's logreg or MLP with its initial weights (seeded: the same on every rank) and the
    training rows' standardization, on the rank's device in the run's dtype."""
    torch.manual_seed(cfg.seed)
    if cfg.workload == "logreg":
        module = LogisticRegression(len(feats), len(classes))
    else:
        module = MLP(len(feats), len(classes), tuple(cfg.hidden))
    if cfg.standardize:
        if table is None:
            mean, std = _streamed_standardization(cfg, ctx, manifest, test, feats, dtype, n)
        else:
            mean, std = _standardization(table, test, ctx, feats, dtype)
        module.standardize.mean.copy_(mean)
        module.standardize.std.copy_(std)
    return module.to(device=ctx.device, dtype=torch.float64 if dtype == np.float64 else torch.float32)


def _optimizer(cfg, params):
    if cfg.optimizer == "adam":
        return torch.optim.Adam(params, lr=cfg.lr)
    return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, nesterov=cfg.nesterov and cfg.momentum > 0)


def _run_classifier(cfg, ctx, stopper, ckpt, progress):
    manifest, feats, n, table, classes, test, dtype = _load(cfg, ctx, need_label=True)
    module = _classifier_module(cfg, ctx, manifest, feats, n, table, classes, test, dtype)
    model = module
    if ctx.distributed:
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(module, bucket_cap_mb=cfg.bucket_mb, gradient_as_bucket_view=True,
                    device_ids=[ctx.device.index] if ctx.device.type == "cuda" else None)
        if cfg.comm_hook != "none":
            from torch.distributed.algorithms.ddp_comm_hooks import default_hooks
            model.register_comm_hook(None, default_hooks.fp16_compress_hook)
    opt = _optimizer(cfg, module.parameters())
    weights = [p for name, p in module.named_parameters() if name.endswith("weight")]
    n_train = int((~test).sum())
    batch = cfg.batch_size or max(1, -(-n // ctx.world_size))
    source = Dataset(cfg.data, cfg.endpoint, manifest=manifest) if table is None else manifest
    state = ckpt.load_latest() if cfg.resume else None
    step, loss_curve, resumed_from = 0, [], None
    epoch_loss_saved = (0.0, 0)
    cursor = None
    if state is not None:
        if state.get("workload") != cfg.workload:
            from runtime.errors import BadInput
            raise BadInput(f"--checkpoint-dir: {cfg.checkpoint_dir} holds a {state.get('workload')} run, not {cfg.workload}")
        module.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        _set_rng(state["rng"])
        step, loss_curve, cursor = state["step"], state["loss_curve"], state["data"]
        epoch_loss_saved = state.get("epoch_loss", (0.0, 0))
        resumed_from = step
        progress.event("resume", step=step, epoch=cursor["epoch"], position=cursor["position"])
    sampler = ShardedSampler(source, seed=cfg.seed, epoch=0, rank=ctx.rank, world_size=ctx.world_size,
                             cursor=cursor, batch_size=batch, block_size=block_size_for(n))
    steps_per_epoch = -(-n // (batch * ctx.world_size))
    progress.total_steps = math.ceil(steps_per_epoch / cfg.grad_accum) * cfg.epochs
    if ctx.is_main:
        _events(cfg, ctx, "start", step=step, world_size=ctx.world_size)

    def snapshot():
        return {"workload": cfg.workload, "model": module.state_dict(), "optimizer": opt.state_dict(),
                "data": sampler.cursor(), "rng": _rng_state(), "step": step, "loss_curve": list(loss_curve),
                "epoch_loss": (epoch_loss, epoch_count)}

    scale = float(ctx.world_size)
    t_train, samples_done, first_logged, stalls = 0.0, 0, False, []
    epoch_loss, epoch_count = epoch_loss_saved
    stopped = False
    loop_start = t_step = time.perf_counter()  # samples/s counts the whole loop: data, compute, communication
    step_log = []  # (seconds, a checkpoint was being written) per step, for the benchmarks
    while sampler.epoch < cfg.epochs and not stopped:
        if sampler.position >= sampler.num_samples:
            if epoch_count:
                loss_curve.append(epoch_loss / epoch_count)
            epoch_loss, epoch_count = 0.0, 0
            sampler.set_epoch(sampler.epoch + 1)
            continue
        steps_iter = Steps(cfg.data, table, test, sampler, cfg.label, feats, dtype)
        steps_iter.classes_index = np.asarray(classes)
        it = iter(steps_iter)
        while True:
            group = []
            for _ in range(cfg.grad_accum):
                nxt = next(it, None)
                if nxt is None:
                    break
                group.append(nxt)
            if not group:
                break
            total = sum(c for _, _, c in group)
            if total == 0:
                continue
            opt.zero_grad(set_to_none=False)
            local_loss, local_n = 0.0, 0
            for i, (x, y, _) in enumerate(group):
                last = i == len(group) - 1
                sync = model.no_sync() if (ctx.distributed and not last) else contextlib.nullcontext()
                with sync:
                    xt = torch.from_numpy(x).to(ctx.device)
                    yt = torch.from_numpy(y).to(ctx.device)
                    out = model(xt)
                    loss_sum = F.cross_entropy(out, yt, reduction="sum")
                    loss = loss_sum * (scale / total)
                    if last and cfg.l2:
                        loss = loss + 0.5 * cfg.l2 * sum((w * w).sum() for w in weights)
                    loss.backward()
                local_loss += float(loss_sum.detach())
                local_n += x.shape[0]
            waited = ckpt.fence()  # an asynchronous save may still be copying the parameters
            if waited and stalls:
                stalls[-1] += waited
            opt.step()
            step += 1
            now = time.perf_counter()
            if len(step_log) < 100_000:
                step_log.append((now - t_step, ckpt.busy()))
            t_step = now
            t_train = now - loop_start
            samples_done += total
            mean = local_loss / max(local_n, 1)
            if cfg.l2:
                mean += 0.5 * cfg.l2 * float(sum((w.detach() ** 2).sum() for w in weights))
            epoch_loss, epoch_count = epoch_loss + mean, epoch_count + 1
            if not first_logged and resumed_from is not None and ctx.is_main:
                _events(cfg, ctx, "first_step", step=step)
            first_logged = True
            progress.step(step, mean, total)
            _maybe_fault(cfg, ctx, step)
            if cfg.checkpoint_every and step % cfg.checkpoint_every == 0:
                stalls.append(ckpt.save(step, snapshot()))
                t_step = time.perf_counter()  # the stall is reported on its own, not in the next step
            if stopper.should_stop(step):
                stopped = True
                break
    if not stopped and stopper.should_stop(step, force=True):
        stopped = True
    if stopped:
        ckpt.save(step, snapshot(), block=True)
        if ctx.distributed:
            dist.barrier()  # the checkpoint is committed before any rank lets its instance go
        progress.event("stopped", step=step, reason=stopper.reason or "peer", checkpoint=cfg.checkpoint_dir)
        return 143
    if epoch_count:
        loss_curve.append(epoch_loss / epoch_count)
    if ctx.is_main:
        _finish_classifier(cfg, module, table, test, feats, classes, loss_curve, step, n_train,
                           samples_done, t_train, ctx, resumed_from, stalls, dtype, step_log)
        ckpt.save(step, snapshot(), block=True)
    return 0


def _finish_classifier(cfg, module, table, test, feats, classes, loss_curve, step, n_train, samples_done,
                       t_train, ctx, resumed_from, stalls, dtype, step_log=(), extra=None):
    if table is None:
        table = load_table(cfg.data, cfg.label, feats, dtype, cfg.endpoint)
    module.eval()
    with torch.no_grad():
        xtr = torch.from_numpy(table.x[~test]).to(ctx.device)
        ytr = torch.from_numpy(table.y[~test]).to(ctx.device)
        obj = float(F.cross_entropy(module(xtr), ytr, reduction="mean"))
        if cfg.l2:
            obj += 0.5 * cfg.l2 * float(sum((p.double() ** 2).sum() for n_, p in module.named_parameters()
                                            if n_.endswith("weight")))
        metrics = {"workload": cfg.workload, "world_size": ctx.world_size, "epochs": cfg.epochs, "steps": step,
                   "final_loss": obj, "loss_curve": loss_curve, "train_samples": n_train,
                   "test_samples": int(test.sum()), "samples_per_s": samples_done / t_train if t_train else 0.0,
                   "train_time_s": t_train, "resumed_from_step": resumed_from,
                   "restarts": int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0")),
                   "checkpoint_stall_s": stalls, "step_seconds": [round(t, 6) for t, _ in step_log],
                   "step_during_checkpoint_write": [b for _, b in step_log], **(extra or {})}
        if test.any():
            xte = torch.from_numpy(table.x[test]).to(ctx.device)
            pred = module(xte).argmax(1).cpu().numpy()
            metrics["accuracy"] = float((pred == table.y[test]).mean())
    _write_outputs(cfg, module, metrics, {"n_features": len(feats), "classes": classes,
                                          "hidden": list(cfg.hidden), "features": feats, "label": cfg.label})


def write_json(path, doc):
    """Write `doc` to `path` whole or not at all (a temporary file renamed over it)."""
    with open(path + ".tmp", "w") as f:
        json.dump(doc, f, indent=2)
    os.replace(path + ".tmp", path)


def _write_outputs(cfg, module, metrics, meta):
    module = module.to(device="cpu", dtype=torch.float32)
    save_artifact(cfg.out, cfg.workload, module, {**meta, "metrics": {k: v for k, v in metrics.items()
                                                                     if k in ("final_loss", "accuracy", "inertia")}})
    write_json(os.path.join(cfg.out, "metrics.json"), metrics)
    _events(cfg, tdist.Context(), "finish", step=metrics["steps"])


def _run_kmeans(cfg, ctx, stopper, ckpt, progress):
    manifest, feats, n, table, _, test, dtype = _load(cfg, ctx, need_label=False)
    if table is None:
        raise NotImplementedError("k-means on a dataset larger than --in-memory-limit")
    tdtype = torch.float64 if dtype == np.float64 else torch.float32
    n_train = int((~test).sum())
    if cfg.k > n_train:
        from runtime.errors import BadInput
        raise BadInput(f"--k: {cfg.k} clusters need at least {cfg.k} training samples (the dataset has {n_train})")
    module = KMeans(len(feats), cfg.k)
    x_all = torch.from_numpy(table.x)
    if cfg.standardize:
        mean, std = _standardization(table, test, ctx, feats, dtype)
        module.standardize.mean.copy_(mean)
        module.standardize.std.copy_(std)
        x_all = ((x_all.double() - mean) / std).to(tdtype)
    # This rank's rows: its share of one full-batch step of the sampler (the same sharding as training).
    sampler = ShardedSampler(manifest, seed=cfg.seed, rank=ctx.rank, world_size=ctx.world_size,
                             batch_size=max(1, -(-n // ctx.world_size)), block_size=block_size_for(n))
    lo, hi, _ = sampler.share(0)
    ids = sampler.order().samples(lo, hi)
    ids = np.sort(ids[~test[ids]])
    x = x_all[torch.from_numpy(ids)].to(ctx.device).contiguous()
    reduce = (lambda t: dist.all_reduce(t)) if ctx.distributed else None
    state = ckpt.load_latest() if cfg.resume else None
    start_iter, resumed_from = 0, None
    if state is not None:
        c = state["centroids"].to(device=ctx.device, dtype=tdtype)
        start_iter = resumed_from = state["step"]
        progress.event("resume", step=start_iter)
    else:
        if cfg.init_centroids is not None:
            c = torch.tensor(cfg.init_centroids, dtype=tdtype)
        elif ctx.is_main:
            train_ids = np.flatnonzero(~test)
            if train_ids.size > 100_000:  # k-means++ on a fixed subsample for large data
                train_ids = np.sort(np.random.default_rng(cfg.seed).choice(train_ids, 100_000, replace=False))
            c = km.kmeans_pp(x_all[torch.from_numpy(train_ids)], cfg.k, seed=cfg.seed)
        else:
            c = torch.empty(cfg.k, len(feats), dtype=tdtype)
        c = tdist.broadcast(ctx, c.to(ctx.device).contiguous())
    curve, stalls = [], []
    t0 = time.perf_counter()

    def on_iter(it, cent, changed, shift):
        nonlocal c
        c = cent
        curve.append(shift)
        progress.step(it, shift, n_train)
        _maybe_fault(cfg, ctx, it)
        if cfg.checkpoint_every and it % cfg.checkpoint_every == 0:
            stalls.append(ckpt.save(it, {"workload": "kmeans", "centroids": cent, "step": it}))
        if stopper.should_stop(it):
            raise _Stopped(it)

    try:
        c, iters = km.lloyd_bounded(x, c, max_iter=cfg.epochs, tol=cfg.tol, all_reduce=reduce, on_iter=on_iter,
                            start_iter=start_iter)
    except _Stopped as e:
        ckpt.save(e.step, {"workload": "kmeans", "centroids": c, "step": e.step}, block=True)
        if ctx.distributed:
            dist.barrier()
        progress.event("stopped", step=e.step, reason=stopper.reason or "peer", checkpoint=cfg.checkpoint_dir)
        return 143
    t_train = time.perf_counter() - t0
    inertia = km.inertia(x, c, reduce)
    if ctx.is_main:
        module.centroids.copy_(c.cpu().to(torch.float32))
        metrics = {"workload": "kmeans", "world_size": ctx.world_size, "k": cfg.k, "iterations": iters,
                   "steps": iters, "inertia": inertia, "final_loss": inertia / n_train, "loss_curve": curve,
                   "train_samples": n_train, "samples_per_s": n_train * (iters - start_iter) / t_train if t_train else 0.0,
                   "train_time_s": t_train, "resumed_from_step": resumed_from, "centroids": c.cpu().tolist(),
                   "checkpoint_stall_s": stalls}
        _write_outputs(cfg, module, metrics, {"n_features": len(feats), "k": cfg.k, "features": feats})
    return 0


def preload() -> None:
    """Import what a rank imports lazily later (DDP pulls in torch._dynamo), so forked ranks start warm."""
    import torch._dynamo  # noqa: F401
    from torch.nn.parallel import DistributedDataParallel  # noqa: F401


def entry(path: str) -> None:
    """A rank's entry point when the launcher forks it; a non-zero result fails the rank."""
    code = main([path])
    if code:
        raise SystemExit(code)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        cfg = TrainConfig.from_dict(json.load(f))
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
