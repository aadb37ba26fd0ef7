"""`gpufleet up|down|status|demo SPEC --target local` (and `python -m runtime.local ...`).

    up      partition the example data, train with local.ranks ranks, start the serving
            replicas behind HAProxy and the autoscaler; returns when min replicas are ready
    down    stop everything `up` started, by pid (a stack that is not up: a message, no change)
    status  each replica (pid, port, state), HAProxy's view of it, the autoscaler's last decision
    demo    an open-loop load ramp against the fleet; prints a report and writes a PNG timeline

Exit codes: 0 ok, 1 failed (already up, ports in use, a process did not start), 2 bad input.
Nothing heavy is imported until a command runs.
"""

from __future__ import annotations

import argparse
import json
import sys

from runtime.errors import EXIT_FAILED, EXIT_OK, run_command


def _delays(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"a comma-separated list of milliseconds (got {text!r})") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"a comma-separated list of milliseconds >= 0 (got {text!r})")
    return values


def _target(p: argparse.ArgumentParser) -> None:
    p.add_argument("spec", help="the stack spec (YAML)")
    p.add_argument("--target", choices=("local",), default="local", help="where the stack runs (local: this machine)")


def cmd_up(args) -> int:
    from runtime.local import stack
    from runtime.local.stack import format_status

    stack.up(args.spec, model=args.model, workload=args.workload, epochs=args.epochs, hidden=args.hidden,
             test_delay_ms=args.test_delay_ms, timeout_s=args.timeout)
    print(format_status(stack.status(args.spec)))
    print(f"stop it with: gpufleet down {args.spec}")
    return EXIT_OK


def cmd_down(args) -> int:
    from runtime.local import stack

    stopped = stack.down(args.spec)
    if stopped is None:
        print(f"stack is not up: nothing to stop ({args.spec})", file=sys.stderr)
        return EXIT_OK
    what = ", ".join(f"{p['what']} (pid {p['pid']})" for p in stopped)
    print(f"stopped {what}")
    return EXIT_OK


def cmd_status(args) -> int:
    from runtime.local import stack

    s = stack.status(args.spec)
    print(json.dumps(s, indent=2) if args.json else stack.format_status(s))
    return EXIT_OK if s["up"] else EXIT_FAILED


def cmd_demo(args) -> int:
    from runtime.local.demo import run_demo

    return run_demo(args.spec, peak_rps=args.peak_rps, duration_s=args.duration, out=args.out)


def cmd_manager(args) -> int:
    from runtime.local.fleet import main

    return main(args.directory)


COMMANDS = ("up", "down", "status", "demo")


def register(subparsers) -> None:
    """Add up, down, status and demo to the gpufleet CLI; each sets `func(args) -> exit code`.

    A name already in `subparsers` (a placeholder the caller added) is left as it is.
    """
    taken = set(getattr(subparsers, "choices", None) or ())

    def add(name, **kw):
        return argparse.ArgumentParser(add_help=False) if name in taken else subparsers.add_parser(name, **kw)

    p = add("up", help="run the stack on this machine: data, training, replicas, HAProxy, autoscaler",
                              description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    _target(p)
    p.add_argument("--model", metavar="DIR", help="serve this model artifact; skips the data and training steps")
    p.add_argument("--workload", choices=("logreg", "kmeans", "mlp"), default="mlp", help="what to train (default mlp)")
    p.add_argument("--epochs", type=int, help="training epochs (default: runtime.train's)")
    p.add_argument("--hidden", default="64,64", help="mlp hidden layer sizes (default 64,64)")
    p.add_argument("--test-delay-ms", type=_delays, metavar="MS[,MS...]",
                   help="testing and demos: extra delay per forward pass, per replica in start order (cycled)")
    p.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for min replicas to be ready")
    p.set_defaults(func=cmd_up)

    p = add("down", help="stop everything `up` started for the stack")
    _target(p)
    p.set_defaults(func=cmd_down)

    p = add("status", help="the local stack's replicas, load balancer view and last scaling decision")
    _target(p)
    p.add_argument("--json", action="store_true", help="as JSON (URL, each replica's pid, port, state)")
    p.set_defaults(func=cmd_status)

    p = add("demo", help="a load ramp that makes the local fleet scale out and in; report and PNG")
    _target(p)
    p.add_argument("--peak-rps", type=float, help="highest arrival rate (default: 3 x one replica's target load)")
    p.add_argument("--duration", type=float, help="seconds of load before the ramp down waits for scale-in")
    p.add_argument("--out", help="where the report JSON and PNG go (default build/<name>/local/)")
    p.set_defaults(func=cmd_demo)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.local", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    register(sub)
    m = sub.add_parser("manager", help="internal: the fleet manager process that `up` starts")
    m.add_argument("directory")
    m.set_defaults(func=cmd_manager)
    args = parser.parse_args(argv)
    return run_command(args.func, args)
