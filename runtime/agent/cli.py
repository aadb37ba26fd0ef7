"""`gpufleet agent` (and `python -m runtime.agent`): the serving instance's agent.

On AWS it publishes to CloudWatch; with `--cloud gcp` (or `"cloud": "gcp"` in the config) to
Cloud Monitoring.

Settings come from `--config FILE` (the runtime config JSON: an `agent` section or the section
itself) and flags; a flag given on the command line wins.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys

from runtime.agent.agent import Agent, AgentConfig
from runtime.errors import EXIT_BAD_INPUT, EXIT_OK, BadInput
from runtime.flags import add_flag_table, settings_from

_FLAGS = {
    "--namespace": ("namespace", str, "CloudWatch namespace (default GPUFleet)"),
    "--group": ("group_name", str, "Auto Scaling group name (default: from instance metadata)"),
    "--region": ("region", str, "AWS region"),
    "--interval-s": ("publish_interval_s", float, "seconds between metric publications (default 60)"),
    "--sample-interval-s": ("sample_interval_s", float, "seconds between in-flight samples (default 1)"),
    "--lifecycle-hook": ("lifecycle_hook_name", str, "termination lifecycle hook to complete after draining"),
    "--lifecycle-poll-s": ("lifecycle_poll_s", float, "seconds between termination checks (default 5)"),
    "--metadata-url": ("metadata_url", str, "instance metadata base URL (default http://169.254.169.254)"),
    "--endpoint-url": ("endpoint_url", str, "AWS endpoint (default AWS_ENDPOINT_URL or AWS)"),
    "--drain-timeout-s": ("drain_timeout_s", float, "longest wait for replicas to exit (default 60)"),
    "--cloud": ("cloud", str, "aws (CloudWatch, the default) or gcp (Cloud Monitoring)"),
    "--metric-type": ("metric_type", str, "gcp: the in-flight metric's type "
                      "(default custom.googleapis.com/gpufleet/inflight_requests)"),
    "--project": ("project", str, "gcp: project to write metrics to (default: the instance's)"),
    "--monitoring-endpoint": ("monitoring_endpoint", str, "gcp: Cloud Monitoring API endpoint (default Google's)"),
}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", metavar="FILE", help="runtime config JSON with an 'agent' section")
    add_flag_table(parser, _FLAGS)
    parser.add_argument("--server-url", dest="server_urls", action="append", help="a replica's base URL (repeatable)")
    parser.add_argument("--pid-file", dest="server_pid_files", action="append", help="a replica's pid file (repeatable)")
    parser.add_argument("--once", action="store_true", help="sample, publish and check termination once, then exit")


def register(subparsers) -> argparse.ArgumentParser:
    parser = subparsers.add_parser("agent", help="publish scaling metrics and drain replicas before termination",
                                   description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    parser.set_defaults(func=run)
    return parser


def config_from_args(args) -> AgentConfig:
    data = settings_from(args, _FLAGS, "agent")
    names = {f.name for f in dataclasses.fields(AgentConfig)}
    unknown = sorted(set(data) - names)
    if unknown:
        raise BadInput([f"agent.{k}: unknown setting (allowed {sorted(names)})" for k in unknown])
    for dest in ("server_urls", "server_pid_files"):
        if getattr(args, dest, None):
            data[dest] = tuple(getattr(args, dest))
        elif dest in data:
            data[dest] = tuple(data[dest])
    return AgentConfig(**data)


def run(args) -> int:
    logging.basicConfig(level="INFO", format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        agent = Agent(config_from_args(args))
    except BadInput as e:
        print(f"gpufleet agent: error: {e}", file=sys.stderr)
        return EXIT_BAD_INPUT
    if args.once:
        agent._next_publish = 0.0
        agent.step(0.0)
    else:
        agent.run()
    return EXIT_OK


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.agent", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    add_arguments(parser)
    return run(parser.parse_args(argv))
