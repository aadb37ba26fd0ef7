"""The `gcp` target: real GCP, for `cloud: gcp` specs.

Credentials are Google's Application Default Credentials, as the Terraform provider finds them:
$GOOGLE_APPLICATION_CREDENTIALS (a key or workload identity federation file), a provider
variable ($GOOGLE_CREDENTIALS, $GOOGLE_OAUTH_ACCESS_TOKEN), gcloud's ADC file
(`gcloud auth application-default login`), or the metadata server when gpufleet itself runs on
Compute Engine. `prepare` looks for them before anything is rendered or run: without any, it
stops with BadInput (exit 2) naming what it looked for. Then it asks the project whether the
fleets can exist (infra.targets.gcp_preflight: machine and GPU types in each zone, GPU quotas)
and stops, exit 2, with every problem, before anything is rendered.

No Google provider can be downloaded on an offline machine, so `plan --offline` does not run
Terraform's plan: it renders the root and runs the offline checks (infra.targets.gcp_offline:
checkov, and `terraform validate` where a filesystem mirror holds the provider). Applying and
destroying ask for confirmation, as on AWS.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Callable

from infra.target_names import GCP
from infra.targets.base import Prepared, TerraformTarget
from runtime.errors import BadInput

CREDENTIAL_ENV = ("GOOGLE_CREDENTIALS", "GOOGLE_CLOUD_KEYFILE_JSON", "GCLOUD_KEYFILE_JSON", "GOOGLE_OAUTH_ACCESS_TOKEN")
ADC_FILE = "application_default_credentials.json"
GCE_PRODUCT_FILE = Path("/sys/class/dmi/id/product_name")


def gcloud_adc_file() -> Path:
    """Where `gcloud auth application-default login` writes its credentials ($CLOUDSDK_CONFIG moves it)."""
    if os.environ.get("CLOUDSDK_CONFIG"):
        return Path(os.environ["CLOUDSDK_CONFIG"]) / ADC_FILE
    if os.name == "nt" and os.environ.get("APPDATA"):
        return Path(os.environ["APPDATA"]) / "gcloud" / ADC_FILE
    return Path.home() / ".config" / "gcloud" / ADC_FILE


def on_compute_engine() -> bool:
    """Whether this machine is a Compute Engine VM (its metadata server then holds credentials)."""
    try:
        return GCE_PRODUCT_FILE.read_text().strip() == "Google Compute Engine"
    except OSError:
        return False


def find_credentials() -> str:
    """Where Google credentials come from (a description); BadInput naming every place looked at."""
    named = os.environ.get("GOOGLE_APPLICATION_CREDENTIALS")
    if named:
        if Path(named).is_file():
            return f"GOOGLE_APPLICATION_CREDENTIALS ({named})"
        raise BadInput(f"GOOGLE_APPLICATION_CREDENTIALS: no such credentials file (got {named!r}); point it at a "
                       "service account key or workload identity federation file, or unset it")
    for var in CREDENTIAL_ENV:
        if os.environ.get(var):
            return f"${var}"
    adc = gcloud_adc_file()
    if adc.is_file():
        return f"gcloud application default credentials ({adc})"
    if on_compute_engine():
        return "the Compute Engine metadata server"
    raise BadInput(
        "the gcp target needs Google credentials and found none: GOOGLE_APPLICATION_CREDENTIALS is not set, "
        f"none of {', '.join('$' + v for v in CREDENTIAL_ENV)} is set, there is no gcloud credentials file "
        f"at {adc} (`gcloud auth application-default login` writes it), and this is not a Compute Engine VM. "
        "Nothing was rendered or run. Without a project, `gpufleet plan SPEC --target gcp --offline` renders "
        "the root and runs the offline checks"
    )


def fleet_needs(stack) -> list:
    """What preflight checks for a resolved GCP stack: one FleetNeed per managed instance group
    (a spot group draws on the PREEMPTIBLE_ quotas), named by the spec field of its fleet."""
    from infra.targets.gcp_preflight import FleetNeed

    g = stack.gcp
    pools = (stack.spec.serving.pools or []) if stack.spec.serving else []
    paths = {p.name: f"serving.pools[{i}]" for i, p in enumerate(pools)}
    needs = []
    for fleet in g.fleets:
        # a pool's problems name its own fields (a pool's replicas override serving.replicas)
        path = "training" if fleet.role == "train" else paths.get(fleet.pool, "serving")
        for group in fleet.groups:
            needs.append(FleetNeed(fleet=path, machine_type=fleet.machine_type,
                                   accelerator=fleet.accelerator if fleet.attached else None,
                                   per_instance=fleet.gpus, max_instances=group.max, spot=group.spot))
    return needs


def run_preflight(stack) -> list[str]:
    """Every problem Compute Engine reports for the stack's fleets (gcp_preflight.preflight)."""
    from infra.targets.gcp_preflight import preflight

    return preflight(stack.gcp.project, stack.spec.region, list(stack.gcp.zones), fleet_needs(stack))


class GcpTarget(TerraformTarget):
    name = GCP
    summary = "real GCP (--offline: render and offline checks)"
    real_cloud = True
    clouds = ("gcp",)
    plans_offline = False

    @property
    def provider_constraint(self) -> str:
        from infra.render.gcp import GCP_PROVIDER_CONSTRAINT

        return GCP_PROVIDER_CONSTRAINT

    def mirror_cli_config(self, provider_mirror: Path | str, flag: str = "--provider-mirror") -> Path:
        """The CLI config that installs hashicorp/google from a user's mirror (BadInput unless it holds one we accept)."""
        from infra.terraform.mirror import GOOGLE_SOURCE, user_mirror_cli_config

        return user_mirror_cli_config(provider_mirror, self.provider_constraint, flag=flag, who="the gcp target",
                                      source=GOOGLE_SOURCE)

    def prepare(self, stack, out_dir: Path | None = None, *, offline: bool = False, recreate: bool = False,
                start_emulator: bool = True, cli_config: Path | None = None,
                endpoint: str | None = None) -> tuple[Prepared, bool]:
        """Credentials, then preflight (BadInput, nothing rendered, without them or with problems), then
        render and a Terraform for the root."""
        if offline:
            raise BadInput("--offline: the gcp target has no offline Google provider, so offline it only renders and "
                           "checks: `gpufleet plan SPEC --target gcp --offline`")
        find_credentials()
        problems = run_preflight(stack)
        if problems:
            raise BadInput(problems)
        return super().prepare(stack, out_dir, offline=False, recreate=recreate, start_emulator=start_emulator,
                               cli_config=cli_config, endpoint=endpoint)

    def check_offline(self, stack, out_dir: Path | None = None, progress: Callable[[str], None] | None = None,
                      provider_mirror: Path | None = None) -> list:
        """Render the root, then run the offline checks on it (gcp_offline.OFFLINE_CHECKS); every result."""
        from infra.targets.gcp_offline import CheckResult, OfflineOptions, run_offline_checks

        root = self.render(stack, out_dir)
        rendered = CheckResult("render", "passed", str(root))
        if progress is not None:
            progress(rendered.line())
        return [rendered, *run_offline_checks(root, OfflineOptions(provider_mirror), progress=progress)]
