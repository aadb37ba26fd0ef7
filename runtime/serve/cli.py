"""`gpufleet serve` (and `python -m runtime.serve`): run one model-serving replica.

Settings come from `--config FILE` (the runtime config JSON infra renders: either a `serve`
section or the section itself) and flags; a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import sys

from runtime.errors import EXIT_BAD_INPUT, BadInput
from runtime.flags import add_flag_table, settings_from
from runtime.serve.config import ServeConfig

# flag -> ServeConfig field; every default is None so "not given" is distinguishable.
_FLAGS = {
    "--model": ("model", str, "model artifact: a directory, s3:// or gs://bucket/prefix (required)"),
    "--host": ("host", str, "address to listen on (default 127.0.0.1)"),
    "--port": ("port", int, "port to listen on; 0 picks a free one (default 8080)"),
    "--max-batch-size": ("max_batch_size", int, "most rows per forward pass; 1 turns batching off (default 64)"),
    "--max-delay-ms": ("max_delay_ms", float, "longest wait for a batch to fill once the worker is free; "
                                              "a lone request never waits (default 1)"),
    "--queue-size": ("queue_size", int, "most queued requests before 429 (default 1024)"),
    "--deadline-ms": ("default_deadline_ms", float, "deadline of a request without X-Deadline-Ms (default 10000)"),
    "--drain-timeout-s": ("drain_timeout_s", float, "most seconds from SIGTERM to exit (default 30)"),
    "--deregistration-window-s": ("deregistration_window_s", float,
                                  "seconds after SIGTERM during which requests are still served (default 0)"),
    "--max-body-bytes": ("max_body_bytes", int, "largest request body (default 1048576)"),
    "--test-delay-ms": ("test_delay_ms", float, "testing only: extra sleep per forward pass (default 0)"),
    "--log-level": ("log_level", str, "critical|error|warning|info|debug (default warning)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="runtime config JSON with a 'serve' section")
    add_flag_table(parser, _FLAGS)
    parser.add_argument("--pid-file", metavar="FILE", help="write the process id here (read by runtime.agent to drain)")


def register(subparsers) -> argparse.ArgumentParser:
    """Add the `serve` command to the gpufleet CLI; sets `func(args) -> exit code`."""
    parser = subparsers.add_parser("serve", help="serve a trained model over HTTP (one replica)",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def config_from_args(args: argparse.Namespace) -> ServeConfig:
    data = settings_from(args, _FLAGS, "serve")
    if not data.get("model"):
        raise BadInput("--model: required (a model artifact directory, s3:// or gs://bucket/prefix)")
    return ServeConfig.from_dict(data)


def run(args: argparse.Namespace) -> int:
    try:
        cfg = config_from_args(args)
    except BadInput as e:
        print(f"gpufleet serve: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    from runtime.serve.server import run_replica

    return run_replica(cfg, pid_file=args.pid_file)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.serve", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
