"""Partitioned datasets on gs:// against a GCS emulator over HTTP (tests/gcs_emulator.py): written
through google-cloud-storage (manifest last), read through pyarrow's GcsFileSystem."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from runtime import store
from runtime.data import cli
from runtime.data.query import query
from runtime.data.sharding import ShardedSampler
from runtime.data.storage import load_manifest, read_arrays, read_table, write_partitioned
from runtime.errors import BadInput


def _table(n=2000):
    return pa.table({"id": np.arange(n), "region": pa.array(["us", "eu", "ap", "sa"] * (n // 4)),
                     "x": np.linspace(0, 1, n)})


def test_gcs_round_trip(tmp_path, gcs_endpoint, gcs_bucket):
    src = tmp_path / "in.parquet"
    pq.write_table(_table(), src)
    uri = f"gs://{gcs_bucket}/events"
    m = write_partitioned(str(src), uri, "range", ["id"], 4, endpoint=gcs_endpoint)
    assert m["total_rows"] == 2000
    keys = store.list_keys(f"gs://{gcs_bucket}", gcs_endpoint)
    assert "events/_manifest.json" in keys and all(k.startswith("events/partition=") or k == "events/_manifest.json"
                                                    for k in keys)  # no staging files left behind
    assert load_manifest(uri, gcs_endpoint)["fingerprint"] == m["fingerprint"]
    back = read_table(uri, endpoint=gcs_endpoint)
    assert sorted(back.column("id").to_pylist()) == list(range(2000))
    assert read_arrays(uri, ["x"], endpoint=gcs_endpoint)["x"].dtype == np.float64
    r = query(uri, "id BETWEEN 10 AND 20", endpoint=gcs_endpoint)
    assert r.rows == 11 and r.partitions_scanned == [0]
    batches = list(ShardedSampler(uri, seed=1, batch_size=500, endpoint=gcs_endpoint).iter_batches())
    assert sum(b.num_rows for b in batches) == 2000
    with pytest.raises(BadInput, match="already exists"):
        write_partitioned(str(src), uri, "hash", ["id"], 2, endpoint=gcs_endpoint)
    with pytest.raises(BadInput, match="bucket of gs://no-such-bucket-here/x does not exist"):
        write_partitioned(str(src), "gs://no-such-bucket-here/x", "hash", ["id"], 2, endpoint=gcs_endpoint)
    with pytest.raises(BadInput, match="not a gpufleet dataset"):
        read_table(f"gs://{gcs_bucket}/absent", endpoint=gcs_endpoint)


def test_cli_partitions_a_gs_input_into_a_gs_dataset(tmp_path, gcs_endpoint, gcs_bucket, monkeypatch, capsys):
    """INPUT and OUT both on gs://, the endpoint from STORAGE_EMULATOR_HOST."""
    monkeypatch.delenv("GPUFLEET_GCS_ENDPOINT", raising=False)
    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_endpoint)
    pacsv.write_csv(_table(), tmp_path / "in.csv")
    store.put_file(tmp_path / "in.csv", f"gs://{gcs_bucket}/raw/in.csv")
    out = f"gs://{gcs_bucket}/ds"
    assert cli.main(["partition", f"gs://{gcs_bucket}/raw/", out, "--strategy", "hash", "--key", "id",
                     "--partitions", "8"]) == 0
    assert "wrote 2,000 rows" in capsys.readouterr().err
    assert cli.main(["query", out, "--where", "id = 42"]) == 0
    cap = capsys.readouterr()
    assert cap.out.splitlines()[1].startswith("42,") and "scanned 1 of 8 partitions" in cap.err
