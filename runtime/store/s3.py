"""The S3 backend of runtime.store: the endpoint and region rules, the boto3 client, pyarrow's S3FileSystem.

The endpoint rule, the only one in the runtime for S3 (boto3 clients and pyarrow filesystems alike):
  1. the `endpoint` argument (a CLI's `--endpoint`, a config's value), else
  2. `GPUFLEET_S3_ENDPOINT`, else
  3. `AWS_ENDPOINT_URL_S3`, else
  4. `AWS_ENDPOINT_URL`, else
  5. AWS itself (no endpoint: the regional S3 endpoint).
Empty values count as unset; an endpoint without a scheme (`127.0.0.1:5000`) gets `http://`.

The region rule: the `region` argument, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the
region of the AWS config profile, else `us-east-1`. Credentials come from the usual boto3 chain.

A write is one PutObject (or one multipart upload), which S3 makes visible whole. A failed call
raises StoreError carrying S3's error code (None when S3 could not be reached); an absent
object raises NotFound.
"""

from __future__ import annotations

import contextlib
import os
import threading

from runtime.store.local import open_atomic
from runtime.store.location import Location, NotFound, StoreError, with_scheme

ENDPOINT_VARIABLES = ("GPUFLEET_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
DEFAULT_REGION = "us-east-1"
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}


def resolve_endpoint(explicit: str | None = None) -> str | None:
    """The S3 endpoint URL by the module's rule, or None for AWS itself."""
    return with_scheme(explicit or next((os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)), None))


def resolve_region(explicit: str | None = None) -> str:
    """The AWS region by the module's rule (the config profile is read only when nothing else names one)."""
    name = _region_from_env(explicit)
    if name:
        return name
    import botocore.session

    return botocore.session.get_session().get_config_variable("region") or DEFAULT_REGION


def _region_from_env(explicit):
    return explicit or next((os.environ[v] for v in REGION_VARIABLES if os.environ.get(v)), None)


_clients: dict = {}
_clients_lock = threading.Lock()


def s3_client(endpoint: str | None = None, region: str | None = None):
    """A boto3 S3 client for the endpoint and region the rules give; one per process and
    (endpoint, region, credential variables), shared between threads (boto3 clients are
    thread-safe; each is made from its own session, since sessions are not)."""
    url, named = resolve_endpoint(endpoint), _region_from_env(region)
    # The pid keeps a forked child from sharing its parent's connections; the credential
    # variables let a change of them (a test, a profile switch) take effect.
    key = (os.getpid(), url, named, os.environ.get("AWS_PROFILE"), os.environ.get("AWS_ACCESS_KEY_ID"))
    with _clients_lock:
        client = _clients.get(key)
        if client is None:
            import boto3

            client = _clients[key] = boto3.session.Session().client(
                "s3", endpoint_url=url, region_name=named or resolve_region())
    return client


def arrow_filesystem(loc: Location, endpoint: str | None = None):
    """(pyarrow S3FileSystem by the same rules, `bucket/key`)."""
    import pyarrow.fs as pafs

    kw = {"region": resolve_region()}
    url = resolve_endpoint(endpoint)
    if url:
        scheme, _, netloc = url.partition("://")
        kw.update(endpoint_override=netloc.rstrip("/"), scheme=scheme)
    if os.environ.get("AWS_ACCESS_KEY_ID"):
        kw.update(access_key=os.environ["AWS_ACCESS_KEY_ID"], secret_key=os.environ.get("AWS_SECRET_ACCESS_KEY", ""))
        if os.environ.get("AWS_SESSION_TOKEN"):
            kw["session_token"] = os.environ["AWS_SESSION_TOKEN"]
    return pafs.S3FileSystem(**kw), loc.path


@contextlib.contextmanager
def _errors(loc: Location):
    """Turn boto3's exceptions into StoreError / NotFound naming `loc`."""
    import boto3.exceptions
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ClientError as e:
        code = str(e.response.get("Error", {}).get("Code") or "error")
        raise (NotFound if code in _NOT_FOUND_CODES else StoreError)(str(loc), code, str(e)) from None
    except botocore.exceptions.BotoCoreError as e:
        raise StoreError(str(loc), None, str(e)) from None
    except boto3.exceptions.S3UploadFailedError as e:
        raise StoreError(str(loc), "UploadFailed", str(e)) from None


def get_bytes(loc: Location, endpoint: str | None = None) -> bytes:
    with _errors(loc):
        return s3_client(endpoint).get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()


def put_bytes(loc: Location, data: bytes, endpoint: str | None = None) -> None:
    with _errors(loc):
        s3_client(endpoint).put_object(Bucket=loc.bucket, Key=loc.key, Body=data)


def get_file(loc: Location, dest: str, endpoint: str | None = None) -> None:
    with _errors(loc), open_atomic(dest, "wb") as f:
        s3_client(endpoint).download_fileobj(loc.bucket, loc.key, f)


def put_file(src: str, loc: Location, endpoint: str | None = None) -> None:
    """The transfer manager: multipart when large."""
    with _errors(loc):
        s3_client(endpoint).upload_file(src, loc.bucket, loc.key)


def exists(loc: Location, endpoint: str | None = None) -> bool:
    try:
        with _errors(loc):
            s3_client(endpoint).head_object(Bucket=loc.bucket, Key=loc.key)
    except NotFound:
        return False
    return True


def list_keys(loc: Location, endpoint: str | None = None) -> list[str]:
    base = f"{loc.key}/" if loc.key else ""
    keys, kw = [], {"Bucket": loc.bucket, "Prefix": base}
    with _errors(loc):
        for page in s3_client(endpoint).get_paginator("list_objects_v2").paginate(**kw):
            keys += [o["Key"][len(base):] for o in page.get("Contents", [])]
    return sorted(keys)


def delete(loc: Location, endpoint: str | None = None) -> None:
    with _errors(loc):
        s3_client(endpoint).delete_object(Bucket=loc.bucket, Key=loc.key)
