"""The CLI end to end on local files, and an S3 round trip against the emulator (moto)."""

from __future__ import annotations

import json

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from runtime.data import cli
from runtime.data.query import query
from runtime.data.sharding import ShardedSampler
from runtime.data.storage import load_manifest, read_arrays, read_table, write_partitioned
from runtime.errors import BadInput


def _table(n=2000):
    return pa.table({"id": np.arange(n), "region": pa.array(["us", "eu", "ap", "sa"] * (n // 4)),
                     "x": np.linspace(0, 1, n)})


def test_cli_partition_inspect_query(tmp_path, capsys):
    src = tmp_path / "in.csv"
    pacsv.write_csv(_table(), src)
    out = str(tmp_path / "ds")
    assert cli.main(["partition", str(src), out, "--strategy", "hash", "--key", "id", "--partitions", "8"]) == 0
    assert "wrote 2,000 rows" in capsys.readouterr().err
    assert cli.main(["data", "inspect", out]) == 0
    text = capsys.readouterr().out
    assert "strategy: hash" in text and "skew (max/mean rows over 8 partitions)" in text
    assert cli.main(["query", out, "--where", "id = 42"]) == 0
    cap = capsys.readouterr()
    assert cap.out.splitlines()[1].startswith("42,") and "scanned 1 of 8 partitions" in cap.err
    assert cli.main(["query", out, "--where", "region = 'eu'", "--limit", "3", "--columns", "id"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == '"id"' and len(lines) == 4 and all(int(v) % 4 == 1 for v in lines[1:])


def test_cli_bad_input_exits_2(tmp_path, capsys):
    src = tmp_path / "in.parquet"
    pq.write_table(_table(), src)
    out = str(tmp_path / "ds")
    assert cli.main(["partition", str(src), out, "--strategy", "hash", "--key", "nope", "--partitions", "0"]) == 2
    err = capsys.readouterr().err
    assert "error: --key: column 'nope' is not in INPUT" in err and "error: --partitions: must be at least 1" in err
    (tmp_path / "m.json").write_text(json.dumps({"mapping": {"us": 9}}))
    assert cli.main(["partition", str(src), out, "--strategy", "key", "--key", "region", "--partitions", "2",
                     "--mapping", str(tmp_path / "m.json")]) == 2
    assert "names partition 9" in capsys.readouterr().err
    assert not (tmp_path / "ds").exists()
    assert cli.main(["partition", str(src), out, "--strategy", "range", "--key", "id", "--split-points", "5,5"]) == 2
    assert cli.main(["partition", str(src), out, "--strategy", "range", "--key", "id", "--split-points", "10,20"]) == 0
    assert cli.main(["query", out, "--where", "nope = 1"]) == 2
    assert "column 'nope' does not exist" in capsys.readouterr().err


def test_register_adds_data_command():
    import argparse

    parser = argparse.ArgumentParser(prog="gpufleet")
    cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", "query", "ds", "--where", "a = 1", "--limit", "2"])
    assert args.func is cli.cmd_query and args.limit == 2


@pytest.mark.slow
def test_s3_round_trip(tmp_path, aws_client, moto_endpoint):
    aws_client("s3").create_bucket(Bucket="data")
    t = _table()
    src = tmp_path / "in.parquet"
    pq.write_table(t, src)
    uri = "s3://data/events"
    m = write_partitioned(str(src), uri, "range", ["id"], 4, endpoint=moto_endpoint)
    assert m["total_rows"] == 2000
    keys = [o["Key"] for o in aws_client("s3").list_objects_v2(Bucket="data")["Contents"]]
    assert "events/_manifest.json" in keys and all(k.startswith("events/") for k in keys)  # no temp left
    assert load_manifest(uri, moto_endpoint)["fingerprint"] == m["fingerprint"]
    back = read_table(uri, endpoint=moto_endpoint)
    assert sorted(back.column("id").to_pylist()) == list(range(2000))
    assert read_arrays(uri, ["x"], endpoint=moto_endpoint)["x"].dtype == np.float64
    r = query(uri, "id BETWEEN 10 AND 20", endpoint=moto_endpoint)
    assert r.rows == 11 and r.partitions_scanned == [0]
    batches = list(ShardedSampler(uri, seed=1, batch_size=500, endpoint=moto_endpoint).iter_batches())
    assert sum(b.num_rows for b in batches) == 2000
    # A second write to the same place is refused; a missing bucket is a clear BadInput.
    with pytest.raises(BadInput, match="already exists"):
        write_partitioned(str(src), uri, "hash", ["id"], 2, endpoint=moto_endpoint)
    with pytest.raises(BadInput, match="s3://nobucket/x"):
        write_partitioned(str(src), "s3://nobucket/x", "hash", ["id"], 2, endpoint=moto_endpoint)
    with pytest.raises(BadInput, match="not a gpufleet dataset|cannot read"):
        read_table("s3://data/absent", endpoint=moto_endpoint)
