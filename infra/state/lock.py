"""Another run holds the state's lock: Terraform's diagnostic, read into who holds it.

When two runs share one remote state, the second fails with the diagnostic "Error acquiring
the state lock", whose detail carries the holder's `Lock Info:` block (ID, Path, Operation,
Who, Version, Created, Info). `lock_info` extracts it from diagnostics or raw output;
`StateLocked` is the failure the runner raises instead of a generic Terraform error, naming the
lock, its holder and how to release a lock whose run died.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Iterable

from runtime.errors import OperationFailed

LOCK_SUMMARY = "Error acquiring the state lock"
_FIELD = re.compile(r"^\s*(ID|Path|Operation|Who|Version|Created|Info):[ \t]*(.*?)\s*$", re.MULTILINE)


@dataclass(frozen=True)
class LockInfo:
    """The lock another run holds, as Terraform reports it ("" where it said nothing)."""

    id: str
    path: str = ""
    operation: str = ""  # Terraform's name, e.g. OperationTypeApply
    who: str = ""  # user@host of the holder
    version: str = ""  # its Terraform version
    created: str = ""

    @property
    def verb(self) -> str:
        """The holder's operation as a command name: OperationTypeApply -> apply."""
        return self.operation.removeprefix("OperationType").lower() or "unknown"


def parse_lock_info(text: str) -> LockInfo | None:
    """The `Lock Info:` block in `text`, or None when it holds none (or no lock ID)."""
    if "Lock Info:" not in text:
        return None
    block = text[text.index("Lock Info:"):]
    fields: dict[str, str] = {}
    for name, value in _FIELD.findall(block):
        fields.setdefault(name, value)
    if not fields.get("ID"):
        return None
    return LockInfo(id=fields["ID"], path=fields.get("Path", ""), operation=fields.get("Operation", ""),
                    who=fields.get("Who", ""), version=fields.get("Version", ""), created=fields.get("Created", ""))


def lock_info(diagnostics: Iterable, raw: str = "") -> LockInfo | None:
    """The holder's lock when Terraform failed to acquire the state lock, else None.

    `diagnostics` are objects with `summary` and `detail` (the runner's Diagnostic); `raw` is
    the command's other output, searched too (the human-readable form carries the same block).
    """
    for d in diagnostics:
        if d.summary == LOCK_SUMMARY:
            return parse_lock_info(d.detail) or LockInfo(id="")
    if LOCK_SUMMARY in raw:
        return parse_lock_info(raw) or LockInfo(id="")
    return None


class StateLocked(OperationFailed):
    """Terraform could not take the state's lock: another run holds it (exit code 1)."""

    def __init__(self, command: str, info: LockInfo):
        self.command, self.info = command, info
        lines = [f"the stack's state is locked by another Terraform run, so this {command} did not start:"]
        if info.id:
            lines += [
                f"  lock:      {info.id}",
                f"  held by:   {info.who or 'unknown'}",
                f"  operation: {info.verb}",
                f"  since:     {info.created or 'unknown'}",
            ]
            if info.path:
                lines.append(f"  state:     {info.path}")
            lines += [
                "Wait for that run to finish and try again. If it died and nothing else is running, release its lock:",
                f"  gpufleet state unlock SPEC {info.id}",
            ]
        else:
            lines.append("Terraform did not say who holds it; wait for the other run to finish and try again.")
        super().__init__("\n".join(lines))
