"""Model artifacts: the directory training writes and serving loads.

Layout (format version 1)::

    <dir>/model.json   {"format_version": 1, "kind": "logreg" | "kmeans" | "mlp",
                        "n_features": F, "classes": [...] (logreg, mlp), "k": K (kmeans),
                        "hidden": [H1, ...] (mlp), "standardization": {"mean": [...], "std": [...]} | null}
    <dir>/weights.pt   torch.save(module.state_dict()), loaded with weights_only=True

`weights_only=True` is the contract that makes loading an artifact from a bucket safe: the file
can only hold tensors, never code. An artifact can live on local disk or under an S3 or GCS prefix
(`s3://bucket/prefix`, `gs://bucket/prefix`); it is read through runtime.store, so the endpoint
follows that module's rules (S3: `GPUFLEET_S3_ENDPOINT`, `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL`,
else AWS; GCS: `GPUFLEET_GCS_ENDPOINT`, `STORAGE_EMULATOR_HOST`, else Google) and an emulator
works the same way as the cloud.

Anything wrong with an artifact (missing, unreadable, inconsistent) is the user's input and
raises `BadInput` naming the artifact and what is wrong, so a server fails at startup with a
clear message instead of serving garbage.
"""

from __future__ import annotations

import io
import json
import math
import os
from pathlib import Path

import numpy as np
import torch

from runtime import store
from runtime.errors import BadInput
from runtime.model.modules import KINDS, build_module

FORMAT_VERSION = 1
META_FILE = "model.json"
WEIGHTS_FILE = "weights.pt"


class Predictor:
    """A loaded model ready to serve: `predict(rows) -> list`, one prediction per row.

    Predictions are class labels (from model.json `classes`) for logreg and mlp, and the index
    of the nearest centroid for kmeans. `predict` runs under `torch.inference_mode()` and takes
    a float32 `[n, n_features]` array; validating request data is the caller's job.
    """

    def __init__(self, module: torch.nn.Module, meta: dict):
        self.module = module.eval()
        self.meta = meta
        self.kind: str = meta["kind"]
        self.n_features: int = int(meta["n_features"])
        classes = meta.get("classes")
        # Labels equal to their index need no mapping: skip the per-row lookup.
        self._labels = None if classes is None or list(classes) == list(range(len(classes))) else list(classes)
        self._decide = module.decide

    def predict(self, rows: np.ndarray) -> list:
        x = torch.from_numpy(np.ascontiguousarray(rows, dtype=np.float32))
        with torch.inference_mode():
            idx = self._decide(self.module(x)).tolist()
        if self._labels is None:
            return idx
        labels = self._labels
        return [labels[i] for i in idx]


def save_artifact(directory, kind: str, module: torch.nn.Module, meta: dict) -> Path:
    """Write `module` (one of runtime.model.modules) and its description to `directory`.

    `meta` carries `n_features` and, by kind, `classes` (logreg, mlp), `k` (kmeans), `hidden`
    (mlp). The standardization mean/std are read from the module's buffers and recorded in
    model.json when they are not the identity. Returns the directory.
    """
    if kind not in KINDS:
        raise BadInput(f"kind: unknown model kind (got {kind!r}; allowed {sorted(KINDS)})")
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    doc = {"format_version": FORMAT_VERSION, "kind": kind, "n_features": int(meta["n_features"])}
    if kind in ("logreg", "mlp"):
        doc["classes"] = list(meta["classes"])
    if kind == "kmeans":
        doc["k"] = int(meta["k"])
    if kind == "mlp":
        doc["hidden"] = [int(h) for h in meta["hidden"]]
    std = getattr(module, "standardize", None)
    if std is not None and not (torch.all(std.mean == 0) and torch.all(std.std == 1)):
        doc["standardization"] = {"mean": std.mean.tolist(), "std": std.std.tolist()}
    else:
        doc["standardization"] = None
    for key, value in meta.items():  # extra provenance (dataset, epochs, metrics) is kept as-is
        doc.setdefault(key, value)
    torch.save(module.state_dict(), out / WEIGHTS_FILE)
    (out / META_FILE).write_text(json.dumps(doc, indent=2) + "\n")
    return out


def load_artifact(location) -> Predictor:
    """Load the artifact at a local directory, `s3://bucket/prefix` or `gs://bucket/prefix`; raise BadInput if unusable."""
    where = str(location)
    meta_bytes, weight_bytes = _read(where)
    try:
        meta = json.loads(meta_bytes)
    except (ValueError, UnicodeDecodeError) as e:
        raise BadInput(f"model {where}: {META_FILE} is not valid JSON ({e})") from None
    meta = _check_meta(where, meta)
    try:
        state = torch.load(io.BytesIO(weight_bytes), map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for a truncated or foreign file
        raise BadInput(f"model {where}: {WEIGHTS_FILE} is not a readable torch state_dict ({type(e).__name__}: {e})") from None
    if not isinstance(state, dict):
        raise BadInput(f"model {where}: {WEIGHTS_FILE} holds a {type(state).__name__}, expected a state_dict")
    module = build_module(meta)
    _fill_standardization(module, meta, state)
    try:
        module.load_state_dict(state, strict=True)
    except RuntimeError as e:
        first = str(e).strip().splitlines()
        raise BadInput(
            f"model {where}: {WEIGHTS_FILE} does not match {META_FILE} ({meta['kind']}, "
            f"{meta['n_features']} features): {' '.join(s.strip() for s in first[:3])}"
        ) from None
    if not all(torch.isfinite(t).all() for t in module.state_dict().values()):
        raise BadInput(f"model {where}: {WEIGHTS_FILE} contains NaN or infinite weights")
    return Predictor(module, meta)


def _read(where: str) -> tuple[bytes, bytes]:
    """model.json and weights.pt of the artifact at `where` (local, S3 or GCS), or BadInput."""
    try:
        root = store.parse(where)
    except BadInput as e:
        raise BadInput(f"model {e}") from None
    if not root.is_remote and not os.path.isdir(root.key):
        raise BadInput(f"model {where}: no such artifact directory (expected a directory with {META_FILE} and {WEIGHTS_FILE})")
    out = []
    for name in (META_FILE, WEIGHTS_FILE):
        loc = root.join(name)
        try:
            out.append(store.get_bytes(loc))
        except store.StoreError as e:
            if e.code is None:
                raise BadInput(f"model {where}: cannot reach {store.REMOTE_SCHEMES[root.scheme]} for {loc} ({e.detail})") from None
            raise BadInput(f"model {where}: cannot read {loc} ({e.code})") from None
        except OSError as e:
            raise BadInput(f"model {where}: cannot read {name} ({e.strerror})") from None
    return out[0], out[1]


def _check_meta(where: str, meta) -> dict:
    """Collect every problem in model.json at once, each naming the field."""
    if not isinstance(meta, dict):
        raise BadInput(f"model {where}: {META_FILE} must be a JSON object")
    problems = []
    version = meta.get("format_version")
    if version != FORMAT_VERSION:
        problems.append(f"model {where}: {META_FILE} format_version: unsupported (got {version!r}; allowed {FORMAT_VERSION})")
    kind = meta.get("kind")
    if kind not in KINDS:
        problems.append(f"model {where}: {META_FILE} kind: unknown (got {kind!r}; allowed {sorted(KINDS)})")
    n = meta.get("n_features")
    if not (isinstance(n, int) and not isinstance(n, bool) and n > 0):
        problems.append(f"model {where}: {META_FILE} n_features: must be a positive integer (got {n!r})")
    if kind in ("logreg", "mlp"):
        classes = meta.get("classes")
        if not (isinstance(classes, list) and len(classes) >= 2):
            problems.append(f"model {where}: {META_FILE} classes: must list at least 2 labels (got {classes!r})")
    if kind == "kmeans":
        k = meta.get("k")
        if not (isinstance(k, int) and not isinstance(k, bool) and k > 0):
            problems.append(f"model {where}: {META_FILE} k: must be a positive integer (got {k!r})")
    if kind == "mlp":
        hidden = meta.get("hidden")
        if not (isinstance(hidden, list) and hidden and all(isinstance(h, int) and h > 0 for h in hidden)):
            problems.append(f"model {where}: {META_FILE} hidden: must list positive layer widths (got {hidden!r})")
    st = meta.get("standardization")
    if st is not None and isinstance(n, int):
        ok = isinstance(st, dict) and all(
            isinstance(st.get(f), list) and len(st[f]) == n and all(isinstance(v, (int, float)) and math.isfinite(v) for v in st[f])
            for f in ("mean", "std")
        )
        if not ok or any(v == 0 for v in st["std"]):
            problems.append(f"model {where}: {META_FILE} standardization: needs mean and std lists of {n} finite numbers, std non-zero")
    if problems:
        raise BadInput(problems)
    return meta


def _fill_standardization(module, meta: dict, state: dict) -> None:
    """A state_dict written without the standardization buffers takes them from model.json."""
    st = meta.get("standardization")
    for field in ("mean", "std"):
        key = f"standardize.{field}"
        if key not in state:
            if st is not None:
                state[key] = torch.tensor(st[field], dtype=torch.float32)
            else:
                state[key] = getattr(module.standardize, field).clone()
