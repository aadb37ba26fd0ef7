"""Reading a stack spec file: YAML -> validated, resolved stack, or every problem at once.

Each problem is one line `path.to.field: what is wrong (got VALUE; allowed ...)`, raised
together as `runtime.errors.BadInput` (exit code 2). Nothing is written before this passes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from infra.spec.checks import fmt, stack_problems
from infra.spec.model import Stack
from infra.spec.resolve import ResolvedStack, resolve
from runtime.errors import BadInput


class _UniqueKeyLoader(yaml.SafeLoader):
    """A safe YAML loader that rejects a key given twice (PyYAML keeps the last silently)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode, deep: bool = False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"key {key!r} appears twice in one mapping", key_node.start_mark
            )
        seen.add(key)
    return loader.construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping)


def _loc(loc: tuple) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + str(part)
    return out or "(top level)"


def _model_at(loc: tuple) -> type[BaseModel] | None:
    """The pydantic model class that holds the field at `loc` (for listing allowed fields)."""
    model: Any = Stack
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        field = model.model_fields.get(part) if isinstance(model, type) and issubclass(model, BaseModel) else None
        if field is None:
            return None
        model = _unwrap(field.annotation)
    return model if isinstance(model, type) and issubclass(model, BaseModel) else None


def _unwrap(annotation: Any) -> Any:
    from typing import get_args

    for arg in (annotation, *get_args(annotation)):
        if isinstance(arg, type) and issubclass(arg, BaseModel):
            return arg
        for inner in get_args(arg):
            if isinstance(inner, type) and issubclass(inner, BaseModel):
                return inner
    return annotation


def format_validation_error(exc: ValidationError) -> list[str]:
    """pydantic errors -> `path: message (got VALUE; allowed ...)` lines."""
    lines = []
    for err in exc.errors():
        loc = err["loc"]
        path = _loc(loc)
        kind = err["type"]
        got = err.get("input")
        ctx = err.get("ctx") or {}
        if kind == "missing":
            lines.append(f"{path}: required field is missing")
        elif kind == "extra_forbidden":
            model = _model_at(loc)
            allowed = ", ".join(model.model_fields) if model else "see `gpufleet schema`"
            lines.append(f"{path}: unknown field (got {fmt(loc[-1])}; allowed: {allowed})")
        elif kind == "literal_error":
            lines.append(f"{path}: not an allowed value (got {fmt(got)}; allowed: {ctx.get('expected')})")
        elif kind == "string_pattern_mismatch":
            lines.append(f"{path}: invalid format (got {fmt(got)}; allowed: matching {ctx.get('pattern')})")
        elif kind == "value_error":
            msg = str(ctx.get("error", err["msg"]))
            if "(got" not in msg and not isinstance(got, dict):
                msg += f" (got {fmt(got)})"
            lines.append(f"{path}: {msg}")
        elif kind in ("model_type", "dict_type", "model_attributes_type"):
            lines.append(f"{path}: expected a mapping of fields (got {fmt(got)})")
        else:
            msg = err["msg"][0].lower() + err["msg"][1:]
            lines.append(f"{path}: {msg} (got {fmt(got)})")
    return lines


def parse_stack(data: Any, source: str = "<spec>") -> ResolvedStack:
    """Validate an already-parsed YAML document; raise BadInput with every problem."""
    if not isinstance(data, dict):
        raise BadInput(f"{source}: a stack spec is a YAML mapping of fields (got {type(data).__name__})")
    cloud = data.get("cloud")
    try:
        # Instance types and regions are checked against the cloud the spec names (see infra.spec.model).
        stack = Stack.model_validate(data, context={"cloud": cloud if isinstance(cloud, str) else None})
    except ValidationError as exc:
        raise BadInput(format_validation_error(exc)) from None
    problems = stack_problems(stack)
    if problems:
        raise BadInput(problems)
    return resolve(stack)


def load_stack(path: str | Path) -> ResolvedStack:
    """Read and validate a stack spec file."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise BadInput(f"{path}: no such stack spec file") from None
    except (IsADirectoryError, PermissionError, UnicodeDecodeError) as exc:
        raise BadInput(f"{path}: cannot read the stack spec ({exc.__class__.__name__}: {exc})") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as exc:
        raise BadInput(f"{path}: not valid YAML ({exc})".replace("\n", " ")) from None
    return parse_stack(data, source=str(path))


def json_schema() -> dict:
    """The JSON Schema of a stack spec, for editors' completion and validation."""
    schema = Stack.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "gpufleet stack spec"
    return schema
