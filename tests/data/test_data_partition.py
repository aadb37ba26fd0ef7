"""Partitioners and the atomic writer: placement, preservation, stable hashing, bad input."""

from __future__ import annotations

import json
import os
import struct

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xxhash
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from runtime.data import hashing
from runtime.data.storage import Dataset, load_manifest, read_table, write_partitioned
from runtime.errors import BadInput

FAST = settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _rows(table):
    return sorted(map(lambda r: tuple(sorted(r.items(), key=lambda kv: kv[0])), table.to_pylist()), key=repr)


def test_vectorized_xxh64_matches_library():
    rng = np.random.default_rng(0)
    for k in (1, 2, 3, 4, 5, 9):
        for tail in ((), (ord("i"),), (1, 2, 3, 4, 5)):
            lanes = [rng.integers(0, 2**63, 20, dtype=np.uint64) for _ in range(k)]
            got = hashing.xxh64_lanes(lanes, tail, seed=7)
            for j in range(20):
                data = b"".join(struct.pack("<Q", int(lane[j])) for lane in lanes) + bytes(tail)
                assert int(got[j]) == xxhash.xxh64_intdigest(data, 7)


def test_hash_is_canonical_and_pinned():
    h = lambda vals, typ: hashing.column_hash(pa.array(vals, typ))[0].tolist()
    # The same value in any integer width hashes alike; 1, 1.0 and "1" all differ.
    assert h([1], pa.int8()) == h([1], pa.int64()) == h([1], pa.uint32())
    assert len({h([1], pa.int64())[0], h([1.0], pa.float64())[0], h(["1"], pa.string())[0]}) == 3
    assert h([-0.0], pa.float64()) == h([0.0], pa.float32())
    assert h(["x"], pa.string()) == [xxhash.xxh64_intdigest(b"xs", hashing.HASH_SEED)]
    # Pinned: a change here would move every row of every existing dataset.
    assert h([1], pa.int64()) == [xxhash.xxh64_intdigest(struct.pack("<q", 1) + b"i", hashing.HASH_SEED)]
    # Composite keys are length-safe: ("ab", "c") != ("a", "bc").
    a = hashing.key_hash([pa.array(["ab"]), pa.array(["c"])])[0][0]
    b = hashing.key_hash([pa.array(["a"]), pa.array(["bc"])])[0][0]
    assert a != b


tables = st.integers(min_value=0, max_value=300).flatmap(lambda n: st.tuples(
    st.lists(st.one_of(st.none(), st.integers(-50, 50)), min_size=n, max_size=n),
    st.lists(st.one_of(st.none(), st.sampled_from(["a", "b", "c", "dd", ""])), min_size=n, max_size=n),
    st.lists(st.floats(allow_nan=False, width=32), min_size=n, max_size=n),
))


def _table(cols):
    k, s, x = cols
    return pa.table({"k": pa.array(k, pa.int64()), "s": pa.array(s, pa.string()), "x": pa.array(x, pa.float64()),
                     "row": pa.array(np.arange(len(k)))})


@FAST
@given(cols=tables, strategy=st.sampled_from(["hash", "range", "key"]), n=st.integers(1, 7),
       composite=st.booleans())
def test_every_row_lands_in_exactly_one_partition(tmp_path_factory, cols, strategy, n, composite):
    t = _table(cols)
    key = ["k", "s"] if composite else ["k"]
    out = str(tmp_path_factory.mktemp("ds") / "out")
    mapping = None
    if strategy == "key":
        mapping = str(tmp_path_factory.mktemp("m") / "map.json")
        entries = [{"key": [v, "a"] if composite else [v], "partition": abs(v) % n} for v in range(-50, 50, 3)]
        json.dump({"mapping": entries, "default": n - 1}, open(mapping, "w"))
    m = write_partitioned(t, out, strategy, key, n, mapping_file=mapping)
    d = Dataset(out)
    assert m["total_rows"] == t.num_rows == sum(p["rows"] for p in m["partitions"])
    seen = []
    for p in m["partitions"]:
        part = d.read_table(partitions=[p["id"]])
        assert part.num_rows == p["rows"]
        # Each row sits in the partition the partitioner computes for it.
        assert (d.partitioner.assign(part) == p["id"]).all()
        seen.extend(part.column("row").to_pylist())
    assert sorted(seen) == list(range(t.num_rows))  # exactly once
    assert _rows(read_table(out)) == _rows(t)  # multiset preserved, values intact


def test_null_keys_go_to_the_null_partition(tmp_path):
    t = pa.table({"k": [1, None, 3, None], "v": [1, 2, 3, 4]})
    m = write_partitioned(t, str(tmp_path / "o"), "hash", ["k"], 4)
    null = [p for p in m["partitions"] if p["id"] == m["null_partition"]]
    assert m["null_partition"] == 4 and null[0]["rows"] == 2


def test_range_split_points_from_sample_are_balanced(tmp_path):
    rng = np.random.default_rng(1)
    t = pa.table({"k": rng.permutation(300_000) * 7, "v": np.zeros(300_000)})  # > sample size
    m = write_partitioned(t, str(tmp_path / "o"), "range", ["k"], 16)
    rows = [p["rows"] for p in m["partitions"]]
    assert len(rows) == 16 and max(rows) <= 1.1 * np.mean(rows) and min(rows) >= 0.9 * np.mean(rows)
    assert m["split_points"] == sorted(m["split_points"])


def test_explicit_split_points_and_key_mapping(tmp_path):
    t = pa.table({"k": list(range(10)), "r": ["us", "eu", "ap", "us", "eu", "xx", None, "us", "eu", "ap"]})
    m = write_partitioned(t, str(tmp_path / "r"), "range", ["k"], split_points="3,7")
    assert [p["rows"] for p in m["partitions"]] == [3, 4, 3]
    (tmp_path / "map.json").write_text(json.dumps({"mapping": {"us": 0, "eu": 1}, "default": 2}))
    m = write_partitioned(t, str(tmp_path / "k"), "key", ["r"], 3, mapping_file=str(tmp_path / "map.json"))
    assert [p["rows"] for p in m["partitions"]] == [3, 3, 3, 1]  # ap, ap, xx -> default; None -> null
    files = [f for p in m["partitions"] for f in p["files"]]
    assert all(len(f["xxh64"]) == 16 and f["bytes"] > 0 for f in files)


def _no_leftovers(tmp_path, name="out"):
    return not [p for p in os.listdir(tmp_path) if p.startswith((name, f".{name}"))]


@pytest.mark.parametrize("kwargs, needle", [
    (dict(strategy="hash", key=["nope"], num_partitions=4), "column 'nope'"),
    (dict(strategy="spiral", key=["k"], num_partitions=4), "unknown strategy 'spiral'"),
    (dict(strategy="hash", key=["k"], num_partitions=0), "at least 1 (got 0)"),
    (dict(strategy="range", key=["k"], split_points="5,3"), "strictly ascending"),
    (dict(strategy="range", key=["k"], split_points="3,3"), "strictly ascending"),
    (dict(strategy="range", key=["k"], split_points="3,x"), "'x' is not a valid int64"),
])
def test_bad_partition_flags(tmp_path, kwargs, needle):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"k": [1, 2, 3]}), src)
    with pytest.raises(BadInput) as e:
        write_partitioned(str(src), str(tmp_path / "out"), **kwargs)
    assert needle in str(e.value)
    assert _no_leftovers(tmp_path)


def test_mapping_with_unknown_partition(tmp_path):
    src = tmp_path / "in.parquet"
    pq.write_table(pa.table({"k": ["a", "b"]}), src)
    (tmp_path / "m.json").write_text(json.dumps({"mapping": {"a": 0, "b": 5}}))
    with pytest.raises(BadInput, match=r"key b names partition 5, which does not exist"):
        write_partitioned(str(src), str(tmp_path / "out"), "key", ["k"], 3, mapping_file=str(tmp_path / "m.json"))
    assert _no_leftovers(tmp_path)


def test_corrupt_and_truncated_parquet(tmp_path):
    good = tmp_path / "in" / "a.parquet"
    good.parent.mkdir()
    pq.write_table(pa.table({"k": list(range(1000))}), good)
    data = good.read_bytes()
    (tmp_path / "in" / "b.parquet").write_bytes(data[: len(data) // 2])  # truncated
    with pytest.raises(BadInput, match=r"b\.parquet is not a readable Parquet file"):
        write_partitioned(str(tmp_path / "in"), str(tmp_path / "out"), "hash", ["k"], 2)
    (tmp_path / "in" / "b.parquet").write_bytes(b"PAR1" + b"\x00" * 64 + data[-8:])  # corrupt footer
    with pytest.raises(BadInput, match=r"b\.parquet"):
        write_partitioned(str(tmp_path / "in"), str(tmp_path / "out"), "hash", ["k"], 2)
    # Damaged data pages behind an intact footer are found while streaming; nothing is left.
    (tmp_path / "in" / "b.parquet").unlink()
    damaged = bytearray(data)
    for i in range(100, len(data) - 400, 5):
        damaged[i] ^= 0xFF
    good.write_bytes(bytes(damaged))
    with pytest.raises(BadInput, match=r"INPUT: .*\bin\b"):
        write_partitioned(str(tmp_path / "in"), str(tmp_path / "out"), "hash", ["k"], 2)
    assert _no_leftovers(tmp_path)


def test_interrupted_write_leaves_nothing(tmp_path, monkeypatch):
    from runtime.data import storage

    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(storage, "_manifest", boom)
    with pytest.raises(KeyboardInterrupt):
        write_partitioned(pa.table({"k": [1, 2, 3]}), str(tmp_path / "out"), "hash", ["k"], 2)
    assert os.listdir(tmp_path) == []
    with pytest.raises(BadInput, match="not a gpufleet dataset"):
        load_manifest(str(tmp_path / "out"))


def test_existing_output_is_refused(tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "keep.txt").write_text("x")
    with pytest.raises(BadInput, match="already exists"):
        write_partitioned(pa.table({"k": [1]}), str(tmp_path / "out"), "hash", ["k"], 2)
    assert os.listdir(tmp_path / "out") == ["keep.txt"]


def test_writes_are_deterministic_and_keep_input_order(tmp_path):
    t = pa.table({"k": np.arange(50_000) % 977, "v": np.arange(50_000)})
    a = write_partitioned(t, str(tmp_path / "a"), "hash", ["k"], 8, batch_rows=7_000)
    b = write_partitioned(t, str(tmp_path / "b"), "hash", ["k"], 8, batch_rows=7_000)
    assert a["fingerprint"] == b["fingerprint"]
    for p in a["partitions"]:
        v = read_table(str(tmp_path / "a"), partitions=[p["id"]]).column("v").to_numpy()
        assert (np.diff(v) > 0).all()  # rows of a partition keep INPUT's order
