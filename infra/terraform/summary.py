"""A saved plan as Markdown, for a pull request or a CI job summary (`gpufleet plan --summary FILE`).

Input: `terraform show -json` of a plan, and the resolved stack it was planned from. Output,
in this order:

1. the totals (to add, change, destroy; replacements counted apart), or "No changes";
2. a table of resource types with how many of each are added, changed and destroyed;
3. every replacement by address, with what forces it (the plan's `replace_paths`, or its reason);
4. one row per fleet (the training fleet, each serving pool): instance type, GPU model, GPUs
   per instance, and GPUs at min / desired / max. Sizes are the plan's values for the fleet's
   Auto Scaling group (`before -> after` where the plan changes them), else the spec's.

Pure: no Terraform, no files; `markdown_summary` returns the text.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from infra.spec.gpus import AWS_GPU_FAMILIES

ASG_TYPE = "aws_autoscaling_group"
SIZE_FIELDS = ("min_size", "desired_capacity", "max_size")


@dataclass(frozen=True)
class Fleet:
    """A fleet as the summary shows it: the Auto Scaling group that runs it and its spec sizes."""

    label: str
    group: str
    instance_type: str
    gpus_per_instance: int
    sizes: tuple[int, int, int]  # min, desired, max from the spec


def fleets_of(stack) -> list[Fleet]:
    """The fleets of a resolved stack (infra.spec.resolve.ResolvedStack), training first."""
    fleets = []
    if stack.training_group:
        t = stack.spec.training
        fleets.append(Fleet("training", stack.training_group, t.instance_type, stack.training_gpus_per_node or 0,
                            (t.nodes.min, t.nodes.desired, t.nodes.max)))
    for p in stack.pools:
        fleets.append(Fleet(f"serving pool `{p.name}`", p.group_name, p.instance_type, p.gpus_per_node,
                            (p.size.min, p.size.desired, p.size.max)))
    return fleets


def _is_replace(actions: list[str]) -> bool:
    return "create" in actions and "delete" in actions


def count_changes(plan: dict) -> dict[str, dict[str, int]]:
    """Resource type -> {"add", "change", "destroy", "replace"} counts (a replacement adds and destroys)."""
    rows: dict[str, dict[str, int]] = {}
    for rc in plan.get("resource_changes", []):
        actions = rc.get("change", {}).get("actions", [])
        if rc.get("mode") == "data" or actions in (["no-op"], ["read"]):
            continue
        row = rows.setdefault(rc["type"], {"add": 0, "change": 0, "destroy": 0, "replace": 0})
        row["add"] += "create" in actions
        row["destroy"] += "delete" in actions
        row["change"] += "update" in actions
        row["replace"] += _is_replace(actions)
    return dict(sorted(rows.items()))


def _path_text(path: list) -> str:
    text = ""
    for step in path:
        text += f"[{step}]" if isinstance(step, int) else (f".{step}" if text else str(step))
    return text


_REASONS = {
    "replace_because_cannot_update": "an argument that cannot be updated in place changed",
    "replace_because_tainted": "the object is tainted",
    "replace_by_request": "replacement was requested",
    "replace_by_triggers": "a replace_triggered_by reference changed",
}


def replacements(plan: dict) -> list[tuple[str, str]]:
    """(address, what forces it) for every resource the plan replaces."""
    out = []
    for rc in plan.get("resource_changes", []):
        change = rc.get("change", {})
        if not _is_replace(change.get("actions", [])):
            continue
        paths = [_path_text(p) for p in change.get("replace_paths") or [] if p]
        why = ("forced by " + ", ".join(f"`{p}`" for p in paths)) if paths else _REASONS.get(
            rc.get("action_reason", ""), rc.get("action_reason", "") or "replaced")
        out.append((rc["address"], why))
    return out


def _group_change(plan: dict, group: str) -> dict | None:
    for rc in plan.get("resource_changes", []):
        if rc.get("type") != ASG_TYPE or rc.get("mode") == "data":
            continue
        change = rc.get("change", {})
        for side in ("after", "before"):
            if (change.get(side) or {}).get("name") == group:
                return change
    return None


def planned_sizes(plan: dict, fleet: Fleet) -> list[tuple[Any, Any]]:
    """(before, after) instances per min/desired/max. The plan's values for the fleet's group where
    it has them (after is None when the plan deletes the group), else the spec's (before None)."""
    change = _group_change(plan, fleet.group)
    if change is None:
        return [(None, v) for v in fleet.sizes]
    before = change.get("before") or {}
    after = None if change.get("actions") == ["delete"] else (change.get("after") or {})
    out = []
    for field, spec_value in zip(SIZE_FIELDS, fleet.sizes):
        planned = None if after is None else after.get(field)
        out.append((before.get(field), spec_value if after is not None and planned is None else planned))
    return out


def _gpus(instances: Any, per_instance: int) -> str:
    return str(instances * per_instance) if isinstance(instances, int) else "?"


def _cell(before: Any, after: Any, per_instance: int) -> str:
    if after is None:
        return f"{_gpus(before, per_instance)} -> 0"
    if before is None or before == after:
        return _gpus(after, per_instance)
    return f"{_gpus(before, per_instance)} -> {_gpus(after, per_instance)}"


def gpu_model(instance_type: str) -> str:
    family = AWS_GPU_FAMILIES.get(instance_type.partition(".")[0])
    return f"{family.gpu} ({family.gpu_memory_gib} GiB)" if family else "unknown"


def markdown_summary(plan: dict, stack, target: str) -> str:
    """The plan as Markdown (see the module docstring for what it holds)."""
    rows = count_changes(plan)
    totals = {k: sum(r[k] for r in rows.values()) for k in ("add", "change", "destroy", "replace")}
    lines = [f"## gpufleet plan: stack `{stack.name}` on {target}", ""]
    if not rows:
        lines += ["**No changes.** The infrastructure matches the stack spec.", ""]
    else:
        replaced = f" ({totals['replace']} of them replacements)" if totals["replace"] else ""
        lines += [f"**{totals['add']} to add, {totals['change']} to change, {totals['destroy']} to destroy**{replaced}", "",
                  "| resource type | add | change | destroy | replace |", "| --- | ---: | ---: | ---: | ---: |"]
        for rtype, r in rows.items():
            cells = [str(r[k]) if r[k] else "" for k in ("add", "change", "destroy", "replace")]
            lines.append(f"| `{rtype}` | " + " | ".join(cells) + " |")
        lines.append("")
    replaced = replacements(plan)
    if replaced:
        lines += ["### Replacements (destroyed, then created again)", ""]
        lines += [f"- `{address}`: {why}" for address, why in replaced]
        lines.append("")
    fleets = fleets_of(stack)
    if fleets:
        lines += ["### GPU fleets", "",
                  "| fleet | Auto Scaling group | instance type | GPU | GPUs per instance | GPUs min | GPUs desired | GPUs max |",
                  "| --- | --- | --- | --- | ---: | ---: | ---: | ---: |"]
        for f in fleets:
            cells = [_cell(b, a, f.gpus_per_instance) for b, a in planned_sizes(plan, f)]
            lines.append(f"| {f.label} | `{f.group}` | {f.instance_type} | {gpu_model(f.instance_type)} | "
                         f"{f.gpus_per_instance} | " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines)
