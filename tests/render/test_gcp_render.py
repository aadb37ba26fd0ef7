"""The rendered GCP root: what its structure promises, read back from the HCL itself.

No Google provider runs here (tests/terraform has checkov; a provider-schema check reads the
same golden roots), so these read the rendered main.tf and the modules with python-hcl2:
a spot + on-demand pool is two groups behind one backend service, every GPU template stops on
host maintenance, spot is spelled the four ways GCP needs, VMs get no external IP, and the
startup script fetches the bundle from the bucket the metadata names.
"""

from __future__ import annotations

import base64
import gzip
import json
import re
import subprocess
import sys
from pathlib import Path

import hcl2
import pytest

from infra.render import render
from infra.render.render import render_files
from infra.render.runtime_config import runtime_config
from infra.spec import load_stack

ROOT = Path(__file__).resolve().parents[2]
FLEET = ROOT / "examples/gcp-gpu-fleet.yaml"
WEIGHTED = ROOT / "examples/gcp-serving-weighted.yaml"


def unq(value):
    """python-hcl2 keeps string literals' quotes and wraps expressions in ${...}: strip both."""
    if isinstance(value, str):
        if len(value) >= 2 and value[0] == value[-1] == '"':
            return value[1:-1]
        m = re.fullmatch(r"\$\{(.*)\}", value, re.S)
        return m.group(1) if m else value
    if isinstance(value, list):
        return [unq(v) for v in value]
    if isinstance(value, dict):
        return {unq(k): unq(v) for k, v in value.items() if k != "__is_block__"}
    return value


def modules_of(main_tf: str) -> dict[str, dict]:
    return {unq(name): unq(body) for block in hcl2.loads(main_tf)["module"] for name, body in block.items()}


def resources(path: Path) -> dict[str, dict]:
    return {f"{unq(t)}.{unq(n)}": unq(body) for block in hcl2.load(path.open())["resource"]
            for t, named in block.items() for n, body in named.items()}


@pytest.fixture(scope="module")
def fleet():
    stack = load_stack(FLEET)
    return stack, render_files(stack, "gcp")


def test_spot_and_on_demand_are_two_groups_behind_one_backend_service(fleet):
    _, files = fleet
    mods = modules_of(files["main.tf"].decode())
    ondemand, spot = mods["serving_main_ondemand"], mods["serving_main_spot"]
    assert ondemand["source"] == spot["source"] == "./modules/gcp/gpu-mig"
    assert (ondemand["spot"], spot["spot"]) == (False, True)
    assert (ondemand["min_size"], ondemand["max_size"], spot["min_size"], spot["max_size"]) == (1, 1, 1, 7)
    assert "scaling" not in ondemand and spot["scaling"]["metric_type"] == "custom.googleapis.com/gpufleet/inflight_requests"
    lb = mods["lb"]
    assert list(lb["pools"]) == ["main"]
    assert lb["pools"]["main"]["groups"] == ["module.serving_main_ondemand.instance_group",
                                            "module.serving_main_spot.instance_group"]
    assert lb["locality_lb_policy"] == "LEAST_REQUEST" and lb["weighted"] is False
    # ...and the lb module makes one backend service per pool, with every group of it as a backend
    lb_res = resources(ROOT / "modules/gcp/lb/main.tf")
    backend = lb_res["google_compute_backend_service.pool"]
    assert backend["for_each"] == "var.pools" and backend["load_balancing_scheme"] == "EXTERNAL_MANAGED"
    assert backend["dynamic"][0]["backend"]["for_each"] == "each.value.groups"


def test_every_fleet_is_a_gpu_mig_in_the_listed_zones(fleet):
    stack, files = fleet
    mods = modules_of(files["main.tf"].decode())
    migs = {name: m for name, m in mods.items() if m["source"] == "./modules/gcp/gpu-mig"}
    assert set(migs) == {"training", "serving_main_ondemand", "serving_main_spot"}
    assert mods["training"]["machine_type"] == "a2-highgpu-1g" and mods["training"]["accelerator"] is None
    assert mods["training"]["target_shape"] == "ANY_SINGLE_ZONE" and mods["training"]["update_type"] == "OPPORTUNISTIC"
    assert mods["serving_main_spot"]["accelerator"] == {"type": "nvidia-tesla-t4", "count": 1}
    assert all(m["zones"] == "local.zones" for m in migs.values())
    assert 'zones = ["us-central1-a", "us-central1-c"]' in files["main.tf"].decode()
    mig = resources(ROOT / "modules/gcp/gpu-mig/main.tf")["google_compute_region_instance_group_manager.this"]
    assert mig["distribution_policy_zones"] == "var.zones"
    assert {name for d in mig["dynamic"] for name in d} == {"named_port", "auto_healing_policies"}
    assert mig["lifecycle"][0]["ignore_changes"] == ["target_size"]


def test_gpu_templates_terminate_on_maintenance_and_spell_spot_fully():
    template = resources(ROOT / "modules/gcp/gpu-mig/main.tf")["google_compute_instance_template.this"]
    (scheduling,) = template["scheduling"]
    assert scheduling["on_host_maintenance"] == "TERMINATE"  # a literal: every GPU template, spot or not
    assert scheduling["provisioning_model"] == 'var.spot ? "SPOT" : "STANDARD"'
    assert scheduling["preemptible"] == "var.spot"
    assert scheduling["automatic_restart"] == "!var.spot"
    assert scheduling["instance_termination_action"] == "var.spot ? var.spot_termination_action : null"
    (nic,) = template["network_interface"]
    assert "access_config" not in nic, "VMs must not get an external IP"
    (shielded,) = template["shielded_instance_config"]
    assert shielded["enable_vtpm"] is True and shielded["enable_integrity_monitoring"] is True
    assert template["metadata"]["block-project-ssh-keys"] == "true" and template["metadata"]["enable-oslogin"] == "TRUE"
    assert template["metadata"]["gpufleet-bucket"] == "var.bucket"


def test_modules_configure_no_provider_and_admit_google_6_and_7():
    from infra.terraform.mirror import satisfies

    for folder in sorted((ROOT / "modules/gcp").iterdir()):
        names = {p.name for p in folder.iterdir()}
        assert {"main.tf", "variables.tf", "outputs.tf", "versions.tf", "README.md"} <= names, folder
        for tf in folder.glob("*.tf"):
            assert not re.search(r'^provider\s+"', tf.read_text(), re.M), f"{tf}: a module configures no provider"
        constraint = unq(hcl2.load((folder / "versions.tf").open())["terraform"][0]["required_providers"][0]["google"]["version"])
        assert all(satisfies(v, constraint) for v in ("6.0.0", "6.50.0", "7.0.0", "7.12.1")), (folder, constraint)
        assert not any(satisfies(v, constraint) for v in ("5.45.0", "8.0.0")), (folder, constraint)
        variables = hcl2.load((folder / "variables.tf").open())["variable"]
        readme = (folder / "README.md").read_text()
        for block in variables:
            for name, body in block.items():
                assert "type" in body and "description" in body, f"{folder.name}.{name}: typed and described"
                assert f"| `{unq(name)}` |" in readme, f"{folder.name}/README.md does not list input {unq(name)}"
        for block in hcl2.load((folder / "outputs.tf").open())["output"]:
            for name in block:
                assert f"| `{unq(name)}` |" in readme, f"{folder.name}/README.md does not list output {unq(name)}"


def test_weighted_pools_and_https():
    files = render_files(load_stack(WEIGHTED), "gcp")
    mods = modules_of(files["main.tf"].decode())
    lb = mods["lb"]
    assert lb["weighted"] is True and lb["locality_lb_policy"] == "ROUND_ROBIN"
    assert {name: p["weight"] for name, p in lb["pools"].items()} == {"l4": 3, "t4": 1}
    assert lb["domain"] == "infer.example.com" and lb["listener_port"] == 443
    # requests_per_target (600 a minute per VM) -> RATE balancing, held at 80 % of 12.5 requests/s
    assert lb["balancing"] == {"mode": "RATE", "max_utilization": 0, "max_rate_per_instance": 12.5}
    assert mods["serving_l4"]["scaling"]["metric"] == "requests_per_target"
    assert mods["serving_l4"]["scaling"]["target"] == 0.8
    url_map = resources(ROOT / "modules/gcp/lb/main.tf")["google_compute_url_map.this"]
    route = url_map["dynamic"][0]["default_route_action"]
    assert route["for_each"] == "var.weighted ? [1] : []"
    assert route["content"][0]["dynamic"][0]["weighted_backend_services"]["for_each"] == "var.pools"


def test_runtime_config_contract(fleet):
    stack, _ = fleet
    serve, train = runtime_config(stack, "serve"), runtime_config(stack, "train")
    for config in (serve, train):
        assert config["cloud"] == "gcp" and config["region"] == "us-central1"
        assert config["gcp"] == {"project": "my-ml-project", "zones": ["us-central1-a", "us-central1-c"]}
        assert config["artifacts"]["scheme"] == "gs" and config["artifacts"]["bucket_env"] == "GPUFLEET_BUCKET"
    assert train["train"]["group"] == "gcp-fleet-train"
    assert serve["scaling"]["pools"] == {"main": ["gcp-fleet-serve-main-ondemand", "gcp-fleet-serve-main-spot"]}
    assert serve["agent"]["metric_type"] == "custom.googleapis.com/gpufleet/inflight_requests"
    # the same shape as AWS's, plus what differs
    aws = runtime_config(load_stack(ROOT / "examples/aws-gpu-fleet.yaml"), "serve")
    assert aws["artifacts"]["scheme"] == "s3" and "gcp" not in aws and "metric_type" not in aws["agent"]
    assert set(serve) == set(aws) | {"gcp"} and set(serve["agent"]) == set(aws["agent"]) | {"metric_type"}


def test_startup_script(fleet, tmp_path):
    stack, files = fleet
    script = files["user_data/serve.sh.tftpl"].decode()
    assert not re.findall(r"[$%]\{", script), "no Terraform template sequence: the bucket comes from metadata"
    (b64,) = re.findall(r"echo '([A-Za-z0-9+/=]+)' \| base64 -d", script)
    assert json.loads(base64.b64decode(b64)) == runtime_config(stack, "serve")
    assert "METADATA=http://metadata.google.internal/computeMetadata/v1/instance" in script
    assert '"$METADATA/attributes/gpufleet-bucket"' in script
    assert "aws s3" not in script
    path = tmp_path / "serve.sh"
    path.write_text(script)
    assert subprocess.run(["bash", "-n", str(path)], capture_output=True).returncode == 0
    # the embedded bootstrap is runtime/bootstrap.py, which fetches from Cloud Storage on GCP
    (blob,) = re.findall(r"base64 -d <<<'([A-Za-z0-9+/=]+)' \| gunzip >/opt/gpufleet/bootstrap.py", script)
    assert gzip.decompress(base64.b64decode(blob)) == (ROOT / "runtime/bootstrap.py").read_bytes()
    assert 'exec "$PY" /opt/gpufleet/bootstrap.py --stop-timeout-s ' in script


@pytest.mark.parametrize("example", [FLEET, WEIGHTED], ids=lambda p: p.stem)
def test_rendered_root_is_formatted_and_self_contained(example, tmp_path):
    out = render(load_stack(example), tmp_path / "root", target="gcp")
    sources = set(re.findall(r'source\s*=\s*"([^"]+)"', (out / "main.tf").read_text()))
    assert sources == {"./modules/gcp/storage", "./modules/gcp/iam", "./modules/gcp/network", "./modules/gcp/gpu-mig",
                       "./modules/gcp/lb"}
    assert all((out / s / "main.tf").is_file() for s in sources)
    assert not (out / "modules" / "aws").exists()
    fmt = subprocess.run([sys.executable, "-m", "infra.terraform.embedded", f"-chdir={out}", "fmt", "-check", "-recursive"],
                         capture_output=True, text=True, env={"PATH": "/usr/bin:/bin", "TF_CLI_CONFIG_FILE": "/dev/null"})
    assert fmt.returncode == 0, fmt.stdout + fmt.stderr
    stack = load_stack(example)
    assert json.loads((out / "terraform.tfvars.json").read_text()) == {
        "project": "my-ml-project", "region": stack.spec.region, "force_destroy_artifacts": False}


def test_render_refuses_a_target_of_another_cloud():
    with pytest.raises(ValueError, match="does not deploy cloud 'gcp'"):
        render_files(load_stack(FLEET), "aws")
    with pytest.raises(ValueError, match="does not deploy cloud 'aws'"):
        render_files(load_stack(ROOT / "examples/aws-gpu-fleet.yaml"), "gcp")
