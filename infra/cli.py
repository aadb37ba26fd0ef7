"""The `gpufleet` command.

Exit codes: 0 ok, 1 an operation failed (Terraform, the emulator), 2 bad input (a spec, a
flag, a dataset); bad input is reported as one `error: path: problem` line per problem,
before anything is written or applied.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from runtime.errors import EXIT_FAILED, EXIT_OK, BadInput, OperationFailed, run_command


def _say(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


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
    print(f"ok: stack {r.name} on {r.spec.cloud} {r.spec.region}: " + "; ".join(parts))
    return EXIT_OK


def cmd_schema(args) -> int:
    from infra.spec import json_schema

    print(json.dumps(json_schema(), indent=2))
    return EXIT_OK


def cmd_render(args) -> int:
    from infra.render import render

    r = _load(args)
    out = render(r, Path(args.out) if args.out else None, target=args.target)
    print(out)
    return EXIT_OK


def _prepare(args, recreate: bool = False):
    from infra.targets import prepare

    r = _load(args)
    prepared, started = prepare(
        r, args.target, Path(args.out) if args.out else None, offline=args.offline, recreate=recreate
    )
    if started:
        _say(f"started the AWS emulator on {prepared.emulator.endpoint} (stop it with `gpufleet emulator stop`)")
    tf = prepared.terraform
    t0 = time.monotonic()
    if tf.init():
        _say(f"terraform init ({tf.description}) in {time.monotonic() - t0:.1f}s")
    return prepared


def cmd_plan(args) -> int:
    from infra.terraform.runner import format_plan_summary, plan_summary

    prepared = _prepare(args)
    _say(f"planning stack {prepared.stack.name} for target {args.target} in {prepared.workdir} ...")
    plan = prepared.terraform.plan()
    out = prepared.workdir / "plan.json"
    tmp = out.with_suffix(".tmp")
    tmp.write_text(json.dumps(plan, indent=1))
    tmp.replace(out)
    for line in format_plan_summary(plan_summary(plan)):
        print(line)
    print(f"wrote {out}")
    return EXIT_OK


def _confirm_real_cloud(args, verb: str) -> None:
    if args.target == "emulator" or args.yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(f"--yes: required to {verb} on target {args.target} without a terminal to confirm on")
    answer = input(f"{verb} stack on {args.target}? type 'yes': ")
    if answer.strip() != "yes":
        raise OperationFailed(f"{verb} cancelled")


def _offer_recreate(args, exc) -> bool:
    if getattr(args, "recreate", False):
        return True
    if sys.stdin.isatty():
        _say(str(exc))
        return input("Recreate the stack in the running emulator now? [y/N] ").strip().lower() in ("y", "yes")
    raise exc


def cmd_apply(args) -> int:
    from infra.targets import StaleState, record_run
    from infra.terraform.runner import ApplyProgress

    try:
        prepared = _prepare(args, recreate=args.recreate)
    except StaleState as exc:
        if not _offer_recreate(args, exc):
            return EXIT_FAILED
        prepared = _prepare(args, recreate=True)
    _confirm_real_cloud(args, "apply")
    _say(f"applying stack {prepared.stack.name} to {args.target} ...")
    t0 = time.monotonic()
    progress = ApplyProgress(_say)
    try:
        prepared.terraform.apply(progress=progress)
    finally:
        record_run(prepared)  # even a partial apply created resources in this run
    _say(f"applied {progress.done} resource(s) in {time.monotonic() - t0:.1f}s")
    print(json.dumps(prepared.terraform.output(), indent=2))
    return EXIT_OK


def cmd_destroy(args) -> int:
    from infra.targets import RUN_RECORD, STATE_FILE
    from infra.terraform.runner import ApplyProgress

    # --forget: a state from an earlier emulator run is set aside, leaving nothing to destroy
    prepared = _prepare(args, recreate=args.forget)
    if not (prepared.workdir / STATE_FILE).is_file():
        _say(f"nothing to destroy: no state in {prepared.workdir}")
        return EXIT_OK
    _confirm_real_cloud(args, "destroy")
    t0 = time.monotonic()
    progress = ApplyProgress(_say)
    prepared.terraform.destroy(progress=progress)
    (prepared.workdir / RUN_RECORD).unlink(missing_ok=True)
    _say(f"destroyed {progress.done} resource(s) in {time.monotonic() - t0:.1f}s")
    return EXIT_OK


def cmd_outputs(args) -> int:
    prepared = _prepare(args)
    print(json.dumps(prepared.terraform.output(), indent=2))
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


def cmd_run(args) -> int:
    from runtime.role import run_role

    return run_role(Path(args.config))


def _stack_args(p: argparse.ArgumentParser, with_target: bool = True) -> None:
    p.add_argument("spec", help="the stack spec (YAML)")
    p.add_argument("--out", help="the rendered root's directory (default build/<name>/)")
    if with_target:
        p.add_argument("--target", choices=("emulator", "aws"), default="emulator",
                       help="emulator (default: a local moto server) or aws (real AWS)")
        p.add_argument("--offline", action="store_true",
                       help="use the bundled AWS provider instead of the registry (always on for the emulator)")


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="gpufleet",
        description="Scalable AI systems from one stack spec: Terraform for GPU fleets, and the runtime they run.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("validate", help="check a stack spec and report every problem")
    p.add_argument("spec")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the stack spec's JSON Schema (for editors)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("render", help="write the stack's Terraform root (default build/<name>/)")
    _stack_args(p)
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("plan", help="render, terraform init and plan; writes build/<name>/plan.json")
    _stack_args(p)
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("apply", help="render and apply; prints the outputs")
    _stack_args(p)
    p.add_argument("--recreate", action="store_true",
                   help="discard a state left from an earlier emulator run and create the stack again")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation on a real cloud")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("destroy", help="destroy what apply created")
    _stack_args(p)
    p.add_argument("--forget", action="store_true",
                   help="discard a state left from an earlier emulator run instead of failing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation on a real cloud")
    p.set_defaults(func=cmd_destroy)

    p = sub.add_parser("outputs", help="print the stack's Terraform outputs as JSON")
    _stack_args(p)
    p.set_defaults(func=cmd_outputs)

    p = sub.add_parser("emulator", help="the local AWS emulator (moto on 127.0.0.1)")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--check", action="store_true", help="status: exit 1 when not running")
    p.set_defaults(func=cmd_emulator)

    p = sub.add_parser("run", help="run an instance's role (train or serve) from its runtime config")
    p.add_argument("--config", required=True, help="the resolved runtime config JSON that infra rendered")
    p.set_defaults(func=cmd_run)

    for name, (module, help_text) in RUNTIME_COMMANDS.items():
        if name in sub.choices:
            continue  # one module's register() adds several commands (runtime.local.cli)
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
    "up": ("runtime.local.cli", "run a stack on this machine (local target): data, training, replicas, HAProxy, autoscaler"),
    "down": ("runtime.local.cli", "stop everything `up` started, by pid"),
    "status": ("runtime.local.cli", "replicas, load balancer view and autoscaler decisions of a local stack"),
    "demo": ("runtime.local.cli", "a load ramp against a local stack: scaling report and PNG plot"),
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
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
