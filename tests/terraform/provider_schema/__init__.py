"""Checking rendered GCP Terraform against the Google provider's schema, offline (dev tooling).

`check_root(dir) -> list[Problem]` runs real `terraform validate` on a root and its local
modules against a schema-only stand-in for the Google provider (see check.py). Needs the dev
extras: `cdktn-provider-google` (the schema) and `tf` (the stand-in's plugin protocol).
"""

from .check import Problem, check_root, ensure_standin
from .extract import PROVIDER_VERSION, SchemaUnavailable

__all__ = ["PROVIDER_VERSION", "Problem", "SchemaUnavailable", "check_root", "ensure_standin"]
