"""Fixtures for the GCP pieces: the fake Compute Engine API (fake_compute.py) and a fake GCE metadata
server (fake_metadata.py), both on 127.0.0.1 and stopped after each test.

Tests that need google-cloud-compute skip, with that reason, where it is not installed.
"""

from __future__ import annotations

import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from fake_metadata import FakeGceMetadata  # noqa: E402

NO_COMPUTE = "google-cloud-compute is not installed (pip install 'gpufleet[gcp]')"


@pytest.fixture
def compute():
    """A FakeCompute for project `demo-project` (needs google-cloud-compute to be talked to)."""
    pytest.importorskip("google.cloud.compute_v1", reason=NO_COMPUTE)
    from fake_compute import FakeCompute

    fake = FakeCompute(project="demo-project")
    try:
        yield fake
    finally:
        fake.close()


@pytest.fixture
def gce_metadata(monkeypatch):
    """A FakeGceMetadata, with GCE_METADATA_HOST pointing at it (as Google's libraries read it)."""
    fake = FakeGceMetadata()
    monkeypatch.setenv("GCE_METADATA_HOST", fake.host)
    try:
        yield fake
    finally:
        fake.close()
