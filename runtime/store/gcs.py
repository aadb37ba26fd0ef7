"""The GCS backend of runtime.store: `gs://bucket/key` through google-cloud-storage, and pyarrow's
GcsFileSystem for datasets.

Why these two clients (the same split as boto3 + pyarrow's S3FileSystem for S3):
- google-cloud-storage is Google's own client: it honours `STORAGE_EMULATOR_HOST` as Google's
  tools do, checks crc32c on downloads, and shares google-api-core and google-auth with
  google-cloud-monitoring, which the serving agent needs on GCP anyway, so the `gcp` extra stays
  small. gcsfs would add fsspec and aiohttp, a second auth stack, and Python-speed reads.
- pyarrow.fs.GcsFileSystem is already in the pyarrow wheel (a base dependency): datasets are
  read natively, in C++, with ranged reads, as S3 datasets are.
Both are imported only when a gs:// location is used: an AWS-only install needs neither.

The endpoint rule, the only one in the runtime for GCS (both clients alike):
  1. the `endpoint` argument (a CLI's `--endpoint`, a config's value), else
  2. `GPUFLEET_GCS_ENDPOINT`, else
  3. `STORAGE_EMULATOR_HOST` (what Google's own libraries honour), else
  4. Google itself (storage.googleapis.com).
Empty values count as unset; an endpoint without a scheme (`127.0.0.1:9023`) gets `http://`.
An `http://` endpoint is an emulator: requests go without credentials (a token is never sent in
clear text). Otherwise credentials are Application Default Credentials (on GCE, the instance's
service account through the metadata server; elsewhere `GOOGLE_APPLICATION_CREDENTIALS`).

Writes: one object upload (resumable when large), which GCS makes visible whole. Uploads are
retried on transient errors like reads: every key this runtime writes has one writer, so a
repeated upload writes the same bytes. Transient errors are retried for `RETRY_DEADLINE_S`.
A failed call raises StoreError with the API's error name ("Forbidden", "NotFound", ...), or
None when GCS could not be reached or signed for; an absent object raises NotFound. Objects whose
name ends in "/" (the console's "folders") are not listed.

Emulators: the packaged `gcp-storage-emulator start` serves one connection at a time, and
pyarrow keeps a whole-object download open (paused) while it issues ranged reads, so reading a
dataset file larger than the socket buffers through it never finishes; serve the emulator's
handler from a threading HTTP server instead (tests/gcs_emulator.py does).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import threading

from runtime.errors import BadInput
from runtime.store.local import open_atomic
from runtime.store.location import Location, NotFound, StoreError, with_scheme

ENDPOINT_VARIABLES = ("GPUFLEET_GCS_ENDPOINT", "STORAGE_EMULATOR_HOST")
RETRY_DEADLINE_S = 120.0
_EXTRA = "gs:// locations need google-cloud-storage: pip install 'gpufleet[gcp]'"


def resolve_endpoint(explicit: str | None = None) -> str | None:
    """The GCS endpoint URL by the module's rule, or None for Google itself."""
    return with_scheme(explicit or next((os.environ[v] for v in ENDPOINT_VARIABLES if os.environ.get(v)), None))


def is_emulator(url: str | None) -> bool:
    """Plain HTTP: an emulator, spoken to without credentials."""
    return bool(url) and url.startswith("http://")


_local = threading.local()


def _storage():
    """The google.cloud.storage module, or BadInput naming the extra that brings it."""
    try:
        from google.cloud import storage
    except ImportError:
        raise BadInput(_EXTRA) from None
    return storage


def gcs_client(endpoint: str | None = None):
    """A google-cloud-storage Client for the endpoint the rule gives; one per thread and
    (endpoint, credentials file): the library does not promise that a client is thread-safe."""
    url = resolve_endpoint(endpoint)
    key = (os.getpid(), url, os.environ.get("GOOGLE_APPLICATION_CREDENTIALS"))
    cache = _local.__dict__.setdefault("clients", {})
    client = cache.get(key)
    if client is None:
        storage = _storage()
        kw = {"client_options": {"api_endpoint": url}} if url else {}
        if is_emulator(url):
            from google.auth.credentials import AnonymousCredentials

            kw["credentials"] = AnonymousCredentials()
        # project=None: object operations need none, and no lookup of one is made
        client = cache[key] = storage.Client(project=None, **kw)
    return client


def arrow_filesystem(loc: Location, endpoint: str | None = None):
    """(pyarrow GcsFileSystem by the same rules, `bucket/key`)."""
    import pyarrow.fs as pafs

    kw = {"retry_time_limit": datetime.timedelta(seconds=RETRY_DEADLINE_S)}
    url = resolve_endpoint(endpoint)
    if url:
        scheme, _, netloc = url.partition("://")
        kw.update(endpoint_override=netloc.rstrip("/"), scheme=scheme, anonymous=is_emulator(url))
    return pafs.GcsFileSystem(**kw), loc.path


def _retry():
    from google.cloud.storage.retry import DEFAULT_RETRY

    return DEFAULT_RETRY.with_timeout(RETRY_DEADLINE_S)


@contextlib.contextmanager
def _errors(loc: Location, absent=NotFound):
    """Turn the Google libraries' exceptions into StoreError / `absent` (for a 404) naming `loc`."""
    _storage()
    import google.api_core.exceptions as gexc
    import google.auth.exceptions
    import requests.exceptions
    from google.cloud.storage.exceptions import DataCorruption

    try:
        yield
    except gexc.NotFound as e:
        raise absent(str(loc), "NotFound", e.message) from None
    except gexc.GoogleAPICallError as e:
        raise StoreError(str(loc), type(e).__name__, e.message) from None
    except DataCorruption as e:
        raise StoreError(str(loc), "DataCorruption", str(e)) from None
    except (gexc.RetryError, requests.exceptions.RequestException, google.auth.exceptions.GoogleAuthError) as e:
        raise StoreError(str(loc), None, str(e)) from None


def _blob(loc: Location, endpoint):
    return gcs_client(endpoint).bucket(loc.bucket).blob(loc.key)


def get_bytes(loc: Location, endpoint: str | None = None) -> bytes:
    with _errors(loc):
        return _blob(loc, endpoint).download_as_bytes(retry=_retry())


def put_bytes(loc: Location, data: bytes, endpoint: str | None = None) -> None:
    with _errors(loc):
        _blob(loc, endpoint).upload_from_string(data, content_type="application/octet-stream", retry=_retry())


def get_file(loc: Location, dest: str, endpoint: str | None = None) -> None:
    with _errors(loc), open_atomic(dest, "wb") as f:
        _blob(loc, endpoint).download_to_file(f, retry=_retry())


def put_file(src: str, loc: Location, endpoint: str | None = None) -> None:
    with _errors(loc):
        _blob(loc, endpoint).upload_from_filename(src, retry=_retry())


def exists(loc: Location, endpoint: str | None = None) -> bool:
    with _errors(loc):
        return bool(_blob(loc, endpoint).exists(retry=_retry()))


def list_keys(loc: Location, endpoint: str | None = None) -> list[str]:
    base = f"{loc.key}/" if loc.key else ""
    with _errors(loc, absent=StoreError):  # a 404 here is the bucket's: not an absent object
        names = [b.name for b in gcs_client(endpoint).list_blobs(loc.bucket, prefix=base, retry=_retry())]
    return sorted(n[len(base):] for n in names if not n.endswith("/"))


def delete(loc: Location, endpoint: str | None = None) -> None:
    with contextlib.suppress(NotFound), _errors(loc):
        _blob(loc, endpoint).delete(retry=_retry())
