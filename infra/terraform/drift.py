"""Drift: what changed outside Terraform, by resource address and attribute (`gpufleet drift`).

Input: `terraform show -json` of a refresh-only plan, whose `resource_drift` holds, for each
object that reads back differently from the state, the state's value (`before`) and the real
one (`after`). `drift_from_plan` turns that into attribute-level changes:

- nested values are compared leaf by leaf (`tag[1].value`, `mixed_instances_policy[0]...`);
  a list whose length changed is reported whole;
- null, "", [] and {} count as the same "unset" (providers spell an empty value either way,
  which is not a change anyone made);
- an object gone from the cloud is reported as deleted;
- values Terraform marks sensitive are shown as "(sensitive)".

Drift is measured against the state, so the state must hold what the provider reads back:
`gpufleet apply` records that baseline with a refresh-only apply right after applying
(runner.Terraform.refresh), otherwise a fresh apply shows read-back differences as drift.

Terraform's own `-detailed-exitcode` on a refresh-only plan answers 2 whenever the refreshed
state differs in any byte (attribute order, private data), so the verdict here is whether
any change is listed, not that exit code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Iterable

SENSITIVE = "(sensitive)"


@dataclass(frozen=True)
class AttributeChange:
    path: str  # e.g. "max_size", "tag[1].value"
    before: Any
    after: Any


@dataclass(frozen=True)
class ResourceDrift:
    address: str
    type: str
    deleted: bool = False  # gone from the cloud
    changes: list[AttributeChange] = field(default_factory=list)

    def as_dict(self) -> dict:
        return {"address": self.address, "type": self.type, "deleted": self.deleted,
                "changes": [{"attribute": c.path, "before": c.before, "after": c.after} for c in self.changes]}


def _unset(value: Any) -> bool:
    return value is None or value == "" or value == [] or value == {}


def _child(marks: Any, key: Any) -> Any:
    """The sensitivity marks below `key` (Terraform's `*_sensitive`: true, or nested like the value)."""
    if marks is True:
        return True
    if isinstance(marks, dict):
        return marks.get(key, False)
    if isinstance(marks, list) and isinstance(key, int) and key < len(marks):
        return marks[key]
    return False


def _join(path: str, key: Any) -> str:
    return f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))


def diff_values(before: Any, after: Any, path: str = "", before_marks: Any = False,
                after_marks: Any = False) -> list[AttributeChange]:
    """Leaf-level differences between two values of a resource (see the module docstring)."""
    if _unset(before) and _unset(after):
        return []
    if isinstance(before, dict) and isinstance(after, dict):
        out: list[AttributeChange] = []
        for key in sorted(set(before) | set(after)):
            out += diff_values(before.get(key), after.get(key), _join(path, key),
                               _child(before_marks, key), _child(after_marks, key))
        return out
    if isinstance(before, list) and isinstance(after, list) and len(before) == len(after):
        out = []
        for i, (b, a) in enumerate(zip(before, after)):
            out += diff_values(b, a, _join(path, i), _child(before_marks, i), _child(after_marks, i))
        return out
    if before == after:
        return []
    return [AttributeChange(path, SENSITIVE if before_marks is True else before,
                            SENSITIVE if after_marks is True else after)]


def drift_from_plan(plan: dict) -> list[ResourceDrift]:
    """The out-of-band changes in a refresh-only plan (`show -json`), in address order."""
    drift = []
    for rd in plan.get("resource_drift", []):
        if rd.get("mode") == "data":
            continue
        change = rd.get("change", {})
        actions = change.get("actions", [])
        if "delete" in actions and change.get("after") is None:
            drift.append(ResourceDrift(rd["address"], rd.get("type", ""), deleted=True))
            continue
        changes = diff_values(change.get("before"), change.get("after"), "",
                              change.get("before_sensitive", False), change.get("after_sensitive", False))
        if changes:
            drift.append(ResourceDrift(rd["address"], rd.get("type", ""), changes=changes))
    return sorted(drift, key=lambda d: d.address)


def _show(value: Any, limit: int = 80) -> str:
    text = value if value == SENSITIVE else json.dumps(value, sort_keys=True)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def format_drift(drift: list[ResourceDrift]) -> Iterable[str]:
    """Lines for a terminal: a verdict, then each resource with `attribute: state -> real`."""
    if not drift:
        yield "No drift: every resource in the state matches what the cloud reports."
        return
    yield f"Drift: {len(drift)} resource(s) changed outside Terraform (state value -> real value):"
    for d in drift:
        if d.deleted:
            yield f"  {d.address}: deleted outside Terraform"
            continue
        yield f"  {d.address}"
        for c in d.changes:
            yield f"    {c.path}: {_show(c.before)} -> {_show(c.after)}"
