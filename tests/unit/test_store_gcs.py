"""runtime.store on gs:// locations: the GCS endpoint rule, parsing, and every operation against
a GCS emulator over HTTP (tests/gcs_emulator.py) with the real google-cloud-storage and pyarrow clients."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from runtime import store
from runtime.errors import BadInput
from runtime.store import Location, gcs

ROOT = Path(__file__).resolve().parents[2]
DEAD = "http://127.0.0.1:9"  # nothing listens there


@pytest.fixture
def bare_env(monkeypatch):
    for v in gcs.ENDPOINT_VARIABLES:
        monkeypatch.delenv(v, raising=False)
    return monkeypatch


def test_endpoint_rule_order(bare_env):
    assert gcs.resolve_endpoint() is None  # Google itself
    bare_env.setenv("STORAGE_EMULATOR_HOST", "127.0.0.1:9023")  # Google's tools give it without a scheme
    assert gcs.resolve_endpoint() == "http://127.0.0.1:9023"
    bare_env.setenv("GPUFLEET_GCS_ENDPOINT", "https://gcs.internal:8443")
    assert gcs.resolve_endpoint() == "https://gcs.internal:8443"
    assert gcs.resolve_endpoint("http://explicit:1") == "http://explicit:1"
    bare_env.setenv("GPUFLEET_GCS_ENDPOINT", "")  # empty counts as unset
    assert gcs.resolve_endpoint() == "http://127.0.0.1:9023" and gcs.resolve_endpoint("") == "http://127.0.0.1:9023"


def test_s3_variables_do_not_steer_gcs(bare_env):
    bare_env.setenv("GPUFLEET_S3_ENDPOINT", "http://s3-only:1")
    bare_env.setenv("AWS_ENDPOINT_URL", "http://s3-only:2")
    assert gcs.resolve_endpoint() is None


def test_parse_gs_locations_and_bucket_urls():
    loc = store.parse("gs://bucket/runs/a/")
    assert loc == Location("gs", "bucket", "runs/a") and loc.is_gcs and loc.is_remote and not loc.is_s3
    assert str(loc) == "gs://bucket/runs/a" and loc.path == "bucket/runs/a"
    assert str(store.parse("gs://bucket/")) == "gs://bucket" and store.parse("gs://b").join("/m.json/").key == "m.json"
    assert not store.parse("/tmp/x").is_remote and store.parse("s3://b/k").is_remote
    with pytest.raises(BadInput, match=r"gs:///x: an GCS location needs a bucket \(gs://bucket/prefix\)"):
        store.parse("gs:///x")
    assert store.bucket_url({"bucket": "art", "scheme": "gs"}, "models/latest/") == "gs://art/models/latest/"
    assert store.bucket_url({"bucket": "art"}, "/checkpoints") == "s3://art/checkpoints"  # the default scheme
    assert store.bucket_url({"bucket": "art"}, "m/", cloud="gcp") == "gs://art/m/"  # the cloud's store
    assert store.bucket_url({"bucket": "art", "scheme": "s3"}, "m/", cloud="gcp") == "s3://art/m/"  # scheme wins
    assert store.bucket_url({"bucket": None, "scheme": "gs"}, "x") is None
    with pytest.raises(BadInput, match=r"artifacts.scheme: unknown object store \(got 'az'; allowed: s3, gs\)"):
        store.bucket_url({"bucket": "art", "scheme": "az"})


def test_importing_the_store_loads_no_google_package():
    code = "import sys, runtime.store; print(sorted(m for m in sys.modules if m.split('.')[0] == 'google'))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_without_the_google_packages_gs_is_bad_input_and_the_rest_works(tmp_path):
    """An AWS-only install: google-cloud-storage cannot be imported."""
    code = (
        "import sys; sys.modules['google.cloud.storage'] = None\n"
        "from runtime import store\n"
        f"store.put_bytes({str(tmp_path / 'f')!r}, b'local still works')\n"
        "try:\n    store.get_bytes('gs://b/k')\nexcept Exception as e:\n    print(type(e).__name__, e)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert r.stdout.strip() == "BadInput gs:// locations need google-cloud-storage: pip install 'gpufleet[gcp]'"
    assert (tmp_path / "f").read_bytes() == b"local still works"


def test_gcs_operations_on_the_emulator(gcs_endpoint, gcs_bucket, tmp_path):
    root = store.parse(f"gs://{gcs_bucket}/p")
    store.put_bytes(root.join("x/1"), b"one", gcs_endpoint)
    big = os.urandom(9 << 20)  # over google-cloud-storage's 8 MiB multipart limit: a resumable upload
    (tmp_path / "f").write_bytes(big)
    store.put_file(tmp_path / "f", root.join("f"), gcs_endpoint)
    store.put_bytes(f"gs://{gcs_bucket}/other", b"outside the prefix", gcs_endpoint)
    gcs.gcs_client(gcs_endpoint).bucket(gcs_bucket).blob("p/folder/").upload_from_string(b"")  # a console "folder"
    assert store.list_keys(root, gcs_endpoint) == ["f", "x/1"]
    assert store.get_bytes(root.join("x/1"), gcs_endpoint) == b"one"
    store.get_file(root.join("f"), tmp_path / "back" / "f", gcs_endpoint)
    assert (tmp_path / "back" / "f").read_bytes() == big
    assert store.exists(root.join("f"), gcs_endpoint) and not store.exists(root.join("nothing"), gcs_endpoint)
    with pytest.raises(store.NotFound) as e:
        store.get_bytes(root.join("nothing"), gcs_endpoint)
    assert e.value.code == "NotFound" and isinstance(e.value, FileNotFoundError)
    assert f"gs://{gcs_bucket}/p/nothing" in str(e.value)
    with pytest.raises(store.NotFound):
        store.get_file(root.join("nothing"), tmp_path / "none", gcs_endpoint)
    assert not (tmp_path / "none").exists()  # nothing half-written
    with pytest.raises(store.StoreError) as e:  # a missing bucket is not an absent object
        store.list_keys("gs://no-such-bucket-here/p", gcs_endpoint)
    assert e.value.code == "NotFound" and not isinstance(e.value, store.NotFound)
    store.delete(root.join("x/1"), gcs_endpoint)
    store.delete(root.join("x/1"), gcs_endpoint)  # already gone: not an error
    store.put_bytes(root.join("x/1"), b"again", gcs_endpoint)
    store.delete_tree(root, gcs_endpoint, first=("1",))
    assert store.list_keys(f"gs://{gcs_bucket}", gcs_endpoint) == ["other"]


def test_emulator_host_variable_and_gpufleet_variable_take_effect(gcs_endpoint, gcs_bucket, bare_env):
    host = gcs_endpoint.removeprefix("http://")
    bare_env.setenv("STORAGE_EMULATOR_HOST", host)
    store.put_bytes(f"gs://{gcs_bucket}/a", b"via STORAGE_EMULATOR_HOST")
    bare_env.setenv("STORAGE_EMULATOR_HOST", DEAD)  # lower priority than GPUFLEET_GCS_ENDPOINT
    bare_env.setenv("GPUFLEET_GCS_ENDPOINT", gcs_endpoint)
    assert store.get_bytes(f"gs://{gcs_bucket}/a") == b"via STORAGE_EMULATOR_HOST"
    fs, path = store.arrow_filesystem(f"gs://{gcs_bucket}/a")
    assert type(fs).__name__ == "GcsFileSystem" and path == f"{gcs_bucket}/a"
    with fs.open_input_file(path) as f:
        assert f.read_at(4, 4) == b"STOR"  # (nbytes, offset)


def test_unreachable_gcs_is_a_store_error_without_a_code(monkeypatch):
    monkeypatch.setattr(gcs, "RETRY_DEADLINE_S", 0.5)
    with pytest.raises(store.StoreError) as e:
        store.get_bytes("gs://b/k", DEAD)
    assert e.value.code is None and "gs://b/k: GCS unreachable" in str(e.value)


def test_arrow_reads_a_large_object_with_ranged_reads(gcs_endpoint, gcs_bucket):
    """pyarrow's GcsFileSystem against the emulator: a file larger than the socket buffers (the
    case that hangs the packaged single-connection server) and ranges from its middle."""
    data = os.urandom(20 << 20)
    store.put_bytes(f"gs://{gcs_bucket}/big", data, gcs_endpoint)
    fs, path = store.arrow_filesystem(f"gs://{gcs_bucket}/big", gcs_endpoint)
    with fs.open_input_file(path) as f:
        assert f.size() == len(data)
        assert f.read_at(1 << 20, 15 << 20) == data[15 << 20:16 << 20]
