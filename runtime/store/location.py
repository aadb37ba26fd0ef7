"""Locations and the store's errors, shared by every backend (local, S3, GCS).

A location is a local path, `s3://bucket/key` or `gs://bucket/key`. Keys are `/`-separated,
without a leading or trailing "/".
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from runtime.errors import BadInput

REMOTE_SCHEMES = {"s3": "S3", "gs": "GCS"}


class StoreError(OSError):
    """An operation on the remote object `uri` failed: `code` is the service's error code (S3's
    "AccessDenied", "NoSuchBucket", ...; for GCS the API's error name, "Forbidden", "NotFound",
    ...), or None when the service could not be reached or signed for; `detail` is the
    underlying message."""

    def __init__(self, uri: str, code: str | None = None, detail: str = ""):
        unreachable = f"{_service(uri)} unreachable"
        super().__init__(f"{uri}: {code or unreachable}" + (f" ({detail})" if detail else ""))
        self.uri, self.code, self.detail = uri, code, detail

    def __reduce__(self):
        return type(self), (self.uri, self.code, self.detail)


class NotFound(StoreError, FileNotFoundError):
    """No object at the location (S3's NoSuchKey / 404, GCS's 404)."""


def _service(uri: str) -> str:
    return REMOTE_SCHEMES.get(uri.partition("://")[0], "S3")


@dataclass(frozen=True)
class Location:
    """A parsed location. `scheme` is "s3", "gs" or "file"; for S3 and GCS, `bucket` and `key`
    (no leading or trailing "/", "" for the bucket's root); for a local path, `bucket` is "" and
    `key` the path as given. `str()` gives the location back as a URI or path."""

    scheme: str
    bucket: str
    key: str

    @property
    def is_s3(self) -> bool:
        return self.scheme == "s3"

    @property
    def is_gcs(self) -> bool:
        return self.scheme == "gs"

    @property
    def is_remote(self) -> bool:
        """An object store (S3 or GCS), not the local filesystem: no rename, no directories."""
        return self.scheme in REMOTE_SCHEMES

    @property
    def path(self) -> str:
        """The filesystem path pyarrow expects: `bucket/key` for S3 and GCS, an absolute path locally."""
        if self.is_remote:
            return f"{self.bucket}/{self.key}" if self.key else self.bucket
        return os.path.abspath(self.key)

    def join(self, *parts: str) -> Location:
        """The location `parts` below this one (each part may hold "/")."""
        if not self.is_remote:
            return Location(self.scheme, "", os.path.join(self.key, *parts))
        key = "/".join(p.strip("/") for p in (self.key, *parts) if p.strip("/"))
        return Location(self.scheme, self.bucket, key)

    def __str__(self) -> str:
        if self.is_remote:
            root = f"{self.scheme}://{self.bucket}"
            return f"{root}/{self.key}" if self.key else root
        return self.key


def parse(uri) -> Location:
    """A `Location` for `s3://bucket/key`, `gs://bucket/key`, a local path (str or PathLike), or
    a Location (as is).

    Raises BadInput for an S3 or GCS location without a bucket.
    """
    if isinstance(uri, Location):
        return uri
    uri = os.fspath(uri)
    scheme, sep, rest = uri.partition("://")
    if not sep or scheme not in REMOTE_SCHEMES:
        return Location("file", "", uri)
    bucket, _, key = rest.partition("/")
    if not bucket:
        raise BadInput(f"{uri}: an {REMOTE_SCHEMES[scheme]} location needs a bucket ({scheme}://bucket/prefix)")
    return Location(scheme, bucket, key.strip("/"))


def with_scheme(url: str | None) -> str | None:
    """An endpoint `url` with `http://` added when it has no scheme; None for None or ""."""
    if url and "://" not in url:
        url = "http://" + url
    return url or None


CLOUD_SCHEMES = {"aws": "s3", "gcp": "gs"}  # where each cloud's artifacts bucket is addressed


def bucket_url(artifacts: dict, prefix: str = "", cloud: str | None = None) -> str | None:
    """The URL of `prefix` in the runtime config's artifacts bucket, or None without a bucket.

    `artifacts` is the runtime config's `artifacts` section after runtime.role resolved its
    `bucket`; its `scheme` ("s3" or "gs") names the object store, else the config's `cloud`
    does (gcp: "gs"), else "s3".
    """
    bucket = artifacts.get("bucket")
    if not bucket:
        return None
    scheme = artifacts.get("scheme") or CLOUD_SCHEMES.get(cloud or "aws", "s3")
    if scheme not in REMOTE_SCHEMES:
        raise BadInput(f"artifacts.scheme: unknown object store (got {scheme!r}; allowed: {', '.join(REMOTE_SCHEMES)})")
    prefix = prefix.lstrip("/")  # kept as given otherwise: "models/latest/" stays a prefix
    return f"{scheme}://{bucket}/{prefix}" if prefix else f"{scheme}://{bucket}"
