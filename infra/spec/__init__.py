"""The stack spec: `model` (fields), `checks` (cross-field rules), `resolve` (derived values), `load` (YAML)."""

from infra.spec.load import json_schema, load_stack, parse_stack
from infra.spec.resolve import ResolvedStack

__all__ = ["json_schema", "load_stack", "parse_stack", "ResolvedStack"]
