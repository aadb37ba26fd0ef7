"""Benchmark: an equality query on a 64-partition hash dataset vs a full scan.

Issue 3's target: the partition-aware query reads <= 1/32 of the bytes of a full scan and is
>= 10x faster. Both sides run the same filter through the same code (`runtime.data.query`);
the baseline passes `prune=False`, so it opens every partition like a plain
`pyarrow.dataset(...).to_table(filter=...)` would. Each side runs `--repeat` times on different
key values (the same values for both sides); medians are compared. Results go to
bench/results/data_query.json.

    .venv/bin/python bench/data_query.py                # 10M rows x 8 columns
    .venv/bin/python bench/data_query.py --rows 1000000
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time

from common import save_result  # noqa: E402  (also puts the repository on sys.path)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--partitions", type=int, default=64)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()

    import numpy as np
    import pyarrow.parquet as pq

    from data_partition import make_input
    from runtime.data.query import query
    from runtime.data.storage import Dataset, write_partitioned

    work = tempfile.mkdtemp(prefix="bench-data-query-")
    try:
        src = os.path.join(work, "input.parquet")
        make_input(src, args.rows)
        out = os.path.join(work, "ds")
        last = [0.0]

        def progress(done, total):
            if time.monotonic() - last[0] > 0.5 or done == total:
                last[0] = time.monotonic()
                print(f"\rpartitioning: {done:,}/{total:,} rows", end="", file=sys.stderr, flush=True)

        write_partitioned(pq.read_table(src), out, "hash", ["id"], args.partitions, progress=progress)
        print(file=sys.stderr)
        d = Dataset(out)
        keys = np.random.default_rng(1).integers(0, args.rows, args.repeat + 1).tolist()
        query(d, f"id = {keys[-1]}")  # warm-up: thread pools, page cache for both sides
        query(d, f"id = {keys[-1]}", prune=False)
        sides = {}
        for name, prune in (("full_scan", False), ("partition_aware", True)):
            times, rows, bytes_, parts = [], [], [], []
            for i, k in enumerate(keys[:-1]):
                t0 = time.perf_counter()
                r = query(d, f"id = {k}", prune=prune)
                times.append(time.perf_counter() - t0)
                rows.append(r.rows)
                bytes_.append(r.bytes_scanned)
                parts.append(len(r.partitions_scanned))
                print(f"\r{name}: {i + 1}/{args.repeat}", end="", file=sys.stderr, flush=True)
            print(file=sys.stderr)
            sides[name] = {"median_seconds": statistics.median(times), "seconds": times, "rows": rows,
                           "bytes_scanned": statistics.median(bytes_), "partitions_scanned": statistics.median(parts)}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    full, ours = sides["full_scan"], sides["partition_aware"]
    assert full["rows"] == ours["rows"], "pruned and full scans disagree"
    speedup = full["median_seconds"] / ours["median_seconds"]
    bytes_ratio = ours["bytes_scanned"] / full["bytes_scanned"]
    result = {
        "benchmark": "data_query", "rows": args.rows, "columns": 8, "partitions": args.partitions,
        "baseline": {"name": "full scan (query with prune=False)", **full},
        "partition_aware": ours,
        "speedup": speedup, "bytes_ratio": bytes_ratio,
        "targets": {"speedup_min": 10, "bytes_ratio_max": 1 / 32},
        "pass": speedup >= 10 and bytes_ratio <= 1 / 32,
    }
    print(f"{'':24}{'median s':>10}{'bytes scanned':>16}{'partitions':>12}")
    for label, s in (("full scan (baseline)", full), ("partition-aware", ours)):
        print(f"{label:24}{s['median_seconds']:>10.4f}{s['bytes_scanned']:>16,.0f}{s['partitions_scanned']:>12.0f}")
    print(f"speedup {speedup:.1f}x (target >= 10), bytes ratio 1/{1 / bytes_ratio:.1f} (target <= 1/32); "
          f"pass: {result['pass']}")
    save_result("data_query", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
