"""Shared fixtures: the AWS emulator (moto) on 127.0.0.1, and fresh boto3 clients for it."""

from __future__ import annotations

import os

import pytest


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
