"""Partition-aware queries: read only the partitions a predicate can match.

Two predicate forms (the CLI's `--where`):

- `COL = V`: on the single key column of a `hash` or `key` dataset, exactly one partition is
  read (the one the partitioner puts V in); on the first key column of a `range` dataset, the
  partitions whose key range contains V.
- `COL BETWEEN A AND B` (inclusive): on the first key column of a `range` dataset, the
  partitions whose ranges overlap [A, B].

Anything else scans every partition. Pruning never changes the answer: a skipped partition
cannot hold a matching row (null keys live in the null partition, and no predicate matches a
null). Literals are 'quoted' or "quoted" strings, integers, or floats, cast to the column's type.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pyarrow as pa
import pyarrow.dataset as ds

from runtime.data.partitioners import _literal, cast_value
from runtime.data.storage import _ARROW_ERRORS, Dataset
from runtime.errors import BadInput

_IDENT = r'(?P<col>[A-Za-z_][\w.]*|"[^"]+"|`[^`]+`)'
_VAL = r"""('(?:[^']*)'|"(?:[^"]*)"|\S+)"""
_EQ = re.compile(rf"^\s*{_IDENT}\s*==?\s*(?P<v>{_VAL})\s*$")
_BETWEEN = re.compile(rf"^\s*{_IDENT}\s+between\s+(?P<a>{_VAL})\s+and\s+(?P<b>{_VAL})\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Predicate:
    column: str
    lo: object  # a Python value already cast to the column's type
    hi: object

    @property
    def is_equal(self):
        return self.lo == self.hi


@dataclass
class QueryResult:
    """Rows matched, and what reading them cost."""

    table: pa.Table
    partitions_scanned: list
    partitions_total: int
    bytes_scanned: int
    bytes_total: int

    @property
    def rows(self):
        return self.table.num_rows


def parse_where(text, schema, what="--where"):
    """Parse and type-check a predicate against the dataset's schema."""
    m = _EQ.match(text)
    b = None if m else _BETWEEN.match(text)
    if not m and not b:
        raise BadInput(f'{what}: cannot parse {text!r} (use "COL = V" or "COL BETWEEN A AND B")')
    col = (m or b).group("col").strip('"`')
    if col not in schema.names:
        raise BadInput(f"{what}: column {col!r} does not exist (columns: {', '.join(schema.names)})")
    typ = schema.field(col).type
    if m:
        v = cast_value(_literal(m.group("v")), typ, what)
        return Predicate(col, v, v)
    lo = cast_value(_literal(b.group("a")), typ, what)
    hi = cast_value(_literal(b.group("b")), typ, what)
    return Predicate(col, lo, hi)


def plan(dataset, pred):
    """Partition ids to read for `pred`, or None for all of them."""
    p = dataset.partitioner
    if pred.is_equal:
        return p.partitions_for_equal(pred.column, pred.lo)
    if pred.lo > pred.hi:
        return []
    return p.partitions_for_range(pred.column, pred.lo, pred.hi)


def query(uri_or_dataset, where, limit=None, columns=None, prune=True, endpoint=None):
    """Rows of the dataset matching `where`; `prune=False` scans everything (the baseline)."""
    d = uri_or_dataset if isinstance(uri_or_dataset, Dataset) else Dataset(uri_or_dataset, endpoint)
    pred = where if isinstance(where, Predicate) else parse_where(where, d.schema)
    if columns:
        missing = [c for c in columns if c not in d.schema.names]
        if missing:
            raise BadInput(f"--columns: {', '.join(missing)} not in the dataset (columns: {', '.join(d.schema.names)})")
    all_ids = [p["id"] for p in d.manifest["partitions"]]
    chosen = plan(d, pred) if prune else None
    ids = all_ids if chosen is None else sorted(set(chosen) & set(all_ids))
    typ = d.schema.field(pred.column).type
    field = ds.field(pred.column)
    if pred.is_equal:
        expr = field == pa.scalar(pred.lo, type=typ)
    else:
        expr = (field >= pa.scalar(pred.lo, type=typ)) & (field <= pa.scalar(pred.hi, type=typ))
    files = d.files(ids)
    if not files:
        table = d.schema.empty_table() if columns is None else d.schema.empty_table().select(columns)
    else:
        try:
            scanner = d.arrow(ids).scanner(columns=columns, filter=expr)
            table = scanner.head(limit) if limit is not None else scanner.to_table()
        except _ARROW_ERRORS as e:
            raise BadInput(f"{d.uri}: cannot read the dataset ({e})") from None
    return QueryResult(table, ids, len(all_ids), sum(b for _, _, b in files), d.manifest["total_bytes"])
