"""Remote state: the lock diagnostic read into its holder, the spellings per provider major, and
the state bucket's check and bootstrap against moto (in process, through the emulator's endpoint rule)."""

from __future__ import annotations

import pytest

from infra.render.providers import AWS_PROVIDERS, spellings
from infra.spec.resolve import ResolvedBackend
from infra.state.backend import Endpoint, bootstrap, endpoint_for, require
from infra.state.lock import StateLocked, lock_info, parse_lock_info
from infra.terraform.runner import Diagnostic, TerraformFailed, _failure
from runtime.errors import BadInput

# Terraform 1.15's diagnostic when an S3 lock file is held (as `plan -json` printed it against moto).
LOCKED_DETAIL = (
    "Error message: operation error S3: PutObject, https response error StatusCode: 412, RequestID: X, "
    "api error PreconditionFailed: At least one of the pre-conditions you specified did not hold\n"
    "Lock Info:\n  ID:        11111111-2222-3333-4444-555555555555\n"
    "  Path:      tf-state/stacks/demo.tfstate\n  Operation: OperationTypeApply\n  Who:       ci@runner-7\n"
    "  Version:   1.15.5\n  Created:   2026-01-01 00:00:00 +0000 UTC\n  Info:      \n\n\n"
    "Terraform acquires a state lock to protect the state from being written\nby multiple users at the same time."
)


def test_lock_info_names_the_holder():
    info = parse_lock_info(LOCKED_DETAIL)
    assert (info.id, info.who, info.verb, info.path) == (
        "11111111-2222-3333-4444-555555555555", "ci@runner-7", "apply", "tf-state/stacks/demo.tfstate")
    assert info.created == "2026-01-01 00:00:00 +0000 UTC" and info.version == "1.15.5"
    assert parse_lock_info("Error: something else") is None


def test_runner_raises_state_locked_for_the_lock_diagnostic():
    locked = _failure("apply", [Diagnostic("error", "Error acquiring the state lock", LOCKED_DETAIL)], "")
    assert isinstance(locked, StateLocked)
    text = str(locked)
    assert "state is locked by another Terraform run, so this apply did not start" in text
    for part in ("11111111-2222-3333-4444-555555555555", "held by:   ci@runner-7", "operation: apply",
                 "gpufleet state unlock SPEC 11111111-2222-3333-4444-555555555555"):
        assert part in text, text
    # the human-readable form (stderr) carries the same block
    assert lock_info([], "Error: Error acquiring the state lock\n\n" + LOCKED_DETAIL).who == "ci@runner-7"
    other = _failure("apply", [Diagnostic("error", "Invalid reference", "no such thing")], "")
    assert type(other) is TerraformFailed


def test_spellings_by_provider_major():
    assert spellings(3).storage_module == "aws/storage/provider-v3" and spellings(3).elbv2_endpoint == "elb"
    assert spellings(5) == spellings(6) and spellings(5).path_style_argument == "s3_use_path_style"
    with pytest.raises(ValueError, match="AWS provider 7.x is not supported"):
        spellings(7)
    assert AWS_PROVIDERS["emulator"].spellings == spellings(3)
    assert AWS_PROVIDERS["aws"].constraint == ">= 5.0, < 7.0"  # admits 6.x


def _backend(lock="lockfile", table=None, region="us-east-1"):
    return ResolvedBackend(bucket="tf-state-unit", key="stacks/demo.tfstate", region=region, lock=lock,
                           dynamodb_table=table)


class _Info:
    def __init__(self, endpoint):
        self.endpoint = endpoint


@pytest.mark.parametrize("lock, table", [("lockfile", None), ("dynamodb", "tf-locks")])
def test_require_then_bootstrap_then_require(moto_reset, lock, table):
    backend = _backend(lock, table)
    endpoint = endpoint_for("emulator", _Info(moto_reset))
    assert endpoint == Endpoint(moto_reset, f"the emulator at {moto_reset}")

    with pytest.raises(BadInput) as missing:
        require(backend, endpoint, "my-stack.yaml")
    lines = missing.value.problems
    assert lines[0].startswith("backend.bucket: the state bucket 'tf-state-unit' does not exist in the emulator")
    assert "`gpufleet state bootstrap my-stack.yaml`" in lines[0]
    assert len(lines) == (2 if lock == "dynamodb" else 1)
    if lock == "dynamodb":
        assert lines[1].startswith("backend.dynamodb_table: the lock table 'tf-locks' does not exist")

    report = bootstrap(backend, endpoint)
    assert report[0].startswith("bucket s3://tf-state-unit created")
    s3 = _client(moto_reset, "s3")
    assert s3.get_bucket_versioning(Bucket="tf-state-unit")["Status"] == "Enabled"
    rule = s3.get_bucket_encryption(Bucket="tf-state-unit")["ServerSideEncryptionConfiguration"]["Rules"][0]
    assert rule["ApplyServerSideEncryptionByDefault"]["SSEAlgorithm"] == "AES256"
    assert all(s3.get_public_access_block(Bucket="tf-state-unit")["PublicAccessBlockConfiguration"].values())
    if lock == "dynamodb":
        schema = _client(moto_reset, "dynamodb").describe_table(TableName="tf-locks")["Table"]["KeySchema"]
        assert schema == [{"AttributeName": "LockID", "KeyType": "HASH"}]
    require(backend, endpoint)  # now passes

    again = bootstrap(backend, endpoint)  # idempotent: kept, settings applied again
    assert again[0].startswith("bucket s3://tf-state-unit exists")
    if lock == "dynamodb":
        assert again[-1].startswith("lock table tf-locks exists")


def test_bootstrap_in_another_region_and_a_foreign_table(moto_reset):
    endpoint = Endpoint(moto_reset, "the emulator")
    backend = _backend(region="eu-west-1")
    bootstrap(backend, endpoint)
    s3 = _client(moto_reset, "s3", "eu-west-1")
    assert s3.get_bucket_location(Bucket="tf-state-unit")["LocationConstraint"] == "eu-west-1"

    _client(moto_reset, "dynamodb").create_table(
        TableName="not-locks", BillingMode="PAY_PER_REQUEST",
        AttributeDefinitions=[{"AttributeName": "pk", "AttributeType": "S"}],
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}])
    with pytest.raises(BadInput, match="backend.dynamodb_table: 'not-locks' exists with key schema"):
        require(_backend("dynamodb", "not-locks"), endpoint)


def _client(endpoint, service, region="us-east-1"):
    import boto3

    return boto3.client(service, region_name=region, endpoint_url=endpoint,
                        aws_access_key_id="test", aws_secret_access_key="test")


# -- `gpufleet state`: refusals before anything runs, and bootstrap through --endpoint ----------
def _spec_file(tmp_path, backend: dict | None):
    import yaml

    data = {"name": "remote", "training": {"instance_type": "g5.xlarge", "nodes": {"min": 1, "max": 1}}}
    if backend is not None:
        data["backend"] = backend
    path = tmp_path / "stack.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


S3_BACKEND = {"type": "s3", "bucket": "tf-state-cli", "key": "stacks/remote.tfstate"}


@pytest.mark.parametrize("argv, message", [
    (["bootstrap", "{spec_local}"], "backend.type: `gpufleet state` needs an s3 backend"),
    (["unlock", "{spec}"], "lock_id: required to unlock"),
    (["bootstrap", "{spec}", "some-lock-id"], "lock_id: only `state unlock` takes a lock ID"),
    (["bootstrap", "{spec}", "--target", "aws", "--endpoint", "http://127.0.0.1:1"],
     "--endpoint: only the emulator target talks to an AWS-compatible endpoint (got --target aws)"),
])
def test_state_refusals_start_nothing(tmp_path, capsys, monkeypatch, argv, message):
    import infra.emulator
    import infra.render
    from infra.cli import main

    def forbidden(*a, **k):
        raise AssertionError("started or rendered something before refusing")

    monkeypatch.setattr(infra.emulator, "start", forbidden)
    monkeypatch.setattr(infra.render, "render", forbidden)
    (tmp_path / "local").mkdir()
    specs = {"spec": _spec_file(tmp_path, S3_BACKEND), "spec_local": _spec_file(tmp_path / "local", None)}
    assert main(["state", *(a.format(**specs) for a in argv)]) == 2
    assert message in capsys.readouterr().err


def test_state_bootstrap_through_an_endpoint(moto_reset, tmp_path, capsys, monkeypatch):
    """`--endpoint URL` (or $GPUFLEET_EMULATOR_ENDPOINT): the bucket is made there, the bundled emulator left alone."""
    import infra.emulator
    from infra.cli import main

    monkeypatch.setattr(infra.emulator, "start", lambda *a, **k: pytest.fail("started the bundled emulator"))
    spec = _spec_file(tmp_path, S3_BACKEND)
    monkeypatch.setenv("GPUFLEET_EMULATOR_ENDPOINT", moto_reset)
    assert main(["state", "bootstrap", spec]) == 0
    assert f"bucket s3://tf-state-cli created in the emulator at {moto_reset}" in capsys.readouterr().out
    assert _client(moto_reset, "s3").get_bucket_versioning(Bucket="tf-state-cli")["Status"] == "Enabled"
