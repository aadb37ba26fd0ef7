"""The runtime's one object store: locations, get/put/list/delete, atomic writes, on a local
filesystem, S3 or GCS.

A *location* is a local path, `s3://bucket/key` or `gs://bucket/key`. `parse` turns one into a
`Location`; every operation here takes a location as a string, a path or a `Location`, and
works the same on each backend, chosen by the location's scheme. Keys under a location are
`/`-separated on all of them.

| backend | module | clients | endpoint rule |
| --- | --- | --- | --- |
| local | `local.py` | the filesystem | - |
| S3 | `s3.py` | boto3, pyarrow S3FileSystem | `endpoint` arg, GPUFLEET_S3_ENDPOINT, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, AWS |
| GCS | `gcs.py` | google-cloud-storage, pyarrow GcsFileSystem | `endpoint` arg, GPUFLEET_GCS_ENDPOINT, STORAGE_EMULATOR_HOST, Google |

The `endpoint` argument of every operation goes to the backend of the location's scheme; a
program that reads S3 and writes GCS in one run sets each endpoint by its variable instead.
The S3 and GCS client libraries are imported on first use: importing this package loads
neither, and an install without the Google packages works until a gs:// location is used
(then BadInput says which extra to install).

Errors: a failed remote call raises `StoreError` (an OSError) carrying the service's error
code, or code None when the service could not be reached or signed for; an absent object
raises `NotFound` (also a FileNotFoundError). Local operations raise the OSError the
filesystem gives. A malformed location is `BadInput`.

Atomicity: a local write goes to a temporary file in the same directory and is renamed over
the target (`open_atomic`, `write_json`, `put_bytes`, `put_file`), so a reader sees the old
file or the new one, never a part. A remote write is one object upload, which S3 and GCS make
visible whole. Several objects are never written atomically together: callers that need that
write their data first and a commit marker last (see runtime.train.checkpoint).
"""

from __future__ import annotations

import os

from runtime.store import gcs, local, s3
from runtime.store.local import open_atomic, write_json
from runtime.store.location import REMOTE_SCHEMES, Location, NotFound, StoreError, bucket_url, parse
from runtime.store.s3 import (DEFAULT_REGION, ENDPOINT_VARIABLES, REGION_VARIABLES, resolve_endpoint,
                              resolve_region, s3_client)

__all__ = [
    "Location", "parse", "bucket_url", "StoreError", "NotFound", "REMOTE_SCHEMES",
    "open_atomic", "write_json", "get_bytes", "put_bytes", "get_file", "put_file", "exists", "list_keys",
    "delete", "delete_tree", "arrow_filesystem",
    # the S3 rules, kept here for the callers that predate GCS; GCS's are in runtime.store.gcs
    "ENDPOINT_VARIABLES", "REGION_VARIABLES", "DEFAULT_REGION", "resolve_endpoint", "resolve_region", "s3_client",
]

_BACKENDS = {"file": local, "s3": s3, "gs": gcs}


def _backend(loc: Location):
    return _BACKENDS[loc.scheme]


def get_bytes(location, endpoint: str | None = None) -> bytes:
    """The content of the object or file at `location`."""
    loc = parse(location)
    return _backend(loc).get_bytes(loc, endpoint)


def put_bytes(location, data: bytes, endpoint: str | None = None) -> None:
    """Write `data` at `location` atomically (locally: parents created, fsynced, renamed into place)."""
    loc = parse(location)
    _backend(loc).put_bytes(loc, data, endpoint)


def get_file(location, dest, endpoint: str | None = None) -> None:
    """Copy the object or file at `location` to the local file `dest`, which appears whole or not at all."""
    loc, dest = parse(location), os.fspath(dest)
    local.make_parent(dest)
    _backend(loc).get_file(loc, dest, endpoint)


def put_file(src, location, endpoint: str | None = None) -> None:
    """Copy the local file `src` to `location` atomically (S3: the transfer manager, multipart
    when large; GCS: a resumable upload when large)."""
    loc = parse(location)
    _backend(loc).put_file(os.fspath(src), loc, endpoint)


def exists(location, endpoint: str | None = None) -> bool:
    """True when an object (S3, GCS) or a regular file (local) is at `location`."""
    loc = parse(location)
    return _backend(loc).exists(loc, endpoint)


def list_keys(location, endpoint: str | None = None) -> list[str]:
    """Every object or file below `location`, recursively, as sorted `/`-separated keys relative
    to it; [] when there is none (locally, also when the directory does not exist)."""
    loc = parse(location)
    return _backend(loc).list_keys(loc, endpoint)


def delete(location, endpoint: str | None = None) -> None:
    """Remove the object or file at `location`; nothing there is not an error."""
    loc = parse(location)
    _backend(loc).delete(loc, endpoint)


def delete_tree(location, endpoint: str | None = None, first: tuple[str, ...] = ()) -> None:
    """Remove everything below `location`. Keys whose last part is in `first` go before the
    rest, so a commit marker disappears before the data it vouches for."""
    loc = parse(location)
    keys = list_keys(loc, endpoint)
    for k in sorted(keys, key=lambda k: k.rsplit("/", 1)[-1] not in first):
        if loc.is_remote or k.rsplit("/", 1)[-1] in first:
            delete(loc.join(k), endpoint)
    if not loc.is_remote:
        local.remove_tree(loc)


def arrow_filesystem(location, endpoint: str | None = None):
    """(pyarrow filesystem, path) for `location`: S3FileSystem or GcsFileSystem by the backend's
    rules, or the local one."""
    loc = parse(location)
    return _backend(loc).arrow_filesystem(loc, endpoint)
