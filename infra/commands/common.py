"""What the CLI's command groups share: progress messages on stderr and the `--target` option."""

from __future__ import annotations

import argparse
import sys

from infra.target_names import DEFAULT
from runtime.errors import BadInput, OperationFailed


def say(msg: str) -> None:
    """A progress or status line for the user, on stderr (stdout carries results)."""
    print(msg, file=sys.stderr, flush=True)


def target_of(args):
    """The Target that `args.target` names, for the command being run."""
    from infra.targets import get_target

    return get_target(args.target, args.command)


def target_arg(p: argparse.ArgumentParser, verb: str) -> None:
    """--target, its choices the registered targets that answer `verb` (the first is the default)."""
    from infra.targets import TARGETS, names_for

    names = names_for(verb)
    default = DEFAULT if DEFAULT in names else names[0]
    described = [f"{n} ({'the default: ' if n == default else ''}{TARGETS[n].summary})" for n in names]
    p.add_argument("--target", choices=names, default=default, help="where the stack goes: " + ", ".join(described))


def confirm(args, verb: str, where: str) -> None:
    """Ask before a change to real infrastructure: `--yes`, or 'yes' typed at a terminal.

    Without a terminal and without `--yes`, BadInput naming the flag: nothing is changed.
    """
    if args.yes:
        return
    if not sys.stdin.isatty():
        raise BadInput(f"--yes: required to {verb} {where} without a terminal to confirm on")
    answer = input(f"{verb} stack {where}? type 'yes': ")
    if answer.strip() != "yes":
        raise OperationFailed(f"{verb} cancelled")
