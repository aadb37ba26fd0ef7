"""EC2 instance metadata (IMDSv2): the one client every instance role uses.

Flow: `PUT /latest/api/token` with a TTL header returns a session token, sent as
`X-aws-ec2-metadata-token` on every GET; a 401 means the token expired and is renewed once.
The base URL is a setting so tests point it at a fake server on 127.0.0.1.

Metadata read by the roles:
- `meta-data/instance-id`, `meta-data/local-ipv4`
- `meta-data/tags/instance/aws:autoscaling:groupName` (only when instance metadata tags are on;
  otherwise the caller asks Auto Scaling with the instance id)
- `meta-data/autoscaling/target-lifecycle-state`: "Terminated" once a scale-in picked this
  instance, which is AWS's recommended way for software on the instance to notice termination.
- `meta-data/spot/instance-action`: present once a spot interruption is scheduled.

It lives beside the roles rather than in any of them: serving's agent and training's
termination watcher both read it, and neither may import the other.
"""

from __future__ import annotations

import urllib.error
import urllib.request

TOKEN_TTL_S = 21600


class InstanceMetadata:
    def __init__(self, url: str = "http://169.254.169.254", timeout_s: float = 2.0):
        self.url = url.rstrip("/")
        self.timeout_s = timeout_s
        self._token: str | None = None

    def _fetch_token(self) -> str:
        req = urllib.request.Request(f"{self.url}/latest/api/token", method="PUT",
                                     headers={"X-aws-ec2-metadata-token-ttl-seconds": str(TOKEN_TTL_S)})
        with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
            return resp.read().decode().strip()

    def get(self, path: str) -> str | None:
        """The text at `latest/<path>`, or None when it does not exist (404)."""
        for attempt in (0, 1):
            if self._token is None:
                self._token = self._fetch_token()
            req = urllib.request.Request(f"{self.url}/latest/{path}", headers={"X-aws-ec2-metadata-token": self._token})
            try:
                with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                    return resp.read().decode().strip()
            except urllib.error.HTTPError as e:
                if e.code == 404:
                    return None
                if e.code == 401 and attempt == 0:
                    self._token = None
                    continue
                raise
        return None

    def instance_id(self) -> str:
        value = self.get("meta-data/instance-id")
        if not value:
            raise RuntimeError(f"instance metadata at {self.url} has no instance-id")
        return value

    def group_name(self) -> str | None:
        return self.get("meta-data/tags/instance/aws:autoscaling:groupName")

    def target_lifecycle_state(self) -> str | None:
        return self.get("meta-data/autoscaling/target-lifecycle-state")
