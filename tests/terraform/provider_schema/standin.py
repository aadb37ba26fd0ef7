"""A schema-only stand-in for a Terraform provider, served with PyPI `tf` (run as a program).

`python standin.py SCHEMA.pb` speaks Terraform's plugin protocol (v6) and answers
GetProviderSchema with the `GetProviderSchema.Response` stored in SCHEMA.pb; every
Validate* call finds nothing to add, because Terraform core has already checked the
configuration against that schema (arguments, required ones, types, blocks and their counts,
references). It never configures, plans or applies: `terraform plan` fails with a diagnostic
saying so. Terraform starts it through a dev_overrides entry in its CLI configuration
(see check.py), so no registry, mirror or lock file is involved.

`write_schema_pb(schema, path)` makes SCHEMA.pb from a `providers schema -json`-shaped
entry (extract.py's output), once, so the stand-in starts in well under a second.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tf.gen import tfplugin_pb2 as pb

PROVIDER_ADDRESS = "registry.terraform.io/hashicorp/google"
_NESTING = {"single": pb.Schema.NestedBlock.SINGLE, "list": pb.Schema.NestedBlock.LIST,
            "set": pb.Schema.NestedBlock.SET, "map": pb.Schema.NestedBlock.MAP}


# --- the schema as protobuf --------------------------------------------------------------

def write_schema_pb(schema: dict, path: Path) -> None:
    resp = pb.GetProviderSchema.Response(
        provider=_schema(schema["provider"]),
        provider_meta=pb.Schema(block=pb.Schema.Block()),
        resource_schemas={k: _schema(v) for k, v in schema["resource_schemas"].items()},
        data_source_schemas={k: _schema(v) for k, v in schema["data_source_schemas"].items()},
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(resp.SerializeToString(deterministic=True))
    tmp.replace(path)


def _schema(entry: dict) -> pb.Schema:
    return pb.Schema(version=entry.get("version", 0), block=_block(entry["block"]))


def _block(block: dict) -> pb.Schema.Block:
    return pb.Schema.Block(
        attributes=[
            pb.Schema.Attribute(name=name, type=json.dumps(a["type"]).encode(), required=a.get("required", False),
                                optional=a.get("optional", False), computed=a.get("computed", False))
            for name, a in sorted(block.get("attributes", {}).items())
        ],
        block_types=[
            pb.Schema.NestedBlock(type_name=name, block=_block(b["block"]), nesting=_NESTING[b["nesting_mode"]],
                                  min_items=b.get("min_items", 0), max_items=b.get("max_items", 0))
            for name, b in sorted(block.get("block_types", {}).items())
        ],
    )


# --- the provider, in tf's terms -------------------------------------------------------

class _Prebuilt:
    """What tf's servicer asks of a schema object: `to_pb()`."""

    def __init__(self, schema: pb.Schema):
        self._schema = schema

    def to_pb(self) -> pb.Schema:
        return self._schema


class _SchemaOnly:
    """A resource or data source type that has a schema and nothing else."""

    name: str = ""
    schema: _Prebuilt

    def __init__(self, *args):
        pass

    @classmethod
    def get_name(cls) -> str:
        return cls.name

    @classmethod
    def get_schema(cls) -> _Prebuilt:
        return cls.schema

    def validate(self, diags, type_name, config):
        pass  # Terraform core checked the configuration against the schema before calling


def _types(schemas) -> list[type]:
    return [type(name, (_SchemaOnly,), {"name": name, "schema": _Prebuilt(s)}) for name, s in schemas.items()]


class StandInProvider:
    """tf's Provider interface over a stored GetProviderSchema response."""

    def __init__(self, response: pb.GetProviderSchema.Response):
        self._response = response
        self._resources = _types(response.resource_schemas)
        self._data_sources = _types(response.data_source_schemas)

    def get_model_prefix(self) -> str:
        return ""  # the stored type names are complete (google_compute_network)

    def full_name(self) -> str:
        return PROVIDER_ADDRESS

    def get_provider_schema(self, diags) -> _Prebuilt:
        return _Prebuilt(self._response.provider)

    def validate_config(self, diags, config):
        pass

    def configure_provider(self, diags, config):
        diags.add_error("schema-only stand-in provider",
                        "this provider only serves the Google provider's schema for `terraform validate`; "
                        "it cannot plan or apply")

    def get_data_sources(self) -> list[type]:
        return self._data_sources

    def get_resources(self) -> list[type]:
        return self._resources

    def get_functions(self) -> list[type]:
        return []

    def new_resource(self, klass):
        return klass()

    def new_data_source(self, klass):
        return klass()

    def new_function(self, klass):
        return klass()


def main(argv: list[str]) -> None:
    from tf.runner import run_provider

    response = pb.GetProviderSchema.Response.FromString(Path(argv[1]).read_bytes())
    run_provider(StandInProvider(response), argv)


if __name__ == "__main__":
    main(sys.argv)
