"""Partition-aware queries return what a full scan returns, reading only what they must."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.data.query import query
from runtime.data.storage import write_partitioned
from runtime.errors import BadInput

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _sorted(table):
    return sorted(table.to_pylist(), key=lambda r: r["row"])


def _table(keys, names):
    return pa.table({"k": pa.array(keys, pa.int64()), "name": pa.array(names, pa.string()),
                     "row": pa.array(np.arange(len(keys)))})


data = st.integers(0, 200).flatmap(lambda n: st.tuples(
    st.lists(st.one_of(st.none(), st.integers(-20, 20)), min_size=n, max_size=n),
    st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c"])), min_size=n, max_size=n)))


@FAST
@given(d=data, strategy=st.sampled_from(["hash", "range", "key"]), n=st.integers(1, 6),
       lo=st.integers(-25, 25), width=st.integers(0, 15), column=st.sampled_from(["k", "name"]))
def test_query_equals_filtered_full_scan(tmp_path_factory, d, strategy, n, lo, width, column):
    t = _table(*d)
    out = str(tmp_path_factory.mktemp("q") / "ds")
    mapping = None
    if strategy == "key":
        mapping = str(tmp_path_factory.mktemp("m") / "map.json")
        json.dump({"mapping": {str(v): (v * 7) % n for v in range(-20, 20, 2)}}, open(mapping, "w"))
    write_partitioned(t, out, strategy, ["k"], n, mapping_file=mapping)
    if column == "k":
        wheres = [(f"k = {lo}", pc.equal(t["k"], lo)),
                  (f"k BETWEEN {lo} AND {lo + width}", pc.and_(pc.greater_equal(t["k"], lo), pc.less_equal(t["k"], lo + width)))]
    else:
        wheres = [("name = 'b'", pc.equal(t["name"], "b")), ('name between "a" and "b"',
                  pc.and_(pc.greater_equal(t["name"], "a"), pc.less_equal(t["name"], "b")))]
    for where, mask in wheres:
        expect = t.filter(pc.fill_null(mask, False))
        got = query(out, where)
        assert _sorted(got.table) == _sorted(expect), where
        full = query(out, where, prune=False)
        assert _sorted(full.table) == _sorted(expect)
        assert got.bytes_scanned <= full.bytes_scanned


def test_equality_on_hash_key_reads_one_partition(tmp_path):
    t = _table(list(range(1000)), ["a"] * 1000)
    out = str(tmp_path / "ds")
    m = write_partitioned(t, out, "hash", ["k"], 16)
    r = query(out, "k = 123")
    assert r.rows == 1 and len(r.partitions_scanned) == 1
    assert r.bytes_scanned == m["partitions"][r.partitions_scanned[0]]["bytes"]
    # A non-key column scans everything.
    r = query(out, "name = 'a'", limit=5)
    assert r.rows == 5 and len(r.partitions_scanned) == 16 and r.bytes_scanned == m["total_bytes"]


def test_range_predicate_reads_overlapping_partitions(tmp_path):
    t = _table(list(range(100)), ["a"] * 100)
    out = str(tmp_path / "ds")
    write_partitioned(t, out, "range", ["k"], split_points="10,20,30,40")
    r = query(out, "k BETWEEN 15 AND 25")
    assert r.partitions_scanned == [1, 2] and r.rows == 11
    assert query(out, "k BETWEEN 20 AND 20").partitions_scanned == [2]
    assert query(out, "k = 99").partitions_scanned == [4]
    assert query(out, "k BETWEEN 30 AND 10").rows == 0


def test_query_bad_input(tmp_path):
    out = str(tmp_path / "ds")
    write_partitioned(_table([1, 2], ["a", "b"]), out, "hash", ["k"], 2)
    with pytest.raises(BadInput, match="column 'missing' does not exist"):
        query(out, "missing = 3")
    with pytest.raises(BadInput, match="cannot parse"):
        query(out, "k > 3")
    with pytest.raises(BadInput, match="'abc' is not a valid int64"):
        query(out, "k = abc")
    with pytest.raises(BadInput, match="not a gpufleet dataset"):
        query(str(tmp_path / "nothing"), "k = 1")
