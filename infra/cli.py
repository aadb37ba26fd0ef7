"""The `gpufleet` command.

Exit codes: 0 ok, 1 an operation failed (Terraform, the emulator), 2 bad input (a spec, a
flag, a dataset); bad input is reported as one `error: path: problem` line per problem,
before anything is written or applied. Where 2 means "changes" instead (`plan
--detailed-exitcode`, `drift`: infra/commands/deploy.py), every error exits 1.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from infra.commands import bundle, deploy, preflight, state
from infra.commands.common import say as _say
from infra.commands.common import target_arg as _target_arg
from infra.commands.common import target_of as _target
from runtime.errors import EXIT_BAD_INPUT, EXIT_FAILED, EXIT_OK, run_command
from runtime.train.rules import WORKLOADS


def _load(args):
    from infra.spec import load_stack

    return load_stack(args.spec)


def cmd_validate(args) -> int:
    r = _load(args)
    parts = []
    if r.training_group:
        t = r.spec.training
        parts.append(f"training {t.nodes.min}-{t.nodes.max} x {t.instance_type} ({r.training_gpus_per_node} GPU each)")
    for p in r.pools:
        parts.append(f"serving pool {p.name} {p.size.min}-{p.size.max} x {p.instance_type} (weight {p.weight})")
    where = f"{r.spec.cloud} {r.spec.region}"
    if r.gcp is not None:
        where += f" (project {r.gcp.project}, zones {', '.join(r.gcp.zones)})"
        parts += [f"group {g.name} {g.min}-{g.max} {'spot' if g.spot else 'on-demand'}"
                  for f in r.gcp.fleets for g in f.groups]
    print(f"ok: stack {r.name} on {where}: " + "; ".join(parts))
    return EXIT_OK


def cmd_schema(args) -> int:
    from infra.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_emulator(args) -> int:
    from infra import emulator

    if args.action == "start":
        info, started = emulator.start()
        print(json.dumps({"endpoint": info.endpoint, "pid": info.pid, "run_id": info.run_id, "started": started}))
    elif args.action == "stop":
        print("stopped" if emulator.stop() else "not running")
    else:
        info = emulator.status()
        if info is None:
            print(json.dumps({"running": False}))
            return EXIT_FAILED if args.check else EXIT_OK
        print(json.dumps({"running": True, "endpoint": info.endpoint, "pid": info.pid, "run_id": info.run_id}))
    return EXIT_OK


def cmd_init(args) -> int:
    from infra.scaffold import init

    directory = Path(args.directory)
    for path in init(directory, force=args.force):
        print(f"wrote {path}")
    where = "" if directory.resolve() == Path.cwd().resolve() else f"cd {directory} && "
    _say(f"next: {where}make plan   (the example stack, planned against the local AWS emulator)")
    return EXIT_OK


INIT_DESCRIPTION = """\
Scaffold a repository that keeps stack specs and runs gpufleet in CI:
  stacks/example.yaml              an example stack spec
  Makefile                         setup, validate, plan, summary, apply, drift, destroy, bootstrap
  .github/workflows/gpufleet.yml   plan on pull requests, apply the reviewed plan on main (OIDC)
  .gitignore
Existing files are never overwritten without --force: each is named, exit 2, nothing written.
"""


def cmd_run(args) -> int:
    from runtime.role import run_role

    return run_role(Path(args.config))


# -- the local target: the stack on this machine ---------------------------------------------
LOCAL_DESCRIPTION = """\
up      partition the example data, train with local.ranks ranks, start the serving
        replicas behind HAProxy and the autoscaler; returns when min replicas are ready
down    stop everything `up` started, by pid (a stack that is not up: a message, no change)
status  each replica (pid, port, state), HAProxy's view of it, the autoscaler's last decision
demo    an open-loop load ramp against the fleet; prints a report and writes a PNG timeline

Exit codes: 0 ok, 1 failed (already up, ports in use, a process did not start), 2 bad input.
"""


def cmd_up(args) -> int:
    target = _target(args)
    target.up(args.spec, model=args.model, workload=args.workload, epochs=args.epochs, hidden=args.hidden,
              test_delay_ms=args.test_delay_ms, timeout_s=args.timeout)
    print(target.format_status(target.status(args.spec)))
    print(f"stop it with: gpufleet down {args.spec}")
    return EXIT_OK


def cmd_down(args) -> int:
    stopped = _target(args).down(args.spec)
    if stopped is None:
        _say(f"stack is not up: nothing to stop ({args.spec})")
        return EXIT_OK
    print("stopped " + ", ".join(f"{p['what']} (pid {p['pid']})" for p in stopped))
    return EXIT_OK


def cmd_status(args) -> int:
    target = _target(args)
    s = target.status(args.spec)
    print(json.dumps(s, indent=2) if args.json else target.format_status(s))
    return EXIT_OK if s["up"] else EXIT_FAILED


def cmd_demo(args) -> int:
    return _target(args).demo(args.spec, peak_rps=args.peak_rps, duration_s=args.duration, out=args.out)


def _delays(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of milliseconds (got {text!r})") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"a comma-separated list of milliseconds >= 0 (got {text!r})")
    return values


def _local_args(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("spec", help="the stack spec (YAML)")
    _target_arg(p, verb)


def _add_local_commands(sub) -> None:
    p = sub.add_parser("up", help="run a stack on this machine (local target): data, training, replicas, HAProxy, "
                                  "autoscaler", description=LOCAL_DESCRIPTION,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    _local_args(p, "up")
    p.add_argument("--model", metavar="DIR", help="serve this model artifact; skips the data and training steps")
    p.add_argument("--workload", choices=WORKLOADS, default="mlp", help="what to train (default mlp)")
    p.add_argument("--epochs", type=int, help="training epochs (default: runtime.train's)")
    p.add_argument("--hidden", default="64,64", help="mlp hidden layer sizes (default 64,64)")
    p.add_argument("--test-delay-ms", type=_delays, metavar="MS[,MS...]",
                   help="testing and demos: extra delay per forward pass, per replica in start order (cycled)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for min replicas to be ready")
    p.set_defaults(func=cmd_up)

    p = sub.add_parser("down", help="stop everything `up` started, by pid")
    _local_args(p, "down")
    p.set_defaults(func=cmd_down)

    p = sub.add_parser("status", help="replicas, load balancer view and autoscaler decisions of a local stack")
    _local_args(p, "status")
    p.add_argument("--json", action="store_true", help="as JSON (URL, each replica's pid, port, state)")
    p.set_defaults(func=cmd_status)

    p = sub.add_parser("demo", help="a load ramp against a local stack: scaling report and PNG plot")
    _local_args(p, "demo")
    p.add_argument("--peak-rps", type=float, help="highest arrival rate (default: 3 x one replica's target load)")
    p.add_argument("--duration", type=float, help="seconds of load before the ramp down waits for scale-in")
    p.add_argument("--out", help="where the report JSON and PNG go (default build/<name>/local/)")
    p.set_defaults(func=cmd_demo)


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpufleet",
        description="Scalable AI systems from one stack spec: Terraform for GPU fleets, and the runtime they run.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("init", help="scaffold a repository: example spec, Makefile, CI workflow, .gitignore",
                       description=INIT_DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("directory", nargs="?", default=".", help="where to write (default: the current directory)")
    p.add_argument("--force", action="store_true", help="overwrite files that already exist")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("validate", help="check a stack spec and report every problem")
    p.add_argument("spec")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the stack spec's JSON Schema (for editors)")
    p.set_defaults(func=cmd_schema)

    deploy.register(sub)  # render, plan, apply, destroy, outputs, drift
    bundle.register(sub)  # the wheelhouse

    p = sub.add_parser("emulator", help="the local AWS emulator (moto on 127.0.0.1)")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--check", action="store_true", help="status: exit 1 when not running")
    p.set_defaults(func=cmd_emulator)

    state.register(sub)  # bootstrap, unlock
    preflight.register(sub)  # zones, machine and GPU types, GPU quotas (gcp)

    p = sub.add_parser("run", help="run an instance's role (train or serve) from its runtime config")
    p.add_argument("--config", required=True, help="the resolved runtime config JSON that infra rendered")
    p.set_defaults(func=cmd_run)

    _add_local_commands(sub)

    for name, (module, help_text) in RUNTIME_COMMANDS.items():
        if name == command:
            _register_runtime(sub, module)
        elif _available(module):
            sub.add_parser(name, help=help_text, add_help=False)
    return parser


# Subcommands the runtime packages provide, each module exposing `register(subparsers)`.
# Only the one being run is imported, so `gpufleet render` does not pay for torch or pyarrow.
RUNTIME_COMMANDS = {
    "data": ("runtime.data.cli", "partition, inspect and query datasets"),
    "train": ("runtime.train.cli", "distributed training on a partitioned dataset"),
    "serve": ("runtime.serve.cli", "serve a model artifact over HTTP"),
    "agent": ("runtime.agent.cli", "a serving instance's agent: scaling metrics, drain on termination"),
}


def _available(module: str) -> bool:
    # A file check, not find_spec: that would import the parent package (and its pyarrow or torch).
    from infra import PROJECT_ROOT

    return (PROJECT_ROOT / (module.replace(".", "/") + ".py")).is_file()


def _register_runtime(sub, module: str) -> None:
    import importlib

    importlib.import_module(module).register(sub)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    command = next((a for a in argv if not a.startswith("-")), None)
    parser = build_parser(command)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse's usage error
        if exc.code == EXIT_BAD_INPUT and deploy.exit_2_means_changes(command, argv):
            raise SystemExit(EXIT_FAILED) from None
        raise
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
