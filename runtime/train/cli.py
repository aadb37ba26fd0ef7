"""`gpufleet train`: distributed training from flags (`python -m runtime.train` is the same).

    gpufleet train --workload logreg|kmeans|mlp --data PATH --label COL --out DIR
                   [--k K] [--hidden 256,256] [--epochs E] [--test-fraction F] [--nproc N] ...

Parallelism, over the N ranks:
    (default)                data parallel: DDP, each rank reads its shard of the dataset
    --parallel pipeline      model parallel (mlp): each rank holds a stage of the layers
    --sweep PARAM=V1,V2,...  task parallel: one whole run per value, spread over the ranks,
                             results gathered on rank 0 into OUT/sweep.json

Every check a user's input can fail runs here, before any rank starts (exit 2 with a message
naming the flag): the data path, the label column, k against the number of training samples,
learning rate and batch size, the world size against the number of partitions.

It takes no stack spec: the runtime never reads one. A stack's training settings reach it as
flags (the local target passes `--nproc` from `local.ranks`) or, on an instance, through the
resolved runtime config (`gpufleet run --config`).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from runtime.errors import BadInput
from runtime.train.config import PARALLEL, SWEEPABLE, WORKLOADS, TrainConfig


def _ints(text):
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers (got {text!r})") from None


def _sweep(text):
    param, eq, values = text.partition("=")
    if not eq or param not in SWEEPABLE:
        raise argparse.ArgumentTypeError(f"expected PARAM=V1,V2,... with PARAM one of {', '.join(SWEEPABLE)} "
                                         f"(got {text!r})")
    kind = SWEEPABLE[param]
    try:
        return {"param": param, "values": [kind(v) for v in values.split(",") if v.strip()]}
    except ValueError:
        raise argparse.ArgumentTypeError(f"{param}: expected comma-separated {kind.__name__} values "
                                         f"(got {values!r})") from None


def add_arguments(p):
    p.add_argument("--workload", choices=WORKLOADS, help="what to train (default logreg)")
    p.add_argument("--data", help="a dataset from `gpufleet data partition`, or a CSV/Parquet file")
    p.add_argument("--label", help="the label column (logreg, mlp)")
    p.add_argument("--features", type=lambda s: [v for v in s.split(",") if v],
                   help="feature columns, comma-separated (default: every numeric column but the label)")
    p.add_argument("--out", help="directory for the model artifact, metrics.json and checkpoints")
    p.add_argument("--k", type=int, default=8, help="k-means: number of clusters (default 8)")
    p.add_argument("--hidden", type=_ints, default=[256, 256], help="mlp: hidden widths (default 256,256)")
    p.add_argument("--epochs", type=int, help="epochs (k-means: maximum Lloyd iterations)")
    p.add_argument("--lr", type=float, help="learning rate (default: logreg 1.0, mlp 0.001)")
    p.add_argument("--optimizer", choices=("sgd", "adam"), help="default: logreg sgd (Nesterov), mlp adam")
    p.add_argument("--momentum", type=float, default=0.9)
    p.add_argument("--batch-size", type=int, help="samples per rank per step (default: full batch; mlp 256)")
    p.add_argument("--l2", type=float, default=0.0, help="L2 penalty: objective = mean loss + l2/2 ||W||^2")
    p.add_argument("--test-fraction", type=float, default=0.2, help="held-out fraction (default 0.2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-standardize", action="store_true", help="do not standardize features")
    p.add_argument("--tol", type=float, default=0.0, help="k-means: stop when the squared centroid shift <= TOL")
    p.add_argument("--nproc", type=int, default=1, help="ranks on this machine (default 1)")
    p.add_argument("--parallel", choices=PARALLEL, default="data",
                   help="data: DDP over shards (default); pipeline: the MLP's layers split into a stage per rank")
    p.add_argument("--microbatches", type=int, default=4, help="pipeline: microbatches per step (default 4)")
    p.add_argument("--sweep", type=_sweep, metavar="PARAM=V1,V2,...",
                   help=f"one run per value, spread over the ranks ({', '.join(SWEEPABLE)})")
    p.add_argument("--max-restarts", type=int, default=0, help="restart the group this many times after a failure")
    p.add_argument("--grad-accum", type=int, default=1, help="micro-steps per optimizer step (DDP no_sync)")
    p.add_argument("--bucket-mb", type=float, default=25.0, help="DDP gradient bucket size in MB")
    p.add_argument("--comm-hook", choices=("none", "fp16"), default="none",
                   help="compress DDP gradients for the all-reduce (default none: exact)")
    p.add_argument("--log-every", type=float, default=2.0, help="seconds between progress lines (default 2)")
    p.add_argument("--checkpoint-dir", help="local directory, s3://bucket/prefix or gs://bucket/prefix (default OUT/checkpoints)")
    p.add_argument("--checkpoint-every", type=int, default=0, help="steps between checkpoints (0: end and SIGTERM)")
    p.add_argument("--keep", type=int, default=3, help="checkpoints kept (default 3)")
    p.add_argument("--sync-checkpoint", action="store_true", help="save checkpoints synchronously")
    p.add_argument("--no-resume", action="store_true", help="ignore existing checkpoints")
    p.add_argument("--dtype", choices=("float32", "float64"), default="float32")
    p.add_argument("--json-logs", action="store_true", help="progress as JSON lines on stderr")
    p.add_argument("--endpoint", help="object-store endpoint URL for the s3:// or gs:// locations (default: S3 $GPUFLEET_S3_ENDPOINT, "
                   "$AWS_ENDPOINT_URL_S3, $AWS_ENDPOINT_URL, else AWS; GCS $GPUFLEET_GCS_ENDPOINT, $STORAGE_EMULATOR_HOST, else Google)")


def config_from_args(args) -> TrainConfig:
    return TrainConfig(
        workload=args.workload or "logreg", data=args.data or "", out=args.out or "", label=args.label,
        features=args.features, k=args.k, hidden=args.hidden, epochs=args.epochs, lr=args.lr,
        optimizer=args.optimizer, momentum=args.momentum, batch_size=args.batch_size, l2=args.l2,
        test_fraction=args.test_fraction, seed=args.seed, standardize=False if args.no_standardize else None,
        tol=args.tol, nproc=args.nproc, max_restarts=args.max_restarts, grad_accum=args.grad_accum,
        bucket_mb=args.bucket_mb, comm_hook=args.comm_hook, log_every_s=args.log_every, checkpoint_dir=args.checkpoint_dir, checkpoint_every=args.checkpoint_every,
        keep=args.keep, async_checkpoint=not args.sync_checkpoint, resume=not args.no_resume, dtype=args.dtype,
        json_logs=args.json_logs, endpoint=args.endpoint, parallel=args.parallel,
        microbatches=args.microbatches, sweep=args.sweep,
    )


def validate(cfg: TrainConfig, nnodes: int = 1) -> TrainConfig:
    """Check `cfg` against its data and prepare the data; raise BadInput with every problem."""
    from runtime.train.data import prepare_source

    problems = cfg.problems()
    if cfg.max_restarts < 0:
        problems.append(f"--max-restarts: must be 0 or more (got {cfg.max_restarts})")
    from runtime.train.launcher import local_gpus
    gpus = local_gpus()
    if gpus and cfg.nproc > gpus:
        problems.append(f"--nproc: {cfg.nproc} ranks need {cfg.nproc} GPUs and this machine has {gpus}: "
                        "CUDA runs one rank per GPU (NCCL refuses two ranks on one)")
    if problems:
        raise BadInput(problems)
    world = cfg.nproc * nnodes
    made = [p for p in (cfg.out, os.path.join(cfg.out, "dataset"), os.path.join(cfg.out, "dataset.source.json"))
            if not os.path.exists(p)]
    try:
        return _check_against_data(cfg, world, prepare_source(cfg.data, cfg.out, min_partitions=world,
                                                              endpoint=cfg.endpoint))
    except BadInput:
        # bad input leaves nothing behind: the copy of a CSV/Parquet file made for this run goes too
        for p in made:
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            elif os.path.exists(p):
                os.remove(p)
        raise


def _check_against_data(cfg, world, uri):
    from runtime.train.data import describe, split_mask

    problems = []
    need_label = cfg.workload != "kmeans"
    manifest, _ = describe(uri, cfg.label if need_label else None, cfg.features, cfg.endpoint, need_label)
    # a pipeline stage or a sweep job reads every training row; data parallel ranks read shards
    if world > len(manifest["partitions"]) and cfg.parallel == "data" and not cfg.sweep:
        problems.append(f"--nproc: a world size of {world} is larger than the dataset's {len(manifest['partitions'])} "
                        f"partitions ({cfg.data}); use at most {len(manifest['partitions'])} ranks or repartition")
    n = int(manifest["total_rows"])
    n_train = int((~split_mask(n, cfg.test_fraction, cfg.seed)).sum())
    ks = cfg.sweep["values"] if cfg.sweep and cfg.sweep["param"] == "k" else [cfg.k]
    if cfg.workload == "kmeans" and max(ks) > n_train:
        flag = f"--sweep k={max(ks)}: " if cfg.sweep else "--k: "
        problems.append(f"{flag}{max(ks)} clusters need at least {max(ks)} training samples (the dataset has {n_train} "
                        f"after holding out {cfg.test_fraction:g})")
    if cfg.init_centroids is not None and len(cfg.init_centroids) != cfg.k:
        problems.append(f"init_centroids: {len(cfg.init_centroids)} given for k={cfg.k}")
    if problems:
        raise BadInput(problems)
    cfg.data = uri
    return cfg.resolved()


def cmd_train(args) -> int:
    from runtime.train.launcher import launch

    cfg = validate(config_from_args(args))
    return launch(cfg)


def register(subparsers):
    p = subparsers.add_parser("train", help="distributed training on a partitioned dataset",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(p)
    p.set_defaults(func=cmd_train)
    return p


def main(argv=None) -> int:
    from runtime.errors import run_command

    parser = argparse.ArgumentParser(prog="python -m runtime.train")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] != "train":
        argv = ["train", *argv]
    args = parser.parse_args(argv)
    return run_command(args.func, args)
