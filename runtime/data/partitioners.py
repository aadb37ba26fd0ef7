"""Partitioners: which partition each row of a table belongs to, and which partitions a
predicate can touch.

Three strategies, each a pure function of the key column values (never of row order or of the
process), so a reader can recompute a value's partition from the manifest alone:

- `hash`: partition = stable 64-bit hash of the key (runtime.data.hashing) mod N. Spreads any
  key evenly; equality on a single key column prunes to one partition.
- `range`: N-1 ascending split points s_0 < ... < s_{N-2}; partition p holds keys k with
  s_{p-1} <= k < s_p (lexicographic for composite keys). Split points are given, or computed
  from a sample as quantiles so partitions hold the same number of rows (within 10% for keys
  with few repeats). A range predicate on the first key column prunes to overlapping partitions.
- `key`: an explicit mapping from key values to partitions; unmapped keys go to the default
  partition. Equality on a single key column prunes to one partition.

Null keys (any key column null) go to the *null partition*, whose id is N (one past the last
regular partition) for every strategy: no equality or range predicate matches a null, so
queries skip it, and it never unbalances the regular partitions.
"""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from runtime.data.hashing import key_hash
from runtime.errors import BadInput

STRATEGIES = ("hash", "range", "key")
SAMPLE_ROWS = 200_000  # rows kept to place range split points; exact below this size


def _columns(table, key):
    return [table.column(c) for c in key]


def cast_value(value, typ, what):
    """A user-given value (str/number/None) as a Python value of pyarrow type `typ`."""
    if value is None:
        return None
    try:
        arr = pa.array([value])
        if arr.type != typ:
            arr = arr.cast(typ)
        return arr[0].as_py()
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, ValueError, OverflowError) as e:
        raise BadInput(f"{what}: {value!r} is not a valid {typ} ({e})") from None


def _jsonable(v):
    return v if isinstance(v, (int, float, str, bool)) or v is None else str(v)


class Partitioner:
    """Common interface. `assign(table)` -> int32 partition id per row (null keys -> N)."""

    strategy = ""

    def __init__(self, key, num_partitions, types):
        self.key = list(key)
        self.num_partitions = int(num_partitions)
        self.types = list(types)

    @property
    def null_partition(self):
        return self.num_partitions

    def _null_fill(self, parts, valid):
        if not valid.all():
            parts[~valid] = self.num_partitions
        return parts

    def to_manifest(self):
        return {"strategy": self.strategy, "key": self.key, "num_partitions": self.num_partitions}

    def partitions_for_equal(self, column, value):
        """Partition ids that can hold rows with `column == value`, or None for all."""
        return None

    def partitions_for_range(self, column, lo, hi):
        """Partition ids that can hold rows with lo <= column <= hi, or None for all."""
        return None


class HashPartitioner(Partitioner):
    strategy = "hash"

    def assign(self, table):
        h, valid = key_hash(_columns(table, self.key))
        parts = (h % np.uint64(self.num_partitions)).astype(np.int32)
        return self._null_fill(parts, valid)

    def partitions_for_equal(self, column, value):
        if self.key != [column] or value is None:
            return None
        t = pa.table({column: pa.array([value], type=self.types[0])})
        return [int(self.assign(t)[0])]


class RangePartitioner(Partitioner):
    strategy = "range"

    def __init__(self, key, split_points, types):
        super().__init__(key, len(split_points) + 1, types)
        self.split_points = [tuple(p) for p in split_points]
        problems = []
        for a, b in zip(self.split_points, self.split_points[1:]):
            if not a < b:
                problems.append(
                    f"--split-points: must be strictly ascending without duplicates "
                    f"(got {_show(a)} before {_show(b)})")
        if problems:
            raise BadInput(problems)

    def assign(self, table):
        cols = _columns(table, self.key)
        n = table.num_rows
        valid = np.ones(n, bool)
        for c in cols:
            if c.null_count:
                valid &= pc.is_valid(c).to_numpy(zero_copy_only=False)
        if not self.split_points:
            return self._null_fill(np.zeros(n, np.int32), valid)
        if len(cols) == 1:
            col = cols[0]
            sp = pa.array([p[0] for p in self.split_points], type=self.types[0])
            if pa.types.is_integer(col.type) or pa.types.is_floating(col.type) or pa.types.is_temporal(col.type):
                vals = pc.fill_null(col, sp[0]).to_numpy(zero_copy_only=False)
                parts = np.searchsorted(sp.to_numpy(zero_copy_only=False), vals, side="right")
                return self._null_fill(parts.astype(np.int32), valid)
        # Generic path: count split points <= row key, lexicographically, with pyarrow compute.
        parts = np.zeros(n, np.int32)
        for point in self.split_points:
            ge = None
            for c, v, t in reversed(list(zip(cols, point, self.types))):
                s = pa.scalar(v, type=t)
                here = pc.greater_equal(c, s) if ge is None else pc.or_(pc.greater(c, s), pc.and_(pc.equal(c, s), ge))
                ge = here
            parts += pc.fill_null(ge, False).to_numpy(zero_copy_only=False).astype(np.int32)
        return self._null_fill(parts, valid)

    def to_manifest(self):
        m = super().to_manifest()
        m["split_points"] = [[_jsonable(v) for v in p] for p in self.split_points]
        return m

    def partitions_for_equal(self, column, value):
        return self.partitions_for_range(column, value, value)

    def partitions_for_range(self, column, lo, hi):
        if not self.key or column != self.key[0] or lo is None or hi is None:
            return None
        single = len(self.key) == 1
        out = []
        for p in range(self.num_partitions):
            lower = self.split_points[p - 1][0] if p > 0 else None
            upper = self.split_points[p][0] if p < self.num_partitions - 1 else None
            # With a composite key, rows whose first column equals upper[0] can still sit in p.
            if (lower is None or lower <= hi) and (upper is None or (upper > lo if single else upper >= lo)):
                out.append(p)
        return out


class KeyPartitioner(Partitioner):
    strategy = "key"

    def __init__(self, key, mapping, default, num_partitions, types):
        super().__init__(key, num_partitions, types)
        self.mapping = {tuple(k): int(p) for k, p in mapping}
        self.default = int(default)
        problems = []
        for k, p in list(self.mapping.items()) + [(("<default>",), self.default)]:
            if not 0 <= p < self.num_partitions:
                problems.append(
                    f"--mapping: key {_show(k)} names partition {p}, which does not exist "
                    f"(allowed 0..{self.num_partitions - 1} with --partitions {self.num_partitions})")
        if problems:
            raise BadInput(problems)
        keys = list(self.mapping)
        if keys:
            cols = [pa.array([k[i] for k in keys], type=t) for i, t in enumerate(self.types)]
            self._hashes = pa.array(key_hash(cols)[0])
            self._parts = np.array([self.mapping[k] for k in keys], np.int32)
        else:
            self._hashes, self._parts = pa.array([], pa.uint64()), np.zeros(0, np.int32)

    def assign(self, table):
        h, valid = key_hash(_columns(table, self.key))
        idx = pc.index_in(pa.array(h), value_set=self._hashes)
        found = idx.is_valid().to_numpy(zero_copy_only=False)
        pos = pc.fill_null(idx, 0).to_numpy(zero_copy_only=False)
        parts = np.where(found, self._parts[pos] if len(self._parts) else 0, self.default).astype(np.int32)
        return self._null_fill(parts, valid)

    def to_manifest(self):
        m = super().to_manifest()
        m["mapping"] = [{"key": [_jsonable(v) for v in k], "partition": p} for k, p in self.mapping.items()]
        m["default_partition"] = self.default
        return m

    def partitions_for_equal(self, column, value):
        if self.key != [column] or value is None:
            return None
        return [self.mapping.get((value,), self.default)]


def _show(point):
    return ",".join(str(v) for v in point) if isinstance(point, tuple) else str(point)


def split_points_from_sample(key_table, num_partitions, types):
    """N-1 split points at the row-count quantiles of the key columns (sampled when large).

    Repeated key values can make quantiles coincide; duplicates are dropped, so a key with
    fewer distinct values than N yields fewer partitions rather than empty ones.
    """
    n = key_table.num_rows
    valid = np.ones(n, bool)
    for c in key_table.columns:
        valid &= pc.is_valid(c).to_numpy(zero_copy_only=False)
    idx = np.flatnonzero(valid)
    if len(idx) > SAMPLE_ROWS:
        idx = np.sort(np.random.default_rng(0).choice(idx, SAMPLE_ROWS, replace=False))
    sample = key_table.take(pa.array(idx))
    if sample.num_rows == 0 or num_partitions <= 1:
        return []
    order = pc.sort_indices(sample, sort_keys=[(c, "ascending") for c in sample.column_names])
    sample = sample.take(order)
    m = sample.num_rows
    points = []
    for i in range(1, num_partitions):
        row = sample.slice(min(m - 1, round(i * m / num_partitions)), 1).to_pylist()[0]
        point = tuple(row[c] for c in sample.column_names)
        if not points or point > points[-1]:
            points.append(point)
    first = sample.slice(0, 1).to_pylist()[0]
    if points and points[0] == tuple(first[c] for c in sample.column_names):
        points = points[1:]  # a first split point equal to the minimum would leave partition 0 empty
    return points


def parse_split_points(text, types):
    """`--split-points "10,20,30"`; composite key components joined by '|': "a|1,b|2"."""
    points = []
    for raw in [p for p in text.split(",") if p.strip() != ""]:
        parts = [s.strip() for s in raw.split("|")]
        if len(parts) != len(types):
            raise BadInput(f"--split-points: {raw!r} has {len(parts)} component(s); the key has {len(types)} "
                           f"(join composite components with '|')")
        points.append(tuple(cast_value(_literal(s), t, "--split-points") for s, t in zip(parts, types)))
    return points


def _literal(s):
    if len(s) >= 2 and s[0] == s[-1] and s[0] in "'\"":
        return s[1:-1]
    for conv in (int, float):
        try:
            return conv(s)
        except ValueError:
            pass
    return s


def load_mapping(path, types):
    """Read a mapping file: {"mapping": {"us": 0, ...} or [{"key": [...], "partition": p}], "default": p}.

    For a composite key in the object form, components are joined by '|'. Values are cast to the
    key columns' types. Returns (pairs, default or None).
    """
    try:
        with open(path) as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise BadInput(f"--mapping: cannot read {path} as JSON ({e})") from None
    if not isinstance(doc, dict) or "mapping" not in doc:
        raise BadInput(f"--mapping: {path} must be a JSON object with a \"mapping\" field (and optional \"default\")")
    raw = doc["mapping"]
    items = []
    if isinstance(raw, dict):
        for k, p in raw.items():
            items.append((k.split("|") if len(types) > 1 else [k], p))
    elif isinstance(raw, list):
        for e in raw:
            if not isinstance(e, dict) or "key" not in e or "partition" not in e:
                raise BadInput(f"--mapping: entries of {path} must look like {{\"key\": [...], \"partition\": N}} (got {e!r})")
            items.append((e["key"] if isinstance(e["key"], list) else [e["key"]], e["partition"]))
    else:
        raise BadInput(f"--mapping: \"mapping\" in {path} must be an object or a list")
    pairs, seen = [], {}
    for comps, p in items:
        if len(comps) != len(types):
            raise BadInput(f"--mapping: key {comps!r} has {len(comps)} component(s); the key has {len(types)}")
        if not isinstance(p, int) or isinstance(p, bool):
            raise BadInput(f"--mapping: partition for key {comps!r} must be an integer (got {p!r})")
        k = tuple(cast_value(v, t, "--mapping") for v, t in zip(comps, types))
        if k in seen and seen[k] != p:
            raise BadInput(f"--mapping: key {_show(k)} is mapped to both {seen[k]} and {p}")
        seen[k] = p
        pairs.append((k, p))
    default = doc.get("default")
    if default is not None and (not isinstance(default, int) or isinstance(default, bool)):
        raise BadInput(f"--mapping: \"default\" in {path} must be an integer partition (got {default!r})")
    return pairs, default


def from_manifest(m, schema):
    """Rebuild the partitioner a manifest describes (the reader's side)."""
    types = [schema.field(c).type for c in m["key"]]
    if m["strategy"] == "hash":
        return HashPartitioner(m["key"], m["num_partitions"], types)
    if m["strategy"] == "range":
        points = [tuple(cast_value(v, t, "manifest split_points") for v, t in zip(p, types)) for p in m["split_points"]]
        return RangePartitioner(m["key"], points, types)
    if m["strategy"] == "key":
        pairs = [(tuple(cast_value(v, t, "manifest mapping") for v, t in zip(e["key"], types)), e["partition"])
                 for e in m["mapping"]]
        return KeyPartitioner(m["key"], pairs, m["default_partition"], m["num_partitions"], types)
    raise BadInput(f"manifest: unknown strategy {m['strategy']!r}")
