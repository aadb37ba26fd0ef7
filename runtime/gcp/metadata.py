"""The GCE metadata server: the one client every instance role uses on Google Cloud.

`GET http://metadata.google.internal/computeMetadata/v1/<path>` with the header
`Metadata-Flavor: Google` (requests without it are refused). The host comes from
`GCE_METADATA_HOST` (host[:port], no scheme; `GCE_METADATA_ROOT` is its older name), as Google's
own libraries read it, so tests point it at a fake server on 127.0.0.1.

Metadata read by the roles:
- `instance/name`, `instance/zone` (`projects/NUMBER/zones/ZONE`), `project/project-id`;
- `instance/network-interfaces/0/ip`: the private address the rendezvous is chosen by;
- `instance/attributes/gpufleet-bucket`: the artifacts bucket, set by the stack's instance template;
- `instance/preempted`: "TRUE" once a spot (preemptible) VM is being preempted, which leaves
  about 30 seconds. With `?wait_for_change=true` the server holds the request until the value
  changes (`last_etag` says which value the caller has seen; `timeout_sec` bounds the wait), so
  a watcher learns of a preemption at once instead of at its next poll.

Mirrors runtime.imds (EC2's IMDSv2) and, like it, lives beside the roles rather than in any.
"""

from __future__ import annotations

import os
import urllib.error
import urllib.parse
import urllib.request

DEFAULT_HOST = "metadata.google.internal"
HOST_VARIABLES = ("GCE_METADATA_HOST", "GCE_METADATA_ROOT")
PREFIX = "/computeMetadata/v1/"
BUCKET_ATTRIBUTE = "gpufleet-bucket"


def metadata_url() -> str:
    """The metadata server's base URL (`http://host[:port]`) from the environment, else the real one."""
    host = next((os.environ[v] for v in HOST_VARIABLES if os.environ.get(v)), DEFAULT_HOST)
    return host if "://" in host else f"http://{host}"


class GceMetadata:
    def __init__(self, url: str | None = None, timeout_s: float = 2.0):
        """`url`: the server's base URL (with or without `/computeMetadata/v1`); default `metadata_url()`."""
        base = (url or metadata_url()).rstrip("/")
        self.url = base.removesuffix(PREFIX.rstrip("/"))
        self.timeout_s = timeout_s

    def read(self, path: str, wait_for_change: bool = False, last_etag: str | None = None,
             timeout_sec: int | None = None) -> tuple[str | None, str | None]:
        """(the text at `path` or None when it does not exist, its ETag). With `wait_for_change`, the server
        answers once the value differs from `last_etag` (or changes, without one), or after `timeout_sec`."""
        query = {}
        if wait_for_change:
            query["wait_for_change"] = "true"
            if last_etag:
                query["last_etag"] = last_etag
            if timeout_sec is not None:
                query["timeout_sec"] = str(int(timeout_sec))
        url = self.url + PREFIX + path.lstrip("/") + ("?" + urllib.parse.urlencode(query) if query else "")
        timeout = self.timeout_s
        if wait_for_change:  # the server holds the request: wait for it as long as it may hold
            timeout = None if timeout_sec is None else self.timeout_s + int(timeout_sec)
        req = urllib.request.Request(url, headers={"Metadata-Flavor": "Google"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.read().decode().strip(), resp.headers.get("ETag")
        except urllib.error.HTTPError as e:
            if e.code == 404:
                return None, e.headers.get("ETag") if e.headers else None
            raise

    def get(self, path: str) -> str | None:
        """The text at `computeMetadata/v1/<path>`, or None when it does not exist (404)."""
        return self.read(path)[0]

    def _required(self, path: str) -> str:
        value = self.get(path)
        if not value:
            raise RuntimeError(f"GCE metadata at {self.url} has no {path}")
        return value

    def instance_name(self) -> str:
        return self._required("instance/name")

    def zone(self) -> str:
        """The zone's name (`us-central1-a`), not the `projects/NUMBER/zones/...` path the server gives."""
        return self._required("instance/zone").rsplit("/", 1)[-1]

    def region(self) -> str:
        return self.zone().rsplit("-", 1)[0]

    def network_ip(self) -> str:
        return self._required("instance/network-interfaces/0/ip")

    def project(self) -> str:
        return self._required("project/project-id")

    def attribute(self, name: str) -> str | None:
        """A custom metadata attribute of the instance (set by its instance template), or None."""
        return self.get(f"instance/attributes/{name}")

    def bucket(self) -> str | None:
        return self.attribute(BUCKET_ATTRIBUTE)

    def preempted(self) -> bool:
        return (self.get("instance/preempted") or "").upper() == "TRUE"

    def wait_preempted(self, timeout_sec: int, last_etag: str | None = None) -> tuple[bool, str | None]:
        """Hold until `instance/preempted` changes from the value seen as `last_etag` (or for `timeout_sec`);
        returns (preempted now, the ETag to pass next time)."""
        value, tag = self.read("instance/preempted", wait_for_change=True, last_etag=last_etag,
                               timeout_sec=timeout_sec)
        return (value or "").upper() == "TRUE", tag
