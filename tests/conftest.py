"""Shared fixtures: the AWS emulator (moto) on 127.0.0.1, and fresh boto3 clients for it."""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from metadata_fake import FakeMetadata  # noqa: E402


@pytest.fixture(scope="session")
def moto_endpoint():
    """A moto server on 127.0.0.1 and a free port for the whole session; yields its URL.

    Tests that need clean state call `moto_reset` (POST /moto-api/reset) themselves.
    """
    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    url = f"http://{host}:{port}"
    saved = {k: os.environ.get(k) for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")}
    os.environ.update(AWS_ACCESS_KEY_ID="test", AWS_SECRET_ACCESS_KEY="test", AWS_DEFAULT_REGION="us-east-1")
    try:
        yield url
    finally:
        server.stop()
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture
def moto_reset(moto_endpoint):
    """Clear the emulator's state before a test; yields the endpoint URL."""
    import urllib.request

    urllib.request.urlopen(urllib.request.Request(f"{moto_endpoint}/moto-api/reset", method="POST")).read()
    yield moto_endpoint


@pytest.fixture
def aws_client(moto_reset):
    """Factory for boto3 clients pointed at a freshly reset emulator."""
    import boto3

    def make(service: str, region: str = "us-east-1"):
        return boto3.client(
            service,
            region_name=region,
            endpoint_url=moto_reset,
            aws_access_key_id="test",
            aws_secret_access_key="test",
        )

    return make


@pytest.fixture
def fake_imds():
    """A factory: `fake_imds(values, rotate_tokens=False)` starts a FakeMetadata, stopped after the test."""
    servers = []

    def make(values, rotate_tokens=False):
        servers.append(FakeMetadata(values, rotate_tokens))
        return servers[-1]

    yield make
    for s in servers:
        s.close()


def find_aws_mirror():
    """(mirror root, version) of the newest AWS provider the aws target accepts (5.x or 6.x) in a
    filesystem mirror on this machine, or None.

    `$GPUFLEET_TEST_PROVIDER_MIRROR` names one; else it is looked up at test time (machines
    differ; no path is committed): the provider binary sits at
    <root>/registry.terraform.io/hashicorp/aws/<version>/<os_arch>/terraform-provider-aws_v*.
    """
    import subprocess
    from pathlib import Path

    from infra.render.providers import AWS_PROVIDERS
    from infra.target_names import AWS
    from infra.terraform.mirror import mirrored_versions, satisfies

    constraint = AWS_PROVIDERS[AWS].constraint
    named = os.environ.get("GPUFLEET_TEST_PROVIDER_MIRROR")
    if named:
        accepted = [v for v in mirrored_versions(Path(named)) if satisfies(v, constraint)]
        return (Path(named), max(accepted, key=_version_key)) if accepted else None
    proc = subprocess.run(["find", "/", "-name", "terraform-provider-aws_v*", "-not", "-path", "/proc/*"],
                          capture_output=True, text=True, timeout=300)
    found = []
    for line in proc.stdout.splitlines():
        binary = Path(line)
        # a real provider: an executable of hundreds of MB (tests elsewhere may leave empty stand-ins)
        if not (binary.is_file() and os.access(binary, os.X_OK) and binary.stat().st_size > 10_000_000):
            continue
        if len(binary.parents) > 5 and binary.parents[4].name == "registry.terraform.io":
            version = binary.parents[1].name
            if satisfies(version, constraint):
                found.append((_version_key(version), binary.parents[5], version))
    if not found:
        return None
    _, root, version = max(found)
    return root, version


def _version_key(version: str) -> tuple:
    return tuple(int(p) for p in version.split(".") if p.isdigit())


@pytest.fixture(scope="session")
def aws_mirror():
    """(mirror root, version): find_aws_mirror's, or the test is skipped saying why."""
    found = find_aws_mirror()
    if found is None:
        pytest.skip("no AWS provider 5.x or 6.x in a filesystem mirror on this machine (the registry cannot be "
                    "reached; set GPUFLEET_TEST_PROVIDER_MIRROR to one); provider 6.x is not available offline at all")
    return found


@pytest.fixture(scope="session")
def aws5_cli_config(aws_mirror):
    """(CLI config path, provider version): the config gpufleet itself writes for a user's
    `--provider-mirror` (infra.terraform.mirror), pointed at the mirror found on this machine."""
    from infra.render.providers import AWS_PROVIDERS
    from infra.target_names import AWS
    from infra.terraform.mirror import user_mirror_cli_config

    root, version = aws_mirror
    return user_mirror_cli_config(root, AWS_PROVIDERS[AWS].constraint), version


@pytest.fixture(scope="session")
def gcs_endpoint():
    """A GCS emulator (tests/gcs_emulator.py) in its own process on 127.0.0.1 and a free port for
    the whole session; yields its URL and stops it by pid. Tests keep apart by bucket name."""
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("gcp_storage_emulator", reason="the GCS emulator comes with the dev extra")
    pytest.importorskip("google.cloud.storage", reason="gs:// locations need the gcp extra")
    proc = subprocess.Popen([sys.executable, str(Path(__file__).with_name("gcs_emulator.py"))],
                            stdout=subprocess.PIPE, text=True)
    try:
        port = int(proc.stdout.readline())
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def gcs_bucket(gcs_endpoint, request):
    """A new, empty bucket on the GCS emulator named after the test; yields its name."""
    import re
    import uuid

    from google.auth.credentials import AnonymousCredentials
    from google.cloud import storage

    name = re.sub(r"[^a-z0-9-]", "-", request.node.name.lower())[:40].strip("-") + "-" + uuid.uuid4().hex[:6]
    client = storage.Client(project="test", credentials=AnonymousCredentials(),
                            client_options={"api_endpoint": gcs_endpoint})
    client.create_bucket(name)
    yield name
