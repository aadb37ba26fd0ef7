"""Fixtures of the executed bootstrap tests (test_executed.py): one applied stack, fresh instances.

`fleet` (module scope) is what a cloud would hold after `gpufleet apply`: the emulator target
applies a training-only stack (no load balancer, so the apply takes ~25 s instead of ~75 s)
to the bundled emulator, which uploads the bundle to the artifacts bucket through the storage
module and creates the training Auto Scaling group with two instances. Their user_data is read
back from the launch template, byte for byte what EC2 would hand them. A serving instance's
user_data comes from rendering the same stack with a serving fleet (`gpufleet render`), its
`${bucket}` filled in as Terraform's templatefile() would: the bundle it fetches is the one
the apply uploaded (the bundle does not depend on the stack, so its digest is the same).

The wheelhouse: `gpufleet bundle` builds it for the stack (torch left to the image, CPython
of this machine) under the root the apply renders, from the package sources this machine's
pip is configured with, before the apply; the apply uploads it with the bundle, and each
instance fetches it from the bucket and installs `--no-index --require-hashes`.

The image's Python: `build_image` makes a venv of this machine's Python whose packages are the
dev environment's (torch and the rest, not gpufleet), and each instance has it at /opt/pytorch,
where a Deep Learning AMI keeps its PyTorch environment, with `python3` on PATH running it.
The bootstrap (`runtime.torch: use_image_torch`, the default) builds its venv on that Python,
so the image's torch is used and checked against gpufleet's range. Nothing is downloaded.
"""

from __future__ import annotations

import base64
import os
import re
import sys
import uuid
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
import netns  # noqa: E402
import standins  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
# A name of its own per run: a run that died leaves its stack in the emulator, a new one must not collide.
STACK = "bx" + uuid.uuid4().hex[:8]
REGION = "us-east-1"
# The instances' Python is the image's, which is this one (build_image).
PYTHON = "%d.%d" % sys.version_info[:2]
DATA_BUCKET = f"{STACK}-data"
SPEC = f"""
name: {STACK}
cloud: aws
region: {REGION}
runtime: {{python_version: "{PYTHON}"}}
network: {{cidr: 10.20.0.0/16, zones: 1}}
artifacts: {{force_destroy: true}}
training:
  instance_type: g5.xlarge
  nodes: {{min: 2, desired: 2, max: 2}}
  capacity: on_demand
  workload: {{type: logreg, data: "s3://{DATA_BUCKET}/clicks/", label: clicked, epochs: EPOCHS, checkpoint_every: 5, batch_size: 16}}
"""
SERVING = """
serving:
  instance_type: g5.xlarge
  replicas: {min: 1, desired: 1, max: 2}
  port: 8080
  drain_timeout_s: 5
  load_balancer: {deregistration_delay_s: 0}
"""


def _reason() -> str | None:
    return netns.unavailable()


@pytest.fixture(scope="module")
def namespaces():
    reason = _reason()
    if reason:
        pytest.skip(reason)


@pytest.fixture(scope="module")
def emulator():
    from infra import emulator as emu
    info, started = emu.start()
    yield info
    if started:
        emu.stop()


def boto(service: str, endpoint: str):
    import boto3
    return boto3.client(service, region_name=REGION, endpoint_url=endpoint,
                        aws_access_key_id="test", aws_secret_access_key="test")


def build_image(folder: Path) -> Path:
    """The GPU image's Python environment: a venv of this machine's base Python (no pip) whose
    site-packages are symlinks to the dev environment's packages, torch included, without
    gpufleet's own editable install (an image does not carry gpufleet), without pip (a venv
    made from it brings its own: ensurepip installs none where it already sees one), and
    without xxhash: a requirement the image lacks, which the instance must fetch from the
    wheelhouse and install, while it uses the image's packages for the rest."""
    import subprocess
    import sysconfig
    subprocess.run([getattr(sys, "_base_executable", sys.executable), "-m", "venv", "--without-pip", str(folder)],
                   check=True, capture_output=True)
    site = Path(sysconfig.get_paths()["purelib"])
    target = folder / "lib" / f"python{sys.version_info[0]}.{sys.version_info[1]}" / "site-packages"
    for entry in site.iterdir():
        name = entry.name.lower()
        if name.endswith(".pth") or re.match(r"(gpufleet|__editable__|pip|xxhash)($|-|\.)", name):
            continue
        (target / entry.name).symlink_to(entry)
    return folder


def runtime_config_of(user_data: str) -> dict:
    """The runtime config user_data writes (its base64 line)."""
    import json
    m = re.search(r"echo '([A-Za-z0-9+/=]+)' \| base64 -d >/etc/gpufleet/runtime.json", user_data)
    return json.loads(base64.b64decode(m[1])) if m else {}


def fill_template(text: str, values: dict) -> str:
    """Terraform templatefile() for user_data: `${name}` from `values`; any other is an error."""
    def sub(m):
        if m[1] not in values:
            raise KeyError(f"user_data template variable ${{{m[1]}}} has no value in the test")
        return values[m[1]]
    return re.sub(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", sub, text)


class Fleet:
    """The applied stack: endpoint, bucket, user_data per role, and the training instances."""

    def __init__(self, endpoint, bucket, user_data, train_instances, tools, image, tmp, wheelhouse_bytes):
        self.endpoint, self.bucket, self.user_data = endpoint, bucket, user_data
        self.wheelhouse_bytes = wheelhouse_bytes
        self.train_instances, self.tools, self.image, self.tmp = train_instances, tools, image, tmp
        host, port = endpoint.removeprefix("http://").rsplit(":", 1)
        self.emulator = (host, int(port))
        self.opened: list = []

    stack, region = STACK, REGION

    def client(self, service: str):
        return boto(service, self.endpoint)

    @staticmethod
    def metadata(instance_id: str, address: str, zone: str, group: str) -> dict:
        return imds_values(instance_id, address, zone, group)

    def instance(self, name: str, metadata: dict, **kw) -> netns.Instance:
        inst = netns.Instance(name, self.tools, self.emulator, metadata, image=self.image, **kw)
        self.opened.append(inst)
        return inst

    def close(self):
        for inst in self.opened:
            inst.close()


def write_dataset(endpoint: str, folder: Path) -> None:
    """s3://DATA_BUCKET/clicks/: 400 rows, 4 features, a label the first feature decides, written
    as 2 hash partitions by `gpufleet data partition` (what the spec's workload.data names)."""
    import subprocess

    import numpy as np
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    y = (x[:, 0] > 0).astype(int)
    folder.mkdir(parents=True, exist_ok=True)
    csv = folder / "clicks.csv"
    with open(csv, "w") as f:
        f.write("f0,f1,f2,f3,clicked\n")
        for row, label in zip(x, y):
            f.write(",".join(f"{v:.6f}" for v in row) + f",{label}\n")
    boto("s3", endpoint).create_bucket(Bucket=DATA_BUCKET)
    env = {**os.environ, "AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test",
           "AWS_DEFAULT_REGION": REGION}
    subprocess.run([sys.executable, "-m", "infra.cli", "data", "partition", str(csv), f"s3://{DATA_BUCKET}/clicks/",
                    "--strategy", "hash", "--key", "f1", "--partitions", "2"], check=True, env=env,
                   capture_output=True, timeout=120)


def write_model(endpoint: str, bucket: str, folder: Path) -> None:
    """A logreg artifact (4 features, 2 classes) at models/latest/, where the serve role looks."""
    import torch

    from runtime.model import LogisticRegression, save_artifact
    torch.manual_seed(0)
    model = LogisticRegression(4, 2)
    path = Path(save_artifact(folder, "logreg", model, {"n_features": 4, "classes": [0, 1]}))
    s3 = boto("s3", endpoint)
    for name in ("weights.pt", "metrics.json", "model.json"):
        if (path / name).exists():
            s3.upload_file(str(path / name), bucket, f"models/latest/{name}")


def make_fleet(tmp: Path, endpoint: str, epochs: int = 200) -> Fleet:
    """Apply the training stack to the emulator; render the serving user_data; data and a model."""
    sys.path.insert(0, str(ROOT / "tests" / "e2e"))
    from e2e_helpers import run_gpufleet

    from infra.render.render import render
    from infra.spec import load_stack

    spec = tmp / "stack.yaml"
    spec.write_text(SPEC.replace("EPOCHS", str(epochs)))
    write_dataset(endpoint, tmp / "data")
    import json
    import shutil
    root = tmp / "root"
    bundled = run_gpufleet("bundle", str(spec), "--root", str(root), timeout=300)
    wheelhouse = root / "bundle" / "wheelhouse"
    assert any(wheelhouse.glob("*/*.whl")), bundled.stdout + bundled.stderr
    applied = run_gpufleet("apply", str(spec), "--target", "emulator", "--root", str(root), "--yes",
                           timeout=300)
    outputs = json.loads(applied.stdout)
    bucket, group = outputs["artifacts_bucket"], outputs["training_group_name"]

    ec2, asg = boto("ec2", endpoint), boto("autoscaling", endpoint)
    g = asg.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"][0]
    lt = (g.get("MixedInstancesPolicy", {}).get("LaunchTemplate", {}).get("LaunchTemplateSpecification")
          or g["LaunchTemplate"])
    version = ec2.describe_launch_template_versions(LaunchTemplateId=lt["LaunchTemplateId"],
                                                    Versions=[str(lt.get("Version", "$Latest"))])
    train_user_data = base64.b64decode(version["LaunchTemplateVersions"][0]["LaunchTemplateData"]["UserData"]).decode()
    ids = [i["InstanceId"] for i in g["Instances"] if i["LifecycleState"] == "InService"]
    instances = sorted(((i["InstanceId"], i["PrivateIpAddress"], i["Placement"]["AvailabilityZone"])
                        for r in ec2.describe_instances(InstanceIds=ids)["Reservations"] for i in r["Instances"]),
                       key=lambda t: tuple(int(p) for p in t[1].split(".")))

    serve_spec = tmp / "serve-stack.yaml"
    serve_spec.write_text(spec.read_text() + SERVING)
    r = load_stack(serve_spec)
    # the same wheelhouse, so the same bundle digest as the one the apply uploaded
    shutil.copytree(wheelhouse, tmp / "serve-root" / "bundle" / "wheelhouse")
    rendered = render(r, tmp / "serve-root")
    serve_template = (rendered / "user_data" / "serve.sh.tftpl").read_text()
    serve_user_data = fill_template(serve_template, {"bucket": bucket, "group": r.pools[0].group_name})

    write_model(endpoint, bucket, tmp / "model")
    tools = standins.write_tools(tmp / "tools", sys.executable)
    return Fleet(endpoint, bucket, {"train": train_user_data, "serve": serve_user_data}, instances, tools,
                 build_image(tmp / "image"), tmp, sum(p.stat().st_size for p in wheelhouse.glob("*/*.whl")))


@pytest.fixture(scope="module")
def fleet(namespaces, emulator, tmp_path_factory):
    f = make_fleet(tmp_path_factory.mktemp("fleet"), emulator.endpoint)
    yield f
    # The stack stays in the emulator under its own name: destroying it would add ~30 s, and an
    # emulator keeps its state in memory only (CI stops it after the suite).
    f.close()


def imds_values(instance_id: str, address: str, zone: str, group: str) -> dict:
    """What IMDS answers for an Auto Scaling instance that is in service."""
    return {
        "meta-data/instance-id": instance_id,
        "meta-data/local-ipv4": address,
        "meta-data/placement/region": REGION,
        "meta-data/placement/availability-zone": zone,
        "meta-data/autoscaling/target-lifecycle-state": "InService",
        "meta-data/tags/instance/aws:autoscaling:groupName": group,
        "dynamic/instance-identity/document": (
            '{"instanceId": "%s", "region": "%s", "availabilityZone": "%s", "privateIp": "%s"}'
            % (instance_id, REGION, zone, address)),
    }

