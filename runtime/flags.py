"""Flags and `--config` files for the runtime's long-running commands (serve, agent).

Each command describes its flags in one table, `{"--flag": (dest, type, help)}`; every flag
defaults to None, so a value given on the command line overrides the same setting in the
runtime config's section (the JSON that cloud-init hands an instance), which overrides the
command's own defaults.
"""

from __future__ import annotations

import argparse
import json

from runtime.errors import BadInput


def add_flag_table(parser: argparse.ArgumentParser, flags: dict) -> None:
    for flag, (dest, type_, help_) in flags.items():
        parser.add_argument(flag, dest=dest, type=type_, default=None, help=help_)


def settings_from(args: argparse.Namespace, flags: dict, section: str) -> dict:
    """The `section` of the `--config` JSON (or the whole document), with the flags given on top."""
    data: dict = {}
    if getattr(args, "config", None):
        try:
            with open(args.config) as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise BadInput(f"--config {args.config}: cannot read a JSON document ({e})") from None
        data = dict(doc.get(section, doc)) if isinstance(doc, dict) else {}
    for dest, _, _ in flags.values():
        value = getattr(args, dest, None)
        if value is not None:
            data[dest] = value
    return data
