"""What the `gcp` target can check about a rendered root without a Google Cloud project.

`gpufleet plan SPEC --target gcp --offline` renders the root and runs `OFFLINE_CHECKS` on it,
in order. Each check is a function `(root: Path, options: OfflineOptions) -> CheckResult`:
passed, failed (with what failed) or skipped (with why: a tool that is not installed, a
provider that is not mirrored).
A skipped check is never reported as passed. To add a check (the provider-schema check, a
preflight against a local fake of the Compute API), append it to `OFFLINE_CHECKS`.

What only a real project can show (quotas, such as GPUS_ALL_REGIONS, which is 0 on new
projects; whether a zone has GPUs to spare; IAM propagation; the managed certificate's DNS)
is not checked here.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from infra import PROJECT_ROOT

CHECKOV_ENV = "GPUFLEET_CHECKOV"
CHECKOV_TIMEOUT_S = 600


@dataclass(frozen=True)
class OfflineOptions:
    """What the user gave `plan --offline` that a check may use."""

    provider_mirror: Path | None = None  # --provider-mirror DIR, else $GPUFLEET_PROVIDER_MIRROR


@dataclass(frozen=True)
class CheckResult:
    name: str
    status: str  # "passed", "failed" or "skipped"
    detail: str = ""

    def line(self) -> str:
        return f"{self.status}: {self.name}" + (f": {self.detail}" if self.detail else "")


def find_checkov() -> str | None:
    """$GPUFLEET_CHECKOV, else `checkov` on PATH, else the checkout's .tools/checkov (make setup)."""
    override = os.environ.get(CHECKOV_ENV)
    if override:
        return override
    found = shutil.which("checkov")
    if found:
        return found
    local = PROJECT_ROOT / ".tools" / "checkov" / "bin" / "checkov"
    return str(local) if local.is_file() else None


def checkov_report(root: Path, checkov: str) -> dict:
    """checkov's JSON report of a root, its modules included, as {passed, failed, skipped, failures, unjustified}."""
    proc = subprocess.run(
        [checkov, "-d", str(root), "--framework", "terraform", "--skip-download", "-o", "json"],
        capture_output=True, text=True, timeout=CHECKOV_TIMEOUT_S,
    )
    try:
        report = json.loads(proc.stdout)
    except json.JSONDecodeError:
        raise RuntimeError(f"checkov gave no report (exit {proc.returncode}): {proc.stderr.strip()[-500:]}") from None
    reports = report if isinstance(report, list) else [report]
    failed = [c for r in reports for c in r["results"]["failed_checks"]]
    skipped = [c for r in reports for c in r["results"]["skipped_checks"]]
    return {
        "passed": sum(r["summary"]["passed"] for r in reports),
        "failed": len(failed),
        "skipped": len(skipped),
        "failures": [f"{c['check_id']} {c['resource']} ({c['file_path']}:{c['file_line_range'][0]})" for c in failed],
        # a skip must say why: `#checkov:skip=CKV_GCP_xx:reason` inside the resource
        "unjustified": [f"{c['check_id']} {c['resource']}" for c in skipped
                        if len((c.get("check_result") or {}).get("suppress_comment", "").strip()) <= 10],
    }


def check_checkov(root: Path, options: OfflineOptions) -> CheckResult:
    """checkov's Terraform policies over the root and its modules: none may fail, every skip justified."""
    checkov = find_checkov()
    if checkov is None:
        return CheckResult("checkov", "skipped", f"checkov is not installed (pip install checkov, or set ${CHECKOV_ENV})")
    try:
        r = checkov_report(root, checkov)
    except (OSError, RuntimeError, subprocess.TimeoutExpired) as exc:
        return CheckResult("checkov", "failed", str(exc))
    summary = f"{r['passed']} passed, {r['failed']} failed, {r['skipped']} skipped with a reason"
    problems = r["failures"] + [f"{s} skipped without a reason" for s in r["unjustified"]]
    if problems:
        return CheckResult("checkov", "failed", summary + "\n  " + "\n  ".join(problems))
    return CheckResult("checkov", "passed", summary)


def check_terraform_validate(root: Path, options: OfflineOptions) -> CheckResult:
    """`terraform init` and `validate` with a real Google provider, from a filesystem mirror only.

    The registry is never asked. Without a mirror holding hashicorp/google for this platform
    (--provider-mirror DIR or $GPUFLEET_PROVIDER_MIRROR) the check is skipped and says so.
    """
    from infra.render.gcp import GCP_PROVIDER_CONSTRAINT
    from infra.terraform.mirror import GOOGLE_SOURCE, MIRROR_ENV, mirrored_versions, satisfies, user_mirror_cli_config
    from infra.terraform.runner import Terraform, TerraformFailed

    name = "terraform validate"
    where = options.provider_mirror or (Path(os.environ[MIRROR_ENV]) if os.environ.get(MIRROR_ENV) else None)
    if where is None or not where.is_dir():
        return CheckResult(name, "skipped", "no Google provider here: the registry is not asked offline, and no "
                                            f"filesystem mirror was given (--provider-mirror DIR or ${MIRROR_ENV})")
    versions = [v for v in mirrored_versions(where.resolve(), GOOGLE_SOURCE) if satisfies(v, GCP_PROVIDER_CONSTRAINT)]
    if not versions:
        return CheckResult(name, "skipped", f"the mirror {where} holds no hashicorp/google {GCP_PROVIDER_CONSTRAINT} "
                                            "for this platform")
    try:
        config = user_mirror_cli_config(where, GCP_PROVIDER_CONSTRAINT, source=GOOGLE_SOURCE, who="the gcp target")
        tf = Terraform(root, offline=True, cli_config=config)
        tf.init()
        errors = [d.render() for d in tf.validate() if d.severity == "error"]
    except (TerraformFailed, OSError) as exc:
        return CheckResult(name, "failed", str(exc))
    if errors:
        return CheckResult(name, "failed", "\n  ".join(errors))
    return CheckResult(name, "passed", f"hashicorp/google {versions[-1]} from {where}")


OfflineCheck = Callable[[Path, OfflineOptions], CheckResult]
# The checks `plan --offline` runs on a rendered GCP root, in order. Append to extend.
OFFLINE_CHECKS: list[OfflineCheck] = [check_checkov, check_terraform_validate]


def run_offline_checks(root: Path, options: OfflineOptions | None = None, checks: list[OfflineCheck] | None = None,
                       progress: Callable[[str], None] | None = None) -> list[CheckResult]:
    """Every check's result on `root`, each reported to `progress` as it finishes."""
    results = []
    for check in OFFLINE_CHECKS if checks is None else checks:
        result = check(root, options or OfflineOptions())
        if progress is not None:
            progress(result.line())
        results.append(result)
    return results
