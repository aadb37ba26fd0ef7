"""The runtime's one object-store module: locations, the S3 client, get/put/list, atomic writes.

(Being filled in: see the restructuring issue. `write_json` is the one atomic JSON writer.)
"""

from __future__ import annotations

import json
import os


def write_json(path, doc, indent: int | None = 2) -> None:
    """Write `doc` as JSON to the local file `path` whole or not at all (a temporary file renamed over it)."""
    path = os.fspath(path)
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=indent)
    os.replace(tmp, path)
