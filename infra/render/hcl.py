"""Writing HCL: the one escaping filter for user values, and a formatter matching `terraform fmt`.

`hcl(value)` turns a Python value into an HCL literal. Every value a template puts into
Terraform goes through it (a test checks the templates), so a user string can only ever be
a string: quotes, backslashes and newlines are escaped, and `${` / `%{` (template
interpolation and directives) become the literal `$${` / `%%{`. Heredocs are never emitted,
so a heredoc marker in a value is inert.

`format_hcl(text)` re-indents by bracket depth and aligns `=` in runs of single-line
attributes the way `terraform fmt` does, so rendered roots pass `terraform fmt -check`
without running Terraform at render time.
"""

from __future__ import annotations

import math
import re

_ESCAPES = {"\\": "\\\\", '"': '\\"', "\n": "\\n", "\r": "\\r", "\t": "\\t"}


def hcl_string(value: str) -> str:
    out = []
    for ch in value:
        if ch in _ESCAPES:
            out.append(_ESCAPES[ch])
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F or ch in "\u2028\u2029":
            # control characters, including those some tools treat as line breaks (NEL, LS, PS)
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    text = "".join(out).replace("${", "$${").replace("%{", "%%{")
    return f'"{text}"'


def hcl(value) -> str:
    """An HCL literal for `value` (None, bool, int, float, str, list, tuple, dict)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"cannot write a non-finite number to HCL: {value}")
        return repr(int(value)) if value.is_integer() else repr(value)
    if isinstance(value, str):
        return hcl_string(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(hcl(v) for v in value) + "]"
    if isinstance(value, dict):
        if not value:
            return "{}"
        lines = [f"{hcl_string(str(k))} = {hcl(v)}" for k, v in value.items()]
        return "{\n" + "\n".join(lines) + "\n}"
    raise TypeError(f"no HCL literal for {type(value).__name__}")


_ATTR = re.compile(r'^((?:[A-Za-z_][A-Za-z0-9_-]*)|(?:"(?:[^"\\]|\\.)*"))\s*=\s*(.*)$')
_OPENERS, _CLOSERS = "{[(", "}])"


def _depth_change(line: str) -> tuple[int, int]:
    """(closers at the start of the line, net bracket change), ignoring quoted strings and comments."""
    leading = 0
    for ch in line:
        if ch in _CLOSERS:
            leading += 1
        else:
            break
    net, in_string, escaped = 0, False, False
    for i, ch in enumerate(line):
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
            continue
        if ch == '"':
            in_string = True
        elif ch == "#" or line.startswith("//", i):
            break
        elif ch in _OPENERS:
            net += 1
        elif ch in _CLOSERS:
            net -= 1
    return leading, net


def format_hcl(text: str) -> str:
    """Indent by nesting and align `=` like `terraform fmt` (for the HCL gpufleet writes)."""
    rows: list[tuple[int, str, int]] = []  # (depth, stripped line, net change)
    depth = 0
    for raw in text.split("\n"):  # not splitlines(): it also splits on \x0b, \x85, ...
        line = raw.strip()
        leading, net = _depth_change(line)
        rows.append((max(depth - leading, 0), line, net))
        depth = max(depth + net, 0)

    out: list[str] = []
    group: list[tuple[int, str, str]] = []

    def flush() -> None:
        if group:
            width = max(len(key) for _, key, _ in group)
            for d, key, rest in group:
                out.append("  " * d + key.ljust(width) + " = " + rest)
            group.clear()

    for d, line, net in rows:
        match = _ATTR.match(line) if line and not line.startswith("#") else None
        if match and net == 0:
            if group and group[-1][0] != d:
                flush()
            group.append((d, match.group(1), match.group(2)))
            continue
        flush()
        if match:  # an attribute whose value spans lines stands alone
            out.append("  " * d + f"{match.group(1)} = {match.group(2)}")
        else:
            out.append("  " * d + line if line else "")
    flush()
    # collapse runs of blank lines and blank lines right after an opener or before a closer
    cleaned: list[str] = []
    for line in out:
        if not line and (not cleaned or not cleaned[-1] or cleaned[-1].endswith(("{", "["))):
            continue
        if line.strip() in ("}", "]", ")") and cleaned and not cleaned[-1]:
            cleaned.pop()
        cleaned.append(line)
    while cleaned and not cleaned[-1]:
        cleaned.pop()
    return "\n".join(cleaned) + "\n"
