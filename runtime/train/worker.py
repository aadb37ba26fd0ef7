"""One training rank: `python -m runtime.train.worker CONFIG.json` (the elastic launcher starts it).

The same function runs as a single process (no launcher, no process group) and as rank r of W.
`run` owns what every kind of run shares: the process group, the stop request (SIGTERM or an
instance-termination notice, turned into one step all ranks stop at), progress, the
checkpointer, and leaving the group; it hands the loop to one runner:

| runner | when |
|---|---|
| `tasks.run_sweep` | `--sweep PARAM=...`: one whole single-rank run per value |
| `pipeline.run_pipeline` | `--parallel pipeline`: one MLP stage per rank |
| `clustering.run_kmeans` | `--workload kmeans`: distributed Lloyd iterations |
| `classifier.run_classifier` | `--workload logreg|mlp`: DDP over the ranks' shards |

Runners return 0 or `EXIT_STOPPED` (stopped on request after a checkpoint).
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time

from runtime.errors import EXIT_STOPPED
from runtime.train import dist as tdist
from runtime.train.checkpoint import Checkpointer
from runtime.train.classifier import run_classifier
from runtime.train.clustering import run_kmeans
from runtime.train.config import TrainConfig
from runtime.train.lifecycle import Stopper, events, restart_count
from runtime.train.pipeline import run_pipeline
from runtime.train.progress import Progress
from runtime.train.tasks import run_sweep


def _runner(cfg):
    if cfg.sweep:
        return lambda ctx, stopper, ckpt, progress: run_sweep(cfg, ctx, stopper, progress)
    if cfg.parallel == "pipeline":
        return lambda ctx, stopper, ckpt, progress: run_pipeline(cfg, ctx, stopper, progress)
    run = run_kmeans if cfg.workload == "kmeans" else run_classifier
    return lambda ctx, stopper, ckpt, progress: run(cfg, ctx, stopper, ckpt, progress)


def run(cfg: TrainConfig) -> int:
    cfg = cfg.resolved()
    t_import = time.time()
    ctx = tdist.init()
    if ctx.is_main and restart_count() != 0:
        events(cfg, ctx, "init", imported=t_import)
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
        code = _runner(cfg)(ctx, stopper, ckpt, progress)
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


def preload() -> None:
    """Import what a rank imports lazily later (DDP pulls in torch._dynamo), so forked ranks start warm."""
    import torch._dynamo  # noqa: F401
    from torch.nn.parallel import DistributedDataParallel  # noqa: F401


STOPPED_MARKER = ".stopped"


def entry(path: str) -> None:
    """A rank's entry point when the launcher forks it; a non-zero result fails the rank.

    A rank stopped on request after the checkpoint (EXIT_STOPPED) ends as a success, leaving
    a marker beside its config for the launcher to report: as a failure, the elastic agent
    would restart the group into the same termination notice until its restarts ran out.
    """
    code = main([path])
    if code == EXIT_STOPPED:
        with open(os.path.join(os.path.dirname(path), STOPPED_MARKER), "w") as f:
            f.write("stopped after a checkpoint\n")
        return
    if code:
        raise SystemExit(code)


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    with open(argv[0]) as f:
        cfg = TrainConfig.from_dict(json.load(f))
    return run(cfg)


if __name__ == "__main__":
    sys.exit(main())
