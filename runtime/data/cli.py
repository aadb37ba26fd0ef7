"""`gpufleet data partition|inspect|query`: the data layer from the command line.

infra's CLI calls `register(subparsers)`; each subcommand sets `func(args) -> exit code` and
raises BadInput for input a user can fix (the caller prints each problem as `error: ...` and
exits 2). `python -m runtime.data.cli ...` runs the same commands without infra.
"""

from __future__ import annotations

import argparse
import sys
import time

import pyarrow.csv as pacsv

from runtime.data.query import query
from runtime.data.storage import Dataset, write_partitioned
from runtime.errors import EXIT_BAD_INPUT, EXIT_OK, BadInput


def register(subparsers):
    """Add the `data` command and its subcommands to an argparse subparsers object."""
    data = subparsers.add_parser("data", help="partitioned datasets: partition, inspect, query")
    sub = data.add_subparsers(dest="data_command", metavar="{partition,inspect,query}")
    sub.required = True

    p = sub.add_parser("partition", help="split INPUT (CSV or Parquet, file or directory) into a partitioned dataset at OUT")
    p.add_argument("input", metavar="INPUT", help="a .csv/.parquet file or a directory of them; local, s3:// or gs://")
    p.add_argument("out", metavar="OUT", help="where the dataset goes (must not exist); local, s3:// or gs://bucket/prefix")
    p.add_argument("--strategy", required=True, help="hash, range or key")
    p.add_argument("--key", required=True, help="key column(s), comma-separated for a composite key")
    p.add_argument("--partitions", type=int, help="number of partitions N (range: optional with --split-points)")
    p.add_argument("--split-points", help='range: ascending split points "10,20,30"; composite components joined by "|"')
    p.add_argument("--mapping", help='key: JSON file {"mapping": {"us": 0, "eu": 1}, "default": 2}; '
                   'unmapped keys go to "default" (if absent: the last partition); composite keys joined by "|"')
    p.add_argument("--endpoint", help="object-store endpoint URL (default: S3 $GPUFLEET_S3_ENDPOINT, $AWS_ENDPOINT_URL_S3, "
                   "$AWS_ENDPOINT_URL, else AWS; GCS $GPUFLEET_GCS_ENDPOINT, $STORAGE_EMULATOR_HOST, else Google)")
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=cmd_partition)

    i = sub.add_parser("inspect", help="row counts, sizes and skew of a partitioned dataset")
    i.add_argument("out", metavar="OUT")
    i.add_argument("--endpoint")
    i.set_defaults(func=cmd_inspect)

    q = sub.add_parser("query", help="rows matching a predicate, as CSV; partitions and bytes scanned on stderr")
    q.add_argument("out", metavar="OUT")
    q.add_argument("--where", required=True, help='"COL = V" or "COL BETWEEN A AND B"')
    q.add_argument("--limit", type=int, help="at most this many rows")
    q.add_argument("--columns", help="comma-separated columns to print (default: all)")
    q.add_argument("--endpoint")
    q.set_defaults(func=cmd_query)
    return data


class Progress:
    """Rows written so far on stderr, at most twice a second, ending with a newline."""

    def __init__(self, stream=sys.stderr, every=0.5):
        self.stream, self.every, self.last, self.start, self.shown = stream, every, 0.0, time.monotonic(), False

    def __call__(self, done, total):
        now = time.monotonic()
        if now - self.last < self.every and (total is None or done < total):
            return
        self.last = now
        pct = f" ({100 * done / total:.0f}%)" if total else ""
        rate = done / max(now - self.start, 1e-9)
        self.stream.write(f"\rpartitioned {done:,}{f'/{total:,}' if total else ''} rows{pct}, {rate:,.0f} rows/s")
        self.stream.flush()
        self.shown = True

    def close(self):
        if self.shown:
            self.stream.write("\n")


def cmd_partition(args):
    progress = None if args.quiet else Progress()
    try:
        m = write_partitioned(args.input, args.out, args.strategy, [k.strip() for k in args.key.split(",") if k.strip()],
                              args.partitions, args.split_points, args.mapping, endpoint=args.endpoint,
                              progress=progress)
    finally:
        if progress:
            progress.close()
    print(f"wrote {m['total_rows']:,} rows in {sum(1 for p in m['partitions'] if p['rows'])} non-empty partitions "
          f"({m['total_bytes']:,} bytes) to {args.out}", file=sys.stderr)
    return EXIT_OK


def describe(m):
    """Lines for `inspect`: strategy, then one row per partition, then totals and skew."""
    regular = [p for p in m["partitions"] if p["id"] < m["num_partitions"]]
    rows = [p["rows"] for p in regular]
    mean = sum(rows) / len(rows) if rows else 0
    lines = [f"strategy: {m['strategy']}  key: {','.join(m['key'])}  partitions: {m['num_partitions']}"]
    if m["strategy"] == "range":
        lines.append("split points: " + ", ".join("|".join(map(str, p)) for p in m["split_points"]))
    if m["strategy"] == "key":
        lines.append(f"mapping: {len(m['mapping'])} keys, default partition {m['default_partition']}")
    lines.append(f"{'partition':>10} {'rows':>12} {'bytes':>14} {'files':>6}")
    for p in m["partitions"]:
        name = "null" if p["id"] == m["null_partition"] else str(p["id"])
        lines.append(f"{name:>10} {p['rows']:>12,} {p['bytes']:>14,} {len(p['files']):>6}")
    lines.append(f"{'total':>10} {m['total_rows']:>12,} {m['total_bytes']:>14,}")
    skew = max(rows) / mean if mean else float("nan")
    lines.append(f"skew (max/mean rows over {len(regular)} partitions): {skew:.3f}")
    return lines


def cmd_inspect(args):
    m = Dataset(args.out, args.endpoint).manifest
    print("\n".join(describe(m)))
    return EXIT_OK


def cmd_query(args):
    if args.limit is not None and args.limit < 0:
        raise BadInput(f"--limit: must be at least 0 (got {args.limit})")
    cols = [c.strip() for c in args.columns.split(",")] if args.columns else None
    r = query(args.out, args.where, limit=args.limit, columns=cols, endpoint=args.endpoint)
    out = sys.stdout.buffer
    pacsv.write_csv(r.table, out)
    out.flush()
    print(f"{r.rows} rows; scanned {len(r.partitions_scanned)} of {r.partitions_total} partitions, "
          f"{r.bytes_scanned:,} of {r.bytes_total:,} bytes", file=sys.stderr)
    return EXIT_OK


def main(argv=None):
    """Standalone entry point: `python -m runtime.data.cli data ...` or without the `data` word."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] != ["data"]:
        argv = ["data", *argv]
    parser = argparse.ArgumentParser(prog="gpufleet")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except BadInput as e:
        for line in e.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT


if __name__ == "__main__":
    sys.exit(main())
