"""runtime.train: distributed training on a partitioned dataset, surviving failures (seed 3.2, 4).

One code path for one process, several local ranks and the GPU instances of a training fleet:

| module | what it holds |
|---|---|
| `config` | `TrainConfig`: a run's settings, validated before any rank starts |
| `rules` | workload names and their rules, one table that the CLI and the spec's checks both render |
| `cli` | `gpufleet train` / `python -m runtime.train`: flags -> config -> checks -> launch |
| `launcher` | in-process for one rank, else PyTorch's elastic agent (restarts, c10d rendezvous) |
| `worker` | one rank's entry: process group, then dispatch to a runner |
| `lifecycle` | what every runner shares: stop on SIGTERM, RNG state, fault injection, events, outputs |
| `classifier` | the DDP runner for logreg and mlp: steps, checkpoints, a `ClassifierResult` |
| `clustering` | the k-means runner: distributed Lloyd, checkpoints |
| `data` | source preparation, the held-out split (`RunData`), lockstep steps over the sharded sampler |
| `kmeans` | greedy k-means++ and distributed Lloyd iterations |
| `checkpoint` | atomic checkpoints (state, then COMMIT marker) to a directory or S3, keep K, async |
| `pipeline` | model parallel: an MLP split into stages on ranks (send/recv); `--parallel pipeline` |
| `tasks` | task parallel: independent jobs spread over ranks, gathered on rank 0; `--sweep` |
| `termination` | spot / Auto Scaling termination notices -> checkpoint -> complete the lifecycle action |
| `discovery`, `role` | rendezvous from the training Auto Scaling group; `gpufleet run` on an instance |

Lower modules never import the entry (`worker`); `pipeline` and `tasks` build on `lifecycle`,
`classifier` and `clustering`. Training never imports serving (tests/unit/test_layering.py).

    from runtime.train import TrainConfig, validate, launch
    launch(validate(TrainConfig(workload="logreg", data="ds/", label="y", out="run/", nproc=2)))
"""

from runtime.train.config import TrainConfig

__all__ = ["TrainConfig", "launch", "validate"]


def launch(cfg, **kw):
    from runtime.train.launcher import launch as _launch
    return _launch(cfg, **kw)


def validate(cfg, nnodes=1):
    from runtime.train.cli import validate as _validate
    return _validate(cfg, nnodes)
