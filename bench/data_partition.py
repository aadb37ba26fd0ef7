"""Benchmark: hash-partitioning a table vs a plain pyarrow write of the same table to Parquet.

Issue 3's target: partitioning 10M rows x 8 columns runs at >= 0.5x the speed of
`pyarrow.parquet.write_table` of the same table, with peak memory under 2 GB.

Each measurement runs in its own child process (so peak RSS, from `os.wait4`'s rusage, is that
run's alone): the child loads the same input Parquet file into memory (not timed), then times
only the write, after a warm-up write of 10,000 rows on both sides. A third child partitions
straight from the Parquet file, streaming, to show the memory of the path the CLI takes. The three run `--repeat` times, interleaved (this machine is
shared, so single runs vary by 2x); medians are printed side by side and written as JSON to
bench/results/data_partition.json, with every run's time.

    .venv/bin/python bench/data_partition.py            # 10M rows (the issue's size)
    .venv/bin/python bench/data_partition.py --rows 1000000
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

BATCH_ROWS = int(os.environ.get("BENCH_BATCH_ROWS", 1 << 20))
from common import ROOT, save_result  # noqa: E402  (also puts the repository on sys.path)


def make_input(path, rows):
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    rng = np.random.default_rng(0)
    chunk = 1_000_000
    schema = None
    writer = None
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        t = pa.table({
            "id": np.arange(start, start + n, dtype=np.int64),
            "user": rng.integers(0, 1_000_000, n),
            "clicks": rng.integers(0, 1000, n).astype(np.int32),
            "x": rng.random(n),
            "y": rng.normal(size=n),
            "z": rng.random(n).astype(np.float32),
            "ts": pa.array(1_700_000_000_000_000 + rng.integers(0, 10**12, n), pa.timestamp("us")),
            "region": pa.array(np.array(["us-east", "us-west", "eu", "ap", "sa"])[rng.integers(0, 5, n)]),
        })
        if writer is None:
            schema = t.schema
            writer = pq.ParquetWriter(path, schema)
        writer.write_table(t)
        print(f"\rinput: {start + n:,}/{rows:,} rows", end="", file=sys.stderr, flush=True)
    writer.close()
    print(file=sys.stderr)


def child(mode, src, out, partitions):
    """Runs in a child process; prints one JSON line with the timed seconds."""
    import pyarrow.parquet as pq

    from runtime.data.storage import write_partitioned

    if mode == "stream":
        warm = pq.ParquetFile(src).read_row_group(0).slice(0, 10_000)  # not the whole table: RSS is measured
        write_partitioned(warm, out + ".warmup", "hash", ["id"], partitions)
        del warm
        t0 = time.perf_counter()
        write_partitioned(src, out, "hash", ["id"], partitions, batch_rows=BATCH_ROWS)
        print(json.dumps({"seconds": time.perf_counter() - t0}))
        return
    table = pq.read_table(src)
    # Warm up (thread pools, lazy initialisation) on a small slice, the same for both sides.
    if mode == "baseline":
        pq.write_table(table.slice(0, 10_000), out + ".warmup")
    else:
        write_partitioned(table.slice(0, 10_000), out + ".warmup", "hash", ["id"], partitions)
    t0 = time.perf_counter()
    if mode == "baseline":
        pq.write_table(table, out)
    else:
        write_partitioned(table, out, "hash", ["id"], partitions, batch_rows=BATCH_ROWS)
    print(json.dumps({"seconds": time.perf_counter() - t0}))


def run_child(mode, src, out, partitions):
    print(f"running {mode} ...", file=sys.stderr, flush=True)
    proc = subprocess.Popen([sys.executable, __file__, "--child", mode, src, out, str(partitions)],
                            stdout=subprocess.PIPE, cwd=ROOT)
    data = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"{mode} failed with exit code {proc.returncode}")
    r = json.loads(data.decode().strip().splitlines()[-1])
    r["peak_rss_mb"] = usage.ru_maxrss / 1024  # Linux reports KiB
    return r


def _median(results):
    """Median seconds and the largest peak RSS of repeated runs, with every run's seconds."""
    return {"seconds": statistics.median(r["seconds"] for r in results),
            "peak_rss_mb": max(r["peak_rss_mb"] for r in results),
            "all_seconds": [round(r["seconds"], 3) for r in results]}


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=3, help="runs per side; medians are compared")
    ap.add_argument("--child", nargs=4, metavar=("MODE", "SRC", "OUT", "N"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        mode, src, out, n = args.child
        return child(mode, src, out, int(n))
    work = tempfile.mkdtemp(prefix="bench-data-partition-")
    try:
        src = os.path.join(work, "input.parquet")
        make_input(src, args.rows)
        runs = {"baseline": [], "partition": [], "stream": []}
        for rep in range(args.repeat):  # interleaved, so load from elsewhere hits all sides alike
            for mode in runs:
                out = os.path.join(work, f"{mode}-{rep}")
                runs[mode].append(run_child(mode, src, out + (".parquet" if mode == "baseline" else ""),
                                            args.partitions))
                shutil.rmtree(out, ignore_errors=True) if mode != "baseline" else os.remove(out + ".parquet")
        base, ours, stream = (_median(runs[m]) for m in ("baseline", "partition", "stream"))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    ratio = base["seconds"] / ours["seconds"]
    result = {
        "benchmark": "data_partition",
        "rows": args.rows, "columns": 8, "partitions": args.partitions, "repeat": args.repeat,
        "baseline": {"name": "pyarrow.parquet.write_table", **base},
        "partition_in_memory": ours,
        "partition_streaming_from_file": stream,
        "speed_ratio": ratio,
        "speed_ratio_streaming": base["seconds"] / stream["seconds"],
        "targets": {"speed_ratio_min": 0.5, "peak_rss_mb_max": 2048},
        "pass": ratio >= 0.5 and max(ours["peak_rss_mb"], stream["peak_rss_mb"]) < 2048,
    }
    print(f"{'':32}{'median s':>10}{'peak MB':>10}  all runs (s)")
    print(f"{'pyarrow write_table (baseline)':32}{base['seconds']:>10.2f}{base['peak_rss_mb']:>10.0f}  {base['all_seconds']}")
    print(f"{'hash partition, in memory':32}{ours['seconds']:>10.2f}{ours['peak_rss_mb']:>10.0f}  {ours['all_seconds']}")
    print(f"{'hash partition, from file':32}{stream['seconds']:>10.2f}{stream['peak_rss_mb']:>10.0f}  {stream['all_seconds']}")
    print(f"speed ratio (baseline time / partition time): {ratio:.2f} in memory, "
          f"{result['speed_ratio_streaming']:.2f} from file (target >= 0.5); pass: {result['pass']}")
    save_result("data_partition", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
