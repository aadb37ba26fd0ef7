"""The GCE metadata client (runtime.gcp.metadata) against the fake metadata server on 127.0.0.1."""

from __future__ import annotations

import threading
import time
import urllib.error
import urllib.request

import pytest

from runtime.gcp.metadata import GceMetadata, metadata_url


def test_the_host_comes_from_gce_metadata_host_as_googles_libraries_read_it(monkeypatch):
    monkeypatch.delenv("GCE_METADATA_HOST", raising=False)
    monkeypatch.delenv("GCE_METADATA_ROOT", raising=False)
    assert metadata_url() == "http://metadata.google.internal"
    monkeypatch.setenv("GCE_METADATA_ROOT", "10.1.2.3:8080")
    assert metadata_url() == "http://10.1.2.3:8080"
    monkeypatch.setenv("GCE_METADATA_HOST", "127.0.0.1:9")
    assert metadata_url() == "http://127.0.0.1:9"
    assert GceMetadata("http://127.0.0.1:9/computeMetadata/v1/").url == "http://127.0.0.1:9"


def test_instance_facts_from_the_metadata_server(gce_metadata):
    gce_metadata.set("instance/attributes/gpufleet-bucket", "demo-artifacts")
    md = GceMetadata()  # GCE_METADATA_HOST points at the fake
    assert (md.instance_name(), md.zone(), md.region()) == ("demo-train-x1b2", "us-central1-a", "us-central1")
    assert (md.network_ip(), md.project(), md.bucket()) == ("10.128.0.7", "demo-project", "demo-artifacts")
    assert md.attribute("absent") is None and md.preempted() is False
    gce_metadata.set("instance/preempted", "TRUE")
    assert md.preempted() is True


def test_the_server_refuses_requests_without_the_flavor_header(gce_metadata):
    with pytest.raises(urllib.error.HTTPError) as e:
        urllib.request.urlopen(f"{gce_metadata.url}/computeMetadata/v1/instance/name", timeout=5)
    assert e.value.code == 403


def test_wait_for_change_returns_when_the_value_flips_and_times_out_otherwise(gce_metadata):
    md = GceMetadata()
    value, tag = md.read("instance/preempted")
    assert value == "FALSE" and tag
    t0 = time.monotonic()
    assert md.wait_preempted(timeout_sec=1, last_etag=tag) == (False, tag)  # nothing changed: the timeout
    assert time.monotonic() - t0 >= 0.9
    threading.Thread(target=lambda: (gce_metadata.waiting.wait(10), gce_metadata.set("instance/preempted", "TRUE")),
                     daemon=True).start()
    gce_metadata.waiting.clear()
    t0 = time.monotonic()
    preempted, new_tag = md.wait_preempted(timeout_sec=30, last_etag=tag)
    assert preempted and new_tag != tag and time.monotonic() - t0 < 10
    assert any("wait_for_change=true" in r and f"last_etag={tag}" in r for r in gce_metadata.requests)
