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

from infra.target_names import DEFAULT, EMULATOR
from runtime.errors import EXIT_FAILED, EXIT_OK, BadInput, OperationFailed, run_command
from runtime.train.rules import WORKLOADS


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


def _target(args):
    from infra.targets import get_target

    return get_target(args.target, args.command)


def cmd_render(args) -> int:
    target = _target(args)
    out = target.render(target.load(args.spec), Path(args.out) if args.out else None)
    print(out)
    return EXIT_OK


def _prepare(args, recreate: bool = False, target=None):
    target = target or _target(args)
    prepared, started = target.prepare(
        target.load(args.spec), Path(args.out) if args.out else None, offline=args.offline, recreate=recreate
    )
    if started:
        _say(f"started the AWS emulator on {prepared.emulator.endpoint} (stop it with `gpufleet emulator stop`)")
    _require_state_backend(prepared, args.spec)
    tf = prepared.terraform
    t0 = time.monotonic()
    if tf.init():
        _say(f"terraform init ({tf.description}) in {time.monotonic() - t0:.1f}s")
    return prepared


def _require_state_backend(prepared, spec: str) -> None:
    """Before init: a remote state's bucket (and lock table) must exist, else exit 2 saying how to make it."""
    if prepared.stack.backend is not None:
        from infra.state.backend import endpoint_for, require

        require(prepared.stack.backend, endpoint_for(prepared.target, prepared.emulator), spec)


def cmd_plan(args) -> int:
    from infra.terraform.runner import format_plan_summary, plan_summary

    from infra.targets.base import PLAN_FILE

    prepared = _prepare(args)
    _say(f"planning stack {prepared.stack.name} for target {args.target} in {prepared.workdir} ...")
    plan = _target(args).plan(prepared)
    for line in format_plan_summary(plan_summary(plan)):
        print(line)
    print(f"wrote {prepared.workdir / PLAN_FILE}")
    return EXIT_OK


def _confirm_real_cloud(args, verb: str) -> None:
    if not _target(args).real_cloud or args.yes:
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
    from infra.targets.emulator import StaleState
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
    target = _target(args)
    target.apply(prepared, progress=progress)
    _say(f"applied {progress.done} resource(s) in {time.monotonic() - t0:.1f}s")
    print(json.dumps(target.outputs(prepared), indent=2))
    return EXIT_OK


def cmd_destroy(args) -> int:
    from infra.terraform.runner import ApplyProgress

    # --forget: a state from an earlier emulator run is set aside, leaving nothing to destroy
    prepared = _prepare(args, recreate=args.forget)
    if not prepared.has_state():
        _say(f"nothing to destroy: no state in {prepared.workdir}")
        return EXIT_OK
    _confirm_real_cloud(args, "destroy")
    t0 = time.monotonic()
    progress = ApplyProgress(_say)
    _target(args).destroy(prepared, progress=progress)
    _say(f"destroyed {progress.done} resource(s) in {time.monotonic() - t0:.1f}s")
    return EXIT_OK


def cmd_outputs(args) -> int:
    prepared = _prepare(args)
    print(json.dumps(_target(args).outputs(prepared), indent=2))
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


def cmd_state(args) -> int:
    """`state bootstrap`: create the S3 backend's bucket (and lock table); `state unlock`: release a lock."""
    from infra.targets import get_target

    target = get_target(args.target, "plan")
    stack = target.load(args.spec)
    if stack.backend is None:
        raise BadInput(f"backend.type: `gpufleet state` needs an s3 backend (got 'local' in {args.spec}; the state "
                       "is a file in the rendered root)")
    if args.action == "unlock":
        if not args.lock_id:
            raise BadInput("lock_id: required to unlock (got nothing; allowed: the lock ID a locked plan or apply printed)")
        prepared = _prepare(args, target=target)
        res = prepared.terraform.run("force-unlock", "-force", "-no-color", args.lock_id)
        if res.rc != 0:
            raise OperationFailed(f"releasing lock {args.lock_id} failed:\n{(res.stderr or res.stdout).strip()}")
        print(f"released lock {args.lock_id} on {stack.backend.uri}")
        return EXIT_OK
    from infra.state.backend import bootstrap, endpoint_for

    info = None
    if target.name == EMULATOR:
        from infra import emulator

        info, started = emulator.start()
        if started:
            _say(f"started the AWS emulator on {info.endpoint} (stop it with `gpufleet emulator stop`)")
    for line in bootstrap(stack.backend, endpoint_for(target.name, info)):
        print(line)
    return EXIT_OK


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


def _target_arg(p: argparse.ArgumentParser, verb: str) -> None:
    """--target, its choices the registered targets that answer `verb` (the first is the default)."""
    from infra.targets import TARGETS, names_for

    names = names_for(verb)
    default = DEFAULT if DEFAULT in names else names[0]
    described = [f"{n} ({'the default: ' if n == default else ''}{TARGETS[n].summary})" for n in names]
    p.add_argument("--target", choices=names, default=default, help="where the stack goes: " + ", ".join(described))


def _stack_args(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("spec", help="the stack spec (YAML)")
    p.add_argument("--out", help="the rendered root's directory (default build/<name>/)")
    _target_arg(p, verb)
    p.add_argument("--offline", action="store_true",
                   help="use the bundled AWS provider instead of the registry (always on for the emulator)")


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

    p = sub.add_parser("validate", help="check a stack spec and report every problem")
    p.add_argument("spec")
    p.set_defaults(func=cmd_validate)

    p = sub.add_parser("schema", help="print the stack spec's JSON Schema (for editors)")
    p.set_defaults(func=cmd_schema)

    p = sub.add_parser("render", help="write the stack's Terraform root (default build/<name>/)")
    _stack_args(p, "render")
    p.set_defaults(func=cmd_render)

    p = sub.add_parser("plan", help="render, terraform init and plan; writes build/<name>/plan.json")
    _stack_args(p, "plan")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser("apply", help="render and apply; prints the outputs")
    _stack_args(p, "apply")
    p.add_argument("--recreate", action="store_true",
                   help="discard a state left from an earlier emulator run and create the stack again")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation on a real cloud")
    p.set_defaults(func=cmd_apply)

    p = sub.add_parser("destroy", help="destroy what apply created")
    _stack_args(p, "destroy")
    p.add_argument("--forget", action="store_true",
                   help="discard a state left from an earlier emulator run instead of failing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation on a real cloud")
    p.set_defaults(func=cmd_destroy)

    p = sub.add_parser("outputs", help="print the stack's Terraform outputs as JSON")
    _stack_args(p, "outputs")
    p.set_defaults(func=cmd_outputs)

    p = sub.add_parser("emulator", help="the local AWS emulator (moto on 127.0.0.1)")
    p.add_argument("action", choices=("start", "stop", "status"))
    p.add_argument("--check", action="store_true", help="status: exit 1 when not running")
    p.set_defaults(func=cmd_emulator)

    p = sub.add_parser("state", help="the stack's remote state: create its S3 bucket, release a stuck lock",
                       description="bootstrap  create the s3 backend's bucket (versioned, encrypted, public access "
                                   "blocked) and, with lock dynamodb, its table; idempotent\n"
                                   "unlock     release a lock whose run died (the ID that a locked plan or apply printed)",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("bootstrap", "unlock"))
    p.add_argument("spec", help="the stack spec (YAML) whose backend: names the state")
    p.add_argument("lock_id", nargs="?", help="unlock: the lock's ID")
    p.add_argument("--out", help="unlock: the rendered root's directory (default build/<name>/)")
    _target_arg(p, "plan")
    p.set_defaults(func=cmd_state, offline=False)

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
    args = parser.parse_args(argv)
    return run_command(args.func, args)


if __name__ == "__main__":
    sys.exit(main())
