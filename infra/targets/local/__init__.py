"""The `local` target: a whole stack on this machine.

`up` writes a synthetic dataset, partitions it (runtime.data), trains with `local.ranks` ranks
(`python -m runtime.train`), renders HAProxy's config and starts the fleet manager
(`python -m runtime.fleet DIR`, which runs the replicas, HAProxy and the autoscaler) with a
`runtime.fleet.config.FleetConfig` built from the spec; `down` stops it all by pid; `status`
reports it; `demo` ramps a load against it.

stack.py (spec checks, `up`, `down`, the FleetConfig), processes.py (this stack's live
processes), status.py (`status` and its text), training.py (the example data and training
step), haproxy.py (the config from templates/haproxy.cfg.j2), demo.py (the load ramp, report
and plot of `make up`), load.py (an open-loop load generator).
"""

from __future__ import annotations

from infra.target_names import LOCAL
from infra.targets.base import LOCAL_VERBS, Target


class LocalTarget(Target):
    name = LOCAL
    summary = "this machine"
    verbs = LOCAL_VERBS

    def load(self, spec_path: str):
        from infra.targets.local.stack import load

        return load(spec_path)

    def up(self, spec_path: str, **options) -> dict:
        """Start the stack (see stack.up for the options); returns the fleet's state once min replicas are ready."""
        from infra.targets.local.stack import up

        return up(spec_path, **options)

    def down(self, spec_path: str) -> list[dict] | None:
        """Stop the stack; what was running, or None (nothing changed) when it was not up."""
        from infra.targets.local.stack import down

        return down(spec_path)

    def status(self, spec_path: str) -> dict:
        from infra.targets.local.status import status

        return status(spec_path)

    def format_status(self, s: dict) -> str:
        from infra.targets.local.status import format_status

        return format_status(s)

    def demo(self, spec_path: str, **options) -> int:
        from infra.targets.local.demo import run_demo

        return run_demo(spec_path, **options)
