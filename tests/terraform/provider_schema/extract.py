"""The Google provider's schema, read from the jsii assembly in the `cdktn-provider-google` wheel.

Contract: `load_schema(cache_dir)` returns one provider's entry in the shape of
`terraform providers schema -json` (`provider`, `resource_schemas`, `data_source_schemas`, each
`{"version": 0, "block": {"attributes": {...}, "block_types": {...}}}`), for the provider version
the wheel was generated from (`PROVIDER_VERSION`). The first call reads the 130 MB assembly
(~10 s) and writes `google-<version>.json` under `cache_dir`; later calls read that file.

How the assembly maps to a schema (cdktf's code generator is the other direction):
- a class whose base is `cdktn.TerraformResource` / `TerraformDataSource` / `TerraformProvider`
  is one schema; its Terraform name is the last word of the registry link in its docs;
- its `...Config` struct lists what can be configured: a property without `optional` is
  required; a struct-typed property is a nested block (struct: at most one, array of structs: a
  list), a required block has `min_items = 1`; the Terraform name comes from the property's
  registry anchor (`#machine_type`), because camelCase does not always round-trip;
- the class's (or, for a block, its `...OutputReference` class's) getters that the struct lacks
  are computed-only attributes, named by camelCase -> snake_case.

What the assembly cannot say, so the schema is looser than the provider's own: list and set
blocks look the same (both become lists), an optional attribute may also be computed, and
computed-only nested objects are typed `dynamic` (references into them are not checked).
None of this lets a misspelt or missing argument, or a misplaced block, through.
"""

from __future__ import annotations

import importlib.util
import json
import re
import tarfile
from pathlib import Path

PROVIDER_VERSION = "8.7.0"
WHEEL = "cdktn-provider-google"
_ASSEMBLY = "_jsii/provider-google@21.1.0.jsii.tgz"
_FORMAT = 1  # bump when the conversion below changes, so stale caches are rebuilt

_KINDS = {"cdktn.TerraformResource": "resource_schemas", "cdktn.TerraformDataSource": "data_source_schemas"}
_PRIMITIVES = {"string": "string", "number": "number", "boolean": "bool", "any": "dynamic", "json": "string", "date": "string"}
_CDKTN_TYPES = {
    "cdktn.StringMap": ["map", "string"], "cdktn.NumberMap": ["map", "number"],
    "cdktn.BooleanMap": ["map", "bool"], "cdktn.AnyMap": ["map", "dynamic"],
    "cdktn.StringMapList": ["list", ["map", "string"]], "cdktn.NumberMapList": ["list", ["map", "number"]],
    "cdktn.BooleanMapList": ["list", ["map", "bool"]], "cdktn.AnyMapList": ["list", ["map", "dynamic"]],
    "cdktn.IResolvable": "dynamic",
}
_TF_NAME = re.compile(r"\{@link \S+ (\w+)\}")
_ANCHOR = re.compile(r"#(\w+) \w+#\w+\}")


class SchemaUnavailable(RuntimeError):
    """The wheel that carries the schema is not installed."""


def assembly_path() -> Path:
    """The jsii tarball inside the installed wheel, found without importing the package
    (importing it would start jsii's node runtime)."""
    spec = importlib.util.find_spec("cdktn_provider_google")
    if spec is None or not spec.submodule_search_locations:
        raise SchemaUnavailable(f"{WHEEL} is not installed (pip install '{WHEEL}==21.1.0', part of the dev extras)")
    path = Path(next(iter(spec.submodule_search_locations))) / _ASSEMBLY
    if not path.is_file():
        raise SchemaUnavailable(f"{WHEEL} is installed but has no {_ASSEMBLY} (another version?)")
    return path


def load_schema(cache_dir: Path) -> dict:
    """The provider schema (see the module docstring), extracted once into `cache_dir`."""
    cache = Path(cache_dir) / f"google-{PROVIDER_VERSION}.json"
    source = assembly_path()
    stamp = f"{_FORMAT}:{source.stat().st_size}"
    if cache.is_file():
        data = json.loads(cache.read_text())
        if data.get("stamp") == stamp:
            return data["schema"]
    schema = convert(read_assembly(source))
    cache.parent.mkdir(parents=True, exist_ok=True)
    tmp = cache.with_suffix(".tmp")
    tmp.write_text(json.dumps({"stamp": stamp, "schema": schema}))
    tmp.replace(cache)  # atomic: a parallel run never reads half a file
    return schema


def read_assembly(path: Path) -> dict:
    with tarfile.open(path) as tar:
        member = tar.extractfile("package/.jsii")
        assert member is not None, f"{path} has no package/.jsii"
        return json.load(member)


def convert(assembly: dict) -> dict:
    """All resource and data source schemas, and the provider's own, from a jsii assembly."""
    types = assembly["types"]
    out: dict = {"provider": None, "resource_schemas": {}, "data_source_schemas": {}}
    for cls in types.values():
        base = cls.get("base")
        if cls["kind"] != "class" or base not in (*_KINDS, "cdktn.TerraformProvider"):
            continue
        config_fqn = cls["initializer"]["parameters"][-1]["type"]["fqn"]
        if base == "cdktn.TerraformProvider":
            block = _block(types, config_fqn, None)
            block["attributes"].pop("alias", None)  # a meta-argument, not the provider's
            out["provider"] = {"version": 0, "block": block}
            continue
        name = _TF_NAME.search(cls["docs"]["summary"]).group(1)
        out[_KINDS[base]][name] = {"version": 0, "block": _block(types, config_fqn, cls)}
    assert out["provider"] and out["resource_schemas"], "the assembly holds no provider schema"
    return out


def _block(types: dict, struct_fqn: str, getters_cls: dict | None, path: tuple[str, ...] = ()) -> dict:
    """A schema block: the struct's arguments and blocks, then the getters' computed-only attributes.

    cdktf shortens the names of deeply nested structs, which can make a struct contain itself;
    the provider's schema is finite, so a struct already twice on `path` is not expanded again.
    """
    path = (*path, struct_fqn)
    attributes: dict[str, dict] = {}
    block_types: dict[str, dict] = {}
    for prop in _struct_properties(types, struct_fqn):
        name = _tf_name(prop)
        required = not prop.get("optional")
        nested = _nested_struct(types, prop["type"])
        if nested is None:
            attributes[name] = {"type": _type(prop["type"]), "required" if required else "optional": True}
            continue
        fqn, single = nested
        if path.count(fqn) >= 2:
            continue
        block_types[name] = {
            "nesting_mode": "list",
            "block": _block(types, fqn, types.get(fqn + "OutputReference"), path),
            **({"min_items": 1} if required else {}),
            **({"max_items": 1} if single else {}),
        }
    for prop in (getters_cls or {}).get("properties", []):
        name = _snake(prop["name"])
        if prop.get("static") or prop.get("protected") or prop["name"].endswith("Input") \
                or prop["name"] == "internalValue" or name in attributes or name in block_types:
            continue
        attributes[name] = {"type": _type(prop["type"]), "computed": True}
    return {"attributes": attributes, "block_types": block_types}


def _struct_properties(types: dict, fqn: str) -> list[dict]:
    struct = types[fqn]
    props = list(struct.get("properties", []))
    for parent in struct.get("interfaces", []):
        if not parent.startswith("cdktn."):  # TerraformMetaArguments: count, for_each, ... are Terraform's
            props += _struct_properties(types, parent)
    return props


def _nested_struct(types: dict, ty: dict) -> tuple[str, bool] | None:
    """(struct fqn, at most one) when a config property is a nested block, else None."""
    if "fqn" in ty and types.get(ty["fqn"], {}).get("datatype"):
        return ty["fqn"], True
    for member in ty.get("union", {}).get("types", []):
        elem = member.get("collection", {}).get("elementtype", {})
        if types.get(elem.get("fqn", ""), {}).get("datatype"):
            return elem["fqn"], False
    return None


def _type(ty: dict):
    """A jsii type as a Terraform type (cty JSON); an unknown shape becomes dynamic."""
    if "primitive" in ty:
        return _PRIMITIVES.get(ty["primitive"], "dynamic")
    if "collection" in ty:
        kind = "map" if ty["collection"]["kind"] == "map" else "list"
        return [kind, _type(ty["collection"]["elementtype"])]
    if "union" in ty:
        members = [m for m in ty["union"]["types"] if m.get("fqn") != "cdktn.IResolvable"]
        return _type(members[0]) if len(members) == 1 else "dynamic"
    return _CDKTN_TYPES.get(ty.get("fqn", ""), "dynamic")


def _tf_name(prop: dict) -> str:
    docs = prop.get("docs", {})
    found = _ANCHOR.search(docs.get("summary", "") + " " + docs.get("remarks", ""))
    return found.group(1) if found else _snake(prop["name"])


def _snake(camel: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", camel).lower()
