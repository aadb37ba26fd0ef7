"""The local backend of runtime.store, and its atomic writes.

A write goes to a temporary file in the same directory and is renamed over the target, so a
reader sees the old file or the new one, never a part. Operations raise the OSError the
filesystem gives.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import uuid

from runtime.store.location import Location


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


def make_parent(path: str) -> None:
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)


def get_bytes(loc: Location, endpoint=None) -> bytes:
    with open(loc.key, "rb") as f:
        return f.read()


def put_bytes(loc: Location, data: bytes, endpoint=None) -> None:
    make_parent(loc.key)
    with open_atomic(loc.key, "wb", fsync=True) as f:
        f.write(data)


def get_file(loc: Location, dest: str, endpoint=None) -> None:
    with open(loc.key, "rb") as src, open_atomic(dest, "wb") as f:
        shutil.copyfileobj(src, f)


def put_file(src: str, loc: Location, endpoint=None) -> None:
    make_parent(loc.key)
    with open(src, "rb") as fsrc, open_atomic(loc.key, "wb", fsync=True) as f:
        shutil.copyfileobj(fsrc, f)


def exists(loc: Location, endpoint=None) -> bool:
    return os.path.isfile(loc.key)


def list_keys(loc: Location, endpoint=None) -> list[str]:
    root = loc.key
    return sorted(os.path.relpath(os.path.join(d, n), root).replace(os.sep, "/")
                  for d, _, names in os.walk(root) for n in names)


def delete(loc: Location, endpoint=None) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.remove(loc.key)


def remove_tree(loc: Location) -> None:
    """Remove the directory `loc` with whatever is left in it (empty directories, after delete_tree)."""
    shutil.rmtree(loc.key, ignore_errors=True)


def arrow_filesystem(loc: Location, endpoint=None):
    import pyarrow.fs as pafs

    return pafs.LocalFileSystem(), loc.path
