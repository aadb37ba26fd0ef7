"""runtime.store: the endpoint and region rules, location parsing, local and S3 operations, and
every S3 user (checkpoints, artifacts, the training role's upload) following the one endpoint rule."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from runtime import store
from runtime.errors import BadInput
from runtime.store import Location

ROOT = Path(__file__).resolve().parents[2]
DEAD = "http://127.0.0.1:9"  # nothing listens there: a client that used it would fail


@pytest.fixture
def bare_env(monkeypatch):
    """No endpoint or region variables, whatever the session set."""
    for v in (*store.ENDPOINT_VARIABLES, *store.REGION_VARIABLES):
        monkeypatch.delenv(v, raising=False)
    return monkeypatch


def test_importing_the_store_loads_neither_boto3_nor_pyarrow():
    code = "import sys, runtime.store; print(sorted(m for m in ('boto3', 'botocore', 'pyarrow') if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_endpoint_rule_order(bare_env):
    assert store.resolve_endpoint() is None  # AWS itself
    bare_env.setenv("AWS_ENDPOINT_URL", "http://generic:1")
    assert store.resolve_endpoint() == "http://generic:1"
    bare_env.setenv("AWS_ENDPOINT_URL_S3", "http://s3-specific:2")
    assert store.resolve_endpoint() == "http://s3-specific:2"
    bare_env.setenv("GPUFLEET_S3_ENDPOINT", "http://gpufleet:3")
    assert store.resolve_endpoint() == "http://gpufleet:3"
    assert store.resolve_endpoint("https://explicit:4") == "https://explicit:4"


def test_endpoint_rule_skips_empty_values_and_adds_a_scheme(bare_env):
    bare_env.setenv("GPUFLEET_S3_ENDPOINT", "")
    bare_env.setenv("AWS_ENDPOINT_URL", "127.0.0.1:5000")
    assert store.resolve_endpoint() == "http://127.0.0.1:5000"
    assert store.resolve_endpoint("") == "http://127.0.0.1:5000"


def test_region_rule_order(bare_env, tmp_path):
    cfg = tmp_path / "config"
    cfg.write_text("[default]\nregion = eu-north-1\n")
    bare_env.setenv("AWS_CONFIG_FILE", str(cfg))
    bare_env.delenv("AWS_PROFILE", raising=False)
    bare_env.delenv("AWS_DEFAULT_PROFILE", raising=False)
    assert store.resolve_region() == "eu-north-1"  # the profile
    bare_env.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert store.resolve_region() == "eu-west-1"
    bare_env.setenv("AWS_REGION", "ap-south-1")
    assert store.resolve_region() == "ap-south-1"
    assert store.resolve_region("us-west-2") == "us-west-2"
    bare_env.delenv("AWS_REGION")
    bare_env.delenv("AWS_DEFAULT_REGION")
    cfg.write_text("")
    assert store.resolve_region() == store.DEFAULT_REGION


def test_clients_follow_the_rules_and_are_shared(bare_env):
    bare_env.setenv("GPUFLEET_S3_ENDPOINT", "http://127.0.0.1:7001")
    bare_env.setenv("AWS_REGION", "eu-west-1")
    c = store.s3_client()
    assert c.meta.endpoint_url == "http://127.0.0.1:7001" and c.meta.region_name == "eu-west-1"
    assert store.s3_client() is c
    assert store.s3_client("http://127.0.0.1:7002").meta.endpoint_url == "http://127.0.0.1:7002"
    fs, path = store.arrow_filesystem("s3://bucket/some/prefix/")
    kw = fs.__reduce__()[1][0]
    assert (kw["endpoint_override"], kw["scheme"], kw["region"], path) == \
        ("127.0.0.1:7001", "http", "eu-west-1", "bucket/some/prefix")


def test_parse_s3_locations():
    loc = store.parse("s3://bucket/runs/a/")
    assert loc == Location("s3", "bucket", "runs/a") and loc.is_s3
    assert str(loc) == "s3://bucket/runs/a" and loc.path == "bucket/runs/a"
    assert store.parse("s3://bucket") == store.parse("s3://bucket/") == Location("s3", "bucket", "")
    assert str(store.parse("s3://bucket/")) == "s3://bucket" and store.parse("s3://bucket").path == "bucket"
    assert store.parse(loc) is loc
    with pytest.raises(BadInput, match=r"s3:///x: an S3 location needs a bucket \(s3://bucket/prefix\)"):
        store.parse("s3:///x")


def test_parse_local_locations(tmp_path):
    loc = store.parse(tmp_path / "ck")
    assert loc == Location("file", "", str(tmp_path / "ck")) and not loc.is_s3 and str(loc) == str(tmp_path / "ck")
    assert store.parse("rel/dir").path == os.path.abspath("rel/dir")


def test_join():
    root = store.parse("s3://b/runs/")
    assert root.join("step-1", "COMMIT") == Location("s3", "b", "runs/step-1/COMMIT")
    assert root.join("step-1/state.pt").key == "runs/step-1/state.pt"
    assert store.parse("s3://b").join("/model.json/") == Location("s3", "b", "model.json")
    assert store.parse("/tmp/x").join("a/b", "c") == Location("file", "", "/tmp/x/a/b/c")


def test_local_operations(tmp_path):
    root = store.parse(tmp_path / "root")
    assert store.list_keys(root) == [] and not store.exists(root.join("a"))
    store.put_bytes(root.join("d/e/f.bin"), b"one")  # parents created
    store.put_bytes(root.join("a"), b"two")
    assert store.get_bytes(root.join("d/e/f.bin")) == b"one" and store.exists(root.join("a"))
    assert store.list_keys(root) == ["a", "d/e/f.bin"]
    store.put_file(tmp_path / "root" / "a", tmp_path / "copy" / "a2")
    store.get_file(root.join("d/e/f.bin"), tmp_path / "out" / "f")
    assert (tmp_path / "copy" / "a2").read_bytes() == b"two" and (tmp_path / "out" / "f").read_bytes() == b"one"
    store.delete(root.join("a"))
    store.delete(root.join("a"))  # already gone: not an error
    with pytest.raises(FileNotFoundError):
        store.get_bytes(root.join("a"))
    store.delete_tree(root.join("d"))
    assert store.list_keys(root) == [] and os.listdir(tmp_path / "root") == []


def test_atomic_local_writes_leave_the_old_file_on_failure(tmp_path):
    target = tmp_path / "doc.json"
    store.write_json(target, {"v": 1})
    with pytest.raises(RuntimeError):
        with store.open_atomic(target, "w") as f:
            f.write('{"v": 2, "trunc')
            raise RuntimeError("killed mid-write")
    assert json.loads(target.read_text()) == {"v": 1} and os.listdir(tmp_path) == ["doc.json"]
    store.write_json(target, {"v": 3}, indent=None)
    assert target.read_text() == '{"v": 3}' and os.listdir(tmp_path) == ["doc.json"]


def test_s3_operations_on_the_emulator(aws_client, moto_reset, tmp_path):
    aws_client("s3").create_bucket(Bucket="bkt")
    root = store.parse("s3://bkt/p")
    store.put_bytes(root.join("x/1"), b"one", moto_reset)
    (tmp_path / "f").write_bytes(b"file")
    store.put_file(tmp_path / "f", root.join("f"), moto_reset)
    store.put_bytes("s3://bkt/other", b"outside the prefix", moto_reset)
    assert store.list_keys(root, moto_reset) == ["f", "x/1"]
    assert store.get_bytes(root.join("x/1"), moto_reset) == b"one"
    store.get_file(root.join("f"), tmp_path / "back", moto_reset)
    assert (tmp_path / "back").read_bytes() == b"file"
    assert store.exists(root.join("f"), moto_reset) and not store.exists(root.join("nothing"), moto_reset)
    with pytest.raises(store.NotFound) as e:
        store.get_bytes(root.join("nothing"), moto_reset)
    assert e.value.code == "NoSuchKey" and isinstance(e.value, FileNotFoundError)
    with pytest.raises(store.StoreError) as e:
        store.list_keys("s3://nobucket/p", moto_reset)
    assert e.value.code == "NoSuchBucket"
    store.delete_tree(root, moto_reset, first=("1",))
    assert store.list_keys("s3://bkt", moto_reset) == ["other"]


def test_unreachable_s3_is_a_store_error_without_a_code(bare_env):
    bare_env.setenv("AWS_ACCESS_KEY_ID", "test")
    bare_env.setenv("AWS_SECRET_ACCESS_KEY", "test")
    with pytest.raises(store.StoreError) as e:
        store.get_bytes("s3://b/k", DEAD)
    assert e.value.code is None and "s3://b/k" in str(e.value)


def test_checkpoints_artifacts_and_role_upload_honour_gpufleet_s3_endpoint(aws_client, moto_reset, monkeypatch,
                                                                          tmp_path):
    """Before runtime.store, only the data code read GPUFLEET_S3_ENDPOINT: these went to AWS_ENDPOINT_URL."""
    import torch

    from runtime.model import load_artifact
    from runtime.model.artifact import save_artifact
    from runtime.model.modules import KMeans
    from runtime.train.checkpoint import COMMIT, STATE, Checkpointer
    from runtime.train.role import upload_model

    s3 = aws_client("s3")
    s3.create_bucket(Bucket="art")
    monkeypatch.setenv("GPUFLEET_S3_ENDPOINT", moto_reset)
    monkeypatch.delenv("AWS_ENDPOINT_URL_S3", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", DEAD)  # the lower-priority variables point nowhere

    c = Checkpointer("s3://art/ck", keep=1, async_save=False)
    for step in (1, 2):
        c.save(step, {"step": step, "w": torch.full((3,), float(step))})
    keys = sorted(o["Key"] for o in s3.list_objects_v2(Bucket="art")["Contents"])
    assert keys == [f"ck/step-000000002/{COMMIT}", f"ck/step-000000002/{STATE}"]
    assert Checkpointer("s3://art/ck").load_latest()["step"] == 2

    km = KMeans(4, 2)
    km.centroids.copy_(torch.tensor([[0.0] * 4, [5.0] * 4]))
    save_artifact(tmp_path / "model", "kmeans", km, {"n_features": 4, "k": 2})
    upload_model(str(tmp_path / "model"), "s3://art/models/latest/")
    predictor = load_artifact("s3://art/models/latest/")
    assert predictor.predict(np.full((1, 4), 4.0, dtype=np.float32)) == [1]
