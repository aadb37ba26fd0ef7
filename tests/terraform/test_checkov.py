"""checkov over every rendered root (modules included): zero failed checks, every skip justified.

AWS examples are rendered for the aws target, GCP examples for the gcp target (the same scan
`gpufleet plan SPEC --target gcp --offline` runs). checkov runs from its own venv
(.tools/checkov, made by `make setup`) because it pins many packages of its own.
`--skip-download` keeps it offline.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from infra.render import render
from infra.spec import load_stack

ROOT = Path(__file__).resolve().parents[2]
CHECKOV = ROOT / ".tools/checkov/bin/checkov"
EXAMPLES = sorted((ROOT / "examples").glob("aws-*.yaml")) + sorted((ROOT / "examples").glob("gcp-*.yaml"))
# the checks that must have run on a GCP root (so that a pass is not a scan that saw nothing)
GCP_CHECKS = {"CKV_GCP_30", "CKV_GCP_32", "CKV_GCP_39", "CKV_GCP_40", "CKV_GCP_29", "CKV_GCP_114", "CKV_GCP_26"}


@pytest.mark.skipif(not CHECKOV.exists(), reason="checkov is not installed: run `make setup` (it goes in .tools/checkov)")
@pytest.mark.parametrize("example", EXAMPLES, ids=lambda p: p.stem)
def test_checkov_passes(example, tmp_path):
    gcp = example.stem.startswith("gcp-")
    root = render(load_stack(example), tmp_path / example.stem, target="gcp" if gcp else "aws")
    proc = subprocess.run(
        [str(CHECKOV), "-d", str(root), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True, text=True, timeout=300,
    )
    report = json.loads(proc.stdout)
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    passed = sum(r["summary"]["passed"] for r in reports)
    assert passed > (40 if gcp else 50), "checkov scanned the modules"
    if gcp:
        ran = {c["check_id"] for r in reports for c in r["results"]["passed_checks"]}
        assert GCP_CHECKS <= ran, f"GCP checks that did not run: {sorted(GCP_CHECKS - ran)}"
    assert not failed, "\n".join(f"{c['check_id']} {c['resource']} {c['file_path']}:{c['file_line_range']}" for c in failed)
    for c in skipped:
        assert len((c.get("check_result") or {}).get("suppress_comment", "").strip()) > 10, (
            f"{c['check_id']} on {c['resource']} is skipped without a justification"
        )
