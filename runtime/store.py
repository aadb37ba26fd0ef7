"""The runtime's one object store: locations, the S3 client, get/put/list/delete, atomic writes.

A *location* is a local path or `s3://bucket/key`. `parse` turns one into a `Location`; every
operation here takes a location as a string, a path or a `Location`, and works the same on a
local filesystem and on S3. Keys under a location are `/`-separated on both.

The endpoint rule, the only one in the runtime (boto3 clients and pyarrow filesystems alike):
  1. the `endpoint` argument (a CLI's `--endpoint`, a config's value), else
  2. `GPUFLEET_S3_ENDPOINT`, else
  3. `AWS_ENDPOINT_URL_S3`, else
  4. `AWS_ENDPOINT_URL`, else
  5. AWS itself (no endpoint: the regional S3 endpoint).
Empty values count as unset; an endpoint without a scheme (`127.0.0.1:5000`) gets `http://`.

The region rule: the `region` argument, else `AWS_REGION`, else `AWS_DEFAULT_REGION`, else the
region of the AWS config profile, else `us-east-1`. Credentials come from the usual boto3 chain.

Errors: a failed S3 call raises `StoreError` (an OSError) carrying S3's error code, or code None
when S3 could not be reached; an absent object raises `NotFound` (also a FileNotFoundError).
Local operations raise the OSError the filesystem gives. A malformed location is `BadInput`.

Atomicity: a local write goes to a temporary file in the same directory and is renamed over
the target (`open_atomic`, `write_json`, `put_bytes`, `put_file`), so a reader sees the old
file or the new one, never a part. An S3 write is one PutObject (or one multipart upload),
which S3 makes visible whole. Several objects are never written atomically together: callers
that need that write their data first and a commit marker last (see runtime.train.checkpoint).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import threading
import uuid
from dataclasses import dataclass

from runtime.errors import BadInput

ENDPOINT_VARIABLES = ("GPUFLEET_S3_ENDPOINT", "AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
REGION_VARIABLES = ("AWS_REGION", "AWS_DEFAULT_REGION")
DEFAULT_REGION = "us-east-1"
_NOT_FOUND_CODES = {"NoSuchKey", "NotFound", "404"}


class StoreError(OSError):
    """An S3 operation on `uri` failed: `code` is S3's error code ("AccessDenied", "NoSuchBucket",
    ...), or None when S3 could not be reached or signed for; `detail` is the underlying message."""

    def __init__(self, uri: str, code: str | None = None, detail: str = ""):
        super().__init__(f"{uri}: {code or 'S3 unreachable'}" + (f" ({detail})" if detail else ""))
        self.uri, self.code, self.detail = uri, code, detail

    def __reduce__(self):
        return type(self), (self.uri, self.code, self.detail)


class NotFound(StoreError, FileNotFoundError):
    """No object at the location (S3's NoSuchKey / 404)."""


@dataclass(frozen=True)
class Location:
    """A parsed location. `scheme` is "s3" or "file"; for S3, `bucket` and `key` (no leading or
    trailing "/", "" for the bucket's root); for a local path, `bucket` is "" and `key` the path
    as given. `str()` gives the location back as a URI or path."""

    scheme: str
    bucket: str
    key: str

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def path(self) -> str:
        """The filesystem path pyarrow expects: `bucket/key` for S3, an absolute path locally."""
        if self.is_s3:
            return f"{self.bucket}/{self.key}" if self.key else self.bucket
        return os.path.abspath(self.key)

    def join(self, *parts: str) -> Location:
        """The location `parts` below this one (each part may hold "/")."""
        if not self.is_s3:
            return Location(self.scheme, "", os.path.join(self.key, *parts))
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return Location(self.scheme, self.bucket, key)

    def __str__(self) -> str:
        if self.is_s3:
            return f"s3://{self.bucket}/{self.key}" if self.key else f"s3://{self.bucket}"
        return self.key


def parse(uri) -> Location:
    """A `Location` for `s3://bucket/key`, a local path (str or PathLike), or a Location (as is).

    Raises BadInput for an S3 location without a bucket.
    """
    if isinstance(uri, Location):
        return uri
    uri = os.fspath(uri)
    if not uri.startswith("s3://"):
        return Location("file", "", uri)
    bucket, _, key = uri[len("s3://"):].partition("/")
    if not bucket:
        raise BadInput(f"{uri}: an S3 location needs a bucket (s3://bucket/prefix)")
    return Location("s3", bucket, key.strip("/"))


def resolve_endpoint(explicit: str | None = None) -> str | None:
    """The S3 endpoint URL by the module's rule, or None for AWS itself."""
    url = explicit or next((os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)), None)
    if url and "://" not in url:
        url = "http://" + url
    return url or None


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


def arrow_filesystem(location, endpoint: str | None = None):
    """(pyarrow filesystem, path) for `location`: S3FileSystem by the same rules, or the local one."""
    import pyarrow.fs as pafs

    loc = parse(location)
    if not loc.is_s3:
        return pafs.LocalFileSystem(), loc.path
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
def _s3_errors(loc: Location):
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


@contextlib.contextmanager
def open_atomic(path, mode: str = "wb", fsync: bool = False):
    """Open a temporary file beside local `path`; on a clean exit it replaces `path` (after an
    fsync when asked), on an exception it is deleted and `path` is untouched."""
    path = os.fspath(path)
    tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
    try:
        with open(tmp, mode) as f:
            yield f
            if fsync:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(tmp)
        raise


def write_json(path, doc, indent: int | None = 2) -> None:
    """Write `doc` as JSON to the local file `path` whole or not at all (a temporary file renamed over it)."""
    with open_atomic(path, "w") as f:
        json.dump(doc, f, indent=indent)


def _make_parent(path: str) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)


def get_bytes(location, endpoint: str | None = None) -> bytes:
    """The content of the object or file at `location`."""
    loc = parse(location)
    if not loc.is_s3:
        with open(loc.key, "rb") as f:
            return f.read()
    with _s3_errors(loc):
        return s3_client(endpoint).get_object(Bucket=loc.bucket, Key=loc.key)["Body"].read()


def put_bytes(location, data: bytes, endpoint: str | None = None) -> None:
    """Write `data` at `location` atomically (locally: parents created, fsynced, renamed into place)."""
    loc = parse(location)
    if not loc.is_s3:
        _make_parent(loc.key)
        with open_atomic(loc.key, "wb", fsync=True) as f:
            f.write(data)
        return
    with _s3_errors(loc):
        s3_client(endpoint).put_object(Bucket=loc.bucket, Key=loc.key, Body=data)


def get_file(location, dest, endpoint: str | None = None) -> None:
    """Copy the object or file at `location` to the local file `dest`, which appears whole or not at all."""
    loc, dest = parse(location), os.fspath(dest)
    _make_parent(dest)
    if not loc.is_s3:
        with open(loc.key, "rb") as src, open_atomic(dest, "wb") as f:
            shutil.copyfileobj(src, f)
        return
    with _s3_errors(loc), open_atomic(dest, "wb") as f:
        s3_client(endpoint).download_fileobj(loc.bucket, loc.key, f)


def put_file(src, location, endpoint: str | None = None) -> None:
    """Copy the local file `src` to `location` atomically (S3: the transfer manager, multipart when large)."""
    loc, src = parse(location), os.fspath(src)
    if not loc.is_s3:
        _make_parent(loc.key)
        with open(src, "rb") as fsrc, open_atomic(loc.key, "wb", fsync=True) as f:
            shutil.copyfileobj(fsrc, f)
        return
    with _s3_errors(loc):
        s3_client(endpoint).upload_file(src, loc.bucket, loc.key)


def exists(location, endpoint: str | None = None) -> bool:
    """True when an object (S3) or a regular file (local) is at `location`."""
    loc = parse(location)
    if not loc.is_s3:
        return os.path.isfile(loc.key)
    try:
        with _s3_errors(loc):
            s3_client(endpoint).head_object(Bucket=loc.bucket, Key=loc.key)
    except NotFound:
        return False
    return True


def list_keys(location, endpoint: str | None = None) -> list[str]:
    """Every object or file below `location`, recursively, as sorted `/`-separated keys relative
    to it; [] when there is none (locally, also when the directory does not exist)."""
    loc = parse(location)
    if not loc.is_s3:
        root = loc.key
        return sorted(os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/")
                      for d, _, names in os.walk(root) for n in names)
    base = f"{loc.key}/" if loc.key else ""
    keys, kw = [], {"Bucket": loc.bucket, "Prefix": base}
    with _s3_errors(loc):
        for page in s3_client(endpoint).get_paginator("list_objects_v2").paginate(**kw):
            keys += [o["Key"][len(base):] for o in page.get("Contents", [])]
    return sorted(keys)


def delete(location, endpoint: str | None = None) -> None:
    """Remove the object or file at `location`; nothing there is not an error."""
    loc = parse(location)
    if not loc.is_s3:
        with contextlib.suppress(FileNotFoundError):
            os.remove(loc.key)
        return
    with _s3_errors(loc):
        s3_client(endpoint).delete_object(Bucket=loc.bucket, Key=loc.key)


def delete_tree(location, endpoint: str | None = None, first: tuple[str, ...] = ()) -> None:
    """Remove everything below `location`. Keys whose last part is in `first` go before the
    rest, so a commit marker disappears before the data it vouches for."""
    loc = parse(location)
    keys = list_keys(loc, endpoint)
    for k in sorted(keys, key=lambda k: k.rsplit("/", 1)[-1] not in first):
        if loc.is_s3 or k.rsplit("/", 1)[-1] in first:
            delete(loc.join(k), endpoint)
    if not loc.is_s3:
        shutil.rmtree(loc.key, ignore_errors=True)
