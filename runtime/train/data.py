"""Training data: a partitioned dataset, the held-out split, features, and each rank's steps.

Source. `prepare_source` runs once, before any rank starts: a dataset written by
`gpufleet data partition` is used as is; a single CSV/Parquet file is partitioned into
`<out>/dataset/` (hash of the row number, one partition per rank at least), so ranks always
read the same kind of thing and the sharding is the elastic deterministic one of runtime.data.

The held-out split is a pure function of (number of samples, fraction, seed): sample `i` is
held out when a keyed bijection of [0, N) maps it below round(F * N). The count is exact and
the split does not depend on the world size, so a run resumed on another number of ranks keeps
its split.

Steps. `Steps` walks the sampler's global order in lockstep (runtime.data.sharding): at a step
starting at global position `pos`, every rank computes the whole step's sample ids (no I/O,
no communication), keeps its own share, and drops held-out ids. Every rank therefore knows the
step's global training-sample count, which is what gradients are divided by: unequal shares
and unequal partitions give the same update as one process. A rank whose share is empty still
takes the step with an empty batch, so DDP's collectives stay matched.

Rows are served from memory (`read_arrays` once per rank, then indexed) when the feature
matrix is small (`in_memory_limit_bytes`); otherwise each step's rows are read from the
dataset's files through the sampler, only this rank's rows.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np

from runtime.data import Dataset, ShardedSampler, load_manifest, write_partitioned
from runtime.data.sharding import _bits, permute, to_numpy
from runtime.errors import BadInput
from runtime import store
from runtime.store import write_json

SPLIT_KEY = 0x5EED5EED
IN_MEMORY_LIMIT = 2 << 30


def _exists(path):
    if store.parse(path).is_remote:
        return True  # checked when read: a remote listing needs credentials and an endpoint
    return os.path.exists(path)


def prepare_source(data, out, min_partitions=1, endpoint=None):
    """A partitioned-dataset location for `data` (a dataset, or a CSV/Parquet file)."""
    if not _exists(data):
        raise BadInput(f"--data: {data} does not exist")
    if store.parse(data).is_remote or os.path.isdir(data):
        try:
            load_manifest(data, endpoint)
        except BadInput:
            raise
        except Exception as e:  # noqa: BLE001 - any unreadable manifest is the user's input
            raise BadInput(f"--data: {data} is not a dataset written by `gpufleet data partition` ({e})") from None
        return str(data)
    if not str(data).lower().endswith((".csv", ".parquet", ".pq")):
        raise BadInput(f"--data: {data} is neither a partitioned dataset directory nor a .csv/.parquet file")
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    try:
        table = pacsv.read_csv(data) if str(data).lower().endswith(".csv") else pq.read_table(data)
    except (pa.ArrowInvalid, OSError) as e:
        raise BadInput(f"--data: cannot read {data} ({e})") from None
    target = os.path.join(out, "dataset")
    st = os.stat(data)
    source = {"path": os.path.abspath(data), "bytes": st.st_size, "mtime_ns": st.st_mtime_ns}
    marker = os.path.join(out, "dataset.source.json")
    if os.path.isdir(target):  # reuse the copy a previous (or interrupted) run of the same file made
        try:
            same = json.load(open(marker)) == source
            m = load_manifest(target)
        except (OSError, ValueError, BadInput):
            same = False
        if same and m["total_rows"] == table.num_rows and len(m["partitions"]) >= min_partitions:
            return target
        import shutil
        shutil.rmtree(target)
    table = table.append_column("_row", pa.array(np.arange(table.num_rows, dtype=np.int64)))
    os.makedirs(out, exist_ok=True)
    write_partitioned(table, target, "hash", "_row", num_partitions=max(2, min_partitions))
    write_json(marker, source)
    return target


def split_mask(num_samples, fraction, seed):
    """Boolean mask of held-out samples: exactly round(fraction * N) of them.

    Indexed by sample id; for a CSV/Parquet file (partitioned by `prepare_source`) by the
    file's row number, so `split_mask(N, F, seed)` applied to the file's rows is the split."""
    n_test = int(round(fraction * num_samples))
    ids = np.arange(num_samples, dtype=np.uint64)
    if num_samples == 0:
        return np.zeros(0, bool)
    p = permute(ids, num_samples, SPLIT_KEY, _bits(num_samples), np.uint64(seed & (2**64 - 1)))
    return p.astype(np.int64) < n_test


@dataclass
class Table:
    """Features and labels of a whole dataset, in sample-id order (the in-memory path)."""
    x: np.ndarray            # [N, F]
    y: np.ndarray | None     # [N] class indices (classifiers) or None (k-means)
    classes: list | None
    feature_names: list


def describe(uri, label, features=None, endpoint=None, need_label=True):
    """(manifest, feature column names) after checking the label and feature columns exist."""
    m = load_manifest(uri, endpoint)
    ds = Dataset(uri, endpoint, manifest=m)
    schema = ds.schema
    import pyarrow.types as pt
    names = schema.names
    if need_label and label not in names:
        raise BadInput(f"--label: the dataset has no column {label!r} (columns: {', '.join(n for n in names if n != '_row')})")
    if features:
        missing = [f for f in features if f not in names]
        if missing:
            raise BadInput(f"--features: the dataset has no column(s) {', '.join(missing)}")
        return m, list(features)
    key = set(m.get("key") or [])  # partition keys are usually ids: features only when named in --features
    feats = [f.name for f in schema if f.name not in (label, "_row") and f.name not in key
             and (pt.is_integer(f.type) or pt.is_floating(f.type) or pt.is_boolean(f.type))]
    if not feats:
        raise BadInput(f"--data: the dataset has no numeric feature columns besides {label!r}")
    return m, feats


def load_table(uri, label, features, dtype=np.float32, endpoint=None):
    cols = list(features) + ([label] if label else [])
    arrays = Dataset(uri, endpoint).read_table(columns=cols)
    arr = {n: arrays.column(n).to_numpy(zero_copy_only=False) for n in cols}
    x = np.stack([np.asarray(arr[f], dtype=dtype) for f in features], axis=1) if features else np.zeros((0, 0))
    y, classes = None, None
    if label:
        classes_arr, y = np.unique(arr[label], return_inverse=True)
        classes = [c.item() if hasattr(c, "item") else c for c in classes_arr]
        y = y.astype(np.int64)
    return Table(np.ascontiguousarray(x), y, classes, list(features))


def block_size_for(num_samples, default=1 << 16):
    """The sampler's block size: the default, or the next power of two for a smaller dataset
    (the in-block shuffle walks cycles over the block's power-of-two domain)."""
    return int(min(default, 1 << max(1, int(num_samples - 1).bit_length())))


class Steps:
    """This rank's batches of one epoch, in lockstep with the other ranks (see the module doc).

    Yields (x, y, global_count): this rank's training rows of the step and the number of
    training rows all ranks together have in it. `sampler.cursor()` after a step is where a
    resumed run continues.
    """

    def __init__(self, uri, table, test_mask, sampler: ShardedSampler, label=None, features=None, dtype=np.float32):
        self.uri, self.table, self.test_mask, self.sampler = uri, table, test_mask, sampler
        self.label, self.features, self.dtype = label, features, dtype
        self.classes_index = None
        if table is None:
            self._files = sampler.dataset.files()
            self._starts = np.concatenate([[0], np.cumsum([rows for _, rows, _ in self._files])])

    def _rows(self, ids):
        if self.table is not None:
            return self.table.x[ids], (self.table.y[ids] if self.table.y is not None else None)
        if len(ids) == 0:
            return np.zeros((0, len(self.features)), self.dtype), (np.zeros(0, np.int64) if self.label else None)
        # ShardedSampler's row reader (runtime.data has no public "rows for these ids" call yet)
        batch = to_numpy(self.sampler._read(ids, self._files, self._starts))
        x = np.stack([np.asarray(batch[f], dtype=self.dtype) for f in self.features], axis=1)
        y = None
        if self.label:
            y = np.searchsorted(self.classes_index, batch[self.label]).astype(np.int64)
        return x, y

    def remaining(self):
        s = self.sampler
        w, b = s.world_size, s.batch_size
        left = s.num_samples - s.position
        return -(-left // (w * b)) if not s.drop_last else left // (w * b)

    def __iter__(self):
        s = self.sampler
        order = s.order()
        # The whole epoch's order at once: one vectorized pass instead of one per step.
        key = (s.epoch, s.num_samples)
        if getattr(s, "_epoch_ids_key", None) != key:
            s._epoch_ids, s._epoch_ids_key = order.samples(0, s.num_samples), key
        epoch_ids = s._epoch_ids
        while s.position < s.num_samples:
            pos = s.position
            lo, hi, nxt = s.share(pos)
            if hi <= lo and nxt == pos:
                break
            ids_all = epoch_ids[pos:nxt]
            keep_all = ~self.test_mask[ids_all]
            count = int(keep_all.sum())
            mine = ids_all[lo - pos:hi - pos]
            mine = mine[~self.test_mask[mine]]
            s.position = nxt
            x, y = self._rows(mine)
            yield x, y, count


@dataclass
class RunData:
    """What a run knows about its dataset before its first step (the same on every rank).

    `table` is the whole dataset in memory when it fits `in_memory_limit_bytes`, else None
    (rows are then read per step); `test` is the held-out mask indexed by sample id.
    """
    manifest: dict
    features: list
    num_samples: int
    table: Table | None
    classes: list | None
    test: np.ndarray
    dtype: type

    @property
    def num_train(self) -> int:
        return int((~self.test).sum())


def load_run_data(cfg, need_label) -> RunData:
    """Describe cfg's dataset, load it when small enough, and compute the held-out split."""
    dtype = np.float64 if cfg.dtype == "float64" else np.float32
    label = cfg.label if need_label else None
    manifest, feats = describe(cfg.data, label, cfg.features, cfg.endpoint, need_label)
    n = int(manifest["total_rows"])
    small = n * (len(feats) + 1) * np.dtype(dtype).itemsize <= cfg.in_memory_limit_bytes
    table = load_table(cfg.data, label, feats, dtype, cfg.endpoint) if small else None
    classes = table.classes if table is not None else None
    if classes is None and need_label:
        col = Dataset(cfg.data, cfg.endpoint).read_table(columns=[cfg.label]).column(cfg.label).to_numpy(zero_copy_only=False)
        classes = [c.item() if hasattr(c, "item") else c for c in np.unique(col)]
    test = split_mask(n, cfg.test_fraction, cfg.seed)
    ds = Dataset(cfg.data, cfg.endpoint, manifest=manifest)
    if "_row" in ds.schema.names:  # a file partitioned by prepare_source: split by the file's row number
        rows = ds.read_table(columns=["_row"]).column("_row").to_numpy()
        test = test[rows]
    return RunData(manifest, feats, n, table, classes, test, dtype)


def standardization(table, test):
    """Population mean/std (float64) of the training rows (std 0 -> 1), as scikit-learn's StandardScaler."""
    x = table.x[~test].astype(np.float64)
    mean, std = x.mean(0), x.std(0)
    std[std == 0] = 1.0
    return mean, std
