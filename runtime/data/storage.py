"""Partitioned datasets on a local path, S3 or GCS: the atomic writer, the manifest, the readers.

Layout of a dataset at OUT (Hive-style, so plain pyarrow/Spark/DuckDB can read it too):

    OUT/_manifest.json
    OUT/partition=0/part-0.parquet
    OUT/partition=1/part-0.parquet ...
    OUT/partition=N/...            the null partition, present only when some key was null

`_manifest.json` (its leading underscore keeps pyarrow's discovery from reading it as data)
records the strategy, key columns, split points or mapping, the Arrow schema, and for every
partition its row count, byte size and files with their xxh64 checksums. It is the last thing
written: a directory without it is not a dataset.

Atomicity: everything is written under a temporary directory and moved into place at the
end; on any error, KeyboardInterrupt included, the temporary files are deleted. Locally the
staging directory is a sibling `.OUT.tmp-<id>` and the move is one `rename`. S3 and GCS have no
rename: the dataset is staged in a local temporary directory (so it needs local disk for one copy),
then each file is uploaded and the manifest goes last; a failure while uploading deletes what
had arrived, and readers never see a prefix without its manifest as a dataset.

Remote locations are `s3://bucket/prefix` and `gs://bucket/prefix`. Locations, the endpoint (the
`endpoint` argument, else the variables named in runtime.store), the region and the clients all
come from runtime.store.
"""

from __future__ import annotations

import base64
import json
import os
import posixpath
import tempfile
import time
import uuid

import numpy as np
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.fs as pafs
import pyarrow.parquet as pq
import xxhash

from runtime import store
from runtime.data import partitioners as P
from runtime.data.writer import PartitionWriter, batch_rows_for
from runtime.errors import BadInput

MANIFEST = "_manifest.json"
PARTITION_FIELD = "partition"
FORMAT_VERSION = 1
ROWS_PER_GROUP = 1 << 17  # bounds what a sampler reads for one block (see sharding)
_ARROW_ERRORS = (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError, pa.ArrowException, OSError)


def _is_remote(fs):
    """An object store (S3, GCS): no rename, so datasets are staged locally and uploaded."""
    return not isinstance(fs, pafs.LocalFileSystem)


def _info(fs, path, uri):
    try:
        return fs.get_file_info(path)
    except _ARROW_ERRORS as e:
        raise BadInput(f"{uri}: cannot read this location ({e})") from None


def open_input(uri, endpoint=None):
    """A pyarrow dataset over INPUT (CSV or Parquet, a file or a directory), footers checked.

    Truncated or corrupt Parquet files are found here, before anything is written, and named.
    """
    fs, path = store.arrow_filesystem(uri, endpoint)
    info = _info(fs, path, uri)
    if info.type == pafs.FileType.NotFound:
        raise BadInput(f"INPUT: {uri} does not exist")
    if info.type == pafs.FileType.Directory:
        try:
            infos = fs.get_file_info(pafs.FileSelector(path, recursive=True))
        except _ARROW_ERRORS as e:
            raise BadInput(f"INPUT: cannot list {uri} ({e})") from None
        files = sorted(i.path for i in infos if i.type == pafs.FileType.File
                       and not posixpath.basename(i.path).startswith((".", "_")))
    else:
        files = [path]
    kinds = {f: _format_of(f) for f in files}
    data = [f for f in files if kinds[f]]
    formats = {kinds[f] for f in data}
    if not data:
        raise BadInput(f"INPUT: {uri} holds no .csv or .parquet files")
    if len(formats) > 1:
        raise BadInput(f"INPUT: {uri} mixes CSV and Parquet files; give one format")
    fmt = formats.pop()
    if fmt == "parquet":
        for f in data:
            try:
                with fs.open_input_file(f) as fh:
                    pq.ParquetFile(fh).metadata
            except _ARROW_ERRORS as e:
                raise BadInput(f"INPUT: {f} is not a readable Parquet file (corrupt or truncated: {e})") from None
    try:
        return ds.dataset(data, filesystem=fs, format=fmt), fmt
    except _ARROW_ERRORS as e:
        raise BadInput(f"INPUT: cannot read {uri} as {fmt} ({e})") from None


def _format_of(path):
    low = path.lower()
    if low.endswith((".parquet", ".pq", ".parq")):
        return "parquet"
    if low.endswith((".csv", ".csv.gz")):
        return "csv"
    return None


def build_partitioner(strategy, key, schema, num_partitions=None, split_points=None, mapping_file=None,
                      key_table_fn=None):
    """Validate the user's partitioning flags against INPUT's schema; every problem at once."""
    problems = []
    if strategy not in P.STRATEGIES:
        problems.append(f"--strategy: unknown strategy {strategy!r} (allowed: {', '.join(P.STRATEGIES)})")
    if not key:
        problems.append("--key: give at least one key column")
    for c in key:
        if c not in schema.names:
            problems.append(f"--key: column {c!r} is not in INPUT (columns: {', '.join(schema.names)})")
    if PARTITION_FIELD in schema.names:
        problems.append(f"INPUT: has a column named {PARTITION_FIELD!r}, which the partition directories use; rename it")
    if num_partitions is not None and num_partitions < 1:
        problems.append(f"--partitions: must be at least 1 (got {num_partitions})")
    if strategy == "range" and num_partitions is None and split_points is None:
        problems.append("--partitions or --split-points: one is needed for --strategy range")
    if strategy in ("hash",) and num_partitions is None:
        problems.append("--partitions: needed for --strategy hash")
    if strategy == "key" and mapping_file is None:
        problems.append("--mapping: needed for --strategy key")
    if problems:
        raise BadInput(problems)
    types = [schema.field(c).type for c in key]
    if strategy == "hash":
        return P.HashPartitioner(key, num_partitions, types)
    if strategy == "range":
        if split_points is not None:
            points = P.parse_split_points(split_points, types) if isinstance(split_points, str) else \
                [tuple(P.cast_value(v, t, "--split-points") for v, t in zip(p, types)) for p in split_points]
            if num_partitions is not None and num_partitions != len(points) + 1:
                raise BadInput(f"--partitions: {num_partitions} does not match {len(points)} split points "
                               f"(which make {len(points) + 1} partitions)")
        else:
            points = P.split_points_from_sample(key_table_fn(), num_partitions, types)
        return P.RangePartitioner(key, points, types)
    pairs, default = P.load_mapping(mapping_file, types)
    if num_partitions is None:
        num_partitions = max([p for _, p in pairs] + [default or 0]) + 1
    return P.KeyPartitioner(key, pairs, num_partitions - 1 if default is None else default, num_partitions, types)


def write_partitioned(source, out, strategy, key, num_partitions=None, split_points=None, mapping_file=None,
                      endpoint=None, progress=None, batch_rows=None):
    """Partition INPUT `source` (a location, or an in-memory pyarrow Table or Dataset) into a
    dataset at `out`; returns the manifest (dict).

    Streams INPUT in record batches of `batch_rows` (default: about 32Ki rows per partition,
    1-4Mi rows), so memory stays bounded by a few batches whatever INPUT's size.
    `progress(rows_done, rows_total or None)` is called after each batch.
    """
    table = source if isinstance(source, pa.Table) else None
    if table is not None or isinstance(source, ds.Dataset):
        dataset = ds.dataset(source) if table is not None else source
        fmt = "parquet" if table is not None or isinstance(getattr(source, "format", None), ds.ParquetFileFormat) \
            else "other"
        source = "<table>" if table is not None else "<dataset>"
    else:
        dataset, fmt = open_input(source, endpoint)
    key = [key] if isinstance(key, str) else list(key)
    schema = dataset.schema

    def key_table():
        try:
            return dataset.to_table(columns=key)
        except _ARROW_ERRORS as e:
            raise BadInput(f"INPUT: cannot read {source} ({e})") from None

    part = build_partitioner(strategy, key, schema, num_partitions, split_points, mapping_file, key_table)
    fs, path = store.arrow_filesystem(out, endpoint)
    info = _info(fs, path, out)
    if info.type == pafs.FileType.File or (info.type == pafs.FileType.Directory and
                                           fs.get_file_info(pafs.FileSelector(path, recursive=False))):
        raise BadInput(f"OUT: {out} already exists and is not empty; choose a new location")
    remote = _is_remote(fs)
    if remote and _info(fs, path.split("/")[0], out).type == pafs.FileType.NotFound:
        raise BadInput(f"OUT: bucket of {out} does not exist (or is not visible with these credentials)")
    # The staging location: a sibling directory locally (same filesystem, so rename works), a
    # local temporary directory for S3 and GCS (whose files are then uploaded, manifest last).
    stage_fs = pafs.LocalFileSystem()
    if remote:
        tmp = tempfile.mkdtemp(prefix="gpufleet-data-")
        os.rmdir(tmp)
    else:
        parent, name = posixpath.split(path.rstrip("/"))
        os.makedirs(parent, exist_ok=True)
        tmp = posixpath.join(parent, f".{name}.tmp-{uuid.uuid4().hex[:12]}")
    total = dataset.count_rows() if fmt == "parquet" else None
    done = 0

    batch_rows = batch_rows or batch_rows_for(part.num_partitions + 1)
    if table is not None:  # one contiguous chunk per batch: a read table comes in small chunks,
        # which took and wrote up to 2x slower (measured on 10M rows)
        source_batches = (table.slice(off, batch_rows).combine_chunks() for off in range(0, table.num_rows, batch_rows))
    elif fmt == "parquet" and isinstance(dataset, ds.FileSystemDataset):
        source_batches = _parquet_batches(dataset, schema, batch_rows)
    else:
        source_batches = iter(dataset.to_batches(batch_size=batch_rows, batch_readahead=1, fragment_readahead=1))
    try:
        os.makedirs(tmp)  # exists even when INPUT has no rows
        writer = PartitionWriter(tmp, schema, PARTITION_FIELD, max_rows_per_group=ROWS_PER_GROUP)
        try:
            while True:
                try:
                    batch = next(source_batches, None)
                except _ARROW_ERRORS as e:  # corrupt data pages, bad CSV rows: INPUT's fault
                    raise BadInput(f"INPUT: cannot read {source} ({e})") from None
                if batch is None:
                    break
                if isinstance(batch, pa.RecordBatch):
                    batch = pa.Table.from_batches([batch])
                writer.write(batch, part.assign(batch))
                done += batch.num_rows
                if progress:
                    progress(done, total)
        except BaseException:
            writer.abort()
            raise
        writer.close()
        manifest = _manifest(stage_fs, tmp, part, schema, source)
        if remote:
            _upload(tmp, out, manifest, endpoint)
        else:
            _publish_local(tmp, path, manifest)
    finally:
        _remove(stage_fs, tmp)
    return manifest


def _parquet_batches(dataset, schema, batch_rows):
    """Batches of each Parquet file in turn, pulled one at a time.

    Not `dataset.to_batches`: its scanner decodes ahead of a slower consumer without bound
    (1.2 GB of Arrow memory queued at 10M rows, whatever the readahead settings), while
    `ParquetFile.iter_batches` without pre-buffering holds about one row group.
    """
    for path in dataset.files:
        with dataset.filesystem.open_input_file(path) as fh:
            for batch in pq.ParquetFile(fh, pre_buffer=False).iter_batches(batch_size=batch_rows):
                if batch.schema != schema:  # files of one INPUT may order or type columns differently
                    batch = pa.Table.from_batches([batch]).select(schema.names).cast(schema).combine_chunks() \
                        .to_batches()[0]
                yield batch


def _manifest(fs, root, part, schema, source):
    """Describe the files under `root`: rows from Parquet footers, sizes, xxh64 of the bytes."""
    parts = {p: {"id": p, "rows": 0, "bytes": 0, "files": []} for p in range(part.num_partitions)}
    infos = [i for i in fs.get_file_info(pafs.FileSelector(root, recursive=True, allow_not_found=True))
             if i.type == pafs.FileType.File]
    for i in sorted(infos, key=lambda i: i.path):
        rel = posixpath.relpath(i.path, root)
        pid = int(rel.split("/")[0].split("=")[1])
        with fs.open_input_file(i.path) as fh:
            rows = pq.ParquetFile(fh).metadata.num_rows
        entry = parts.setdefault(pid, {"id": pid, "rows": 0, "bytes": 0, "files": []})
        entry["files"].append({"path": rel, "rows": rows, "bytes": i.size, "xxh64": checksum(fs, i.path)})
        entry["rows"] += rows
        entry["bytes"] += i.size
    plist = [parts[p] for p in sorted(parts)]
    m = {
        "format_version": FORMAT_VERSION,
        **part.to_manifest(),
        "null_partition": part.null_partition,
        "columns": [{"name": f.name, "type": str(f.type)} for f in schema],
        "schema": base64.b64encode(schema.serialize().to_pybytes()).decode(),
        "total_rows": sum(p["rows"] for p in plist),
        "total_bytes": sum(p["bytes"] for p in plist),
        "partitions": plist,
        "source": source,
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    m["fingerprint"] = fingerprint(m)
    return m


def fingerprint(manifest):
    """Identity of a dataset's content: xxh64 over its files' checksums and row counts."""
    h = xxhash.xxh64(seed=0)
    for p in manifest["partitions"]:
        for f in p["files"]:
            h.update(f"{f['path']}:{f['rows']}:{f['xxh64']};".encode())
    return h.hexdigest()


def checksum(fs, path, chunk=8 << 20):
    h = xxhash.xxh64(seed=0)
    with fs.open_input_stream(path) as fh:
        while True:
            b = fh.read(chunk)
            if not b:
                break
            h.update(b)
    return h.hexdigest()


def _publish_local(tmp, path, manifest):
    store.write_json(os.path.join(tmp, MANIFEST), manifest, indent=1)
    if os.path.isdir(path):
        os.rmdir(path)  # checked empty above
    os.rename(tmp, path)


def _upload(tmp, uri, manifest, endpoint):
    """Upload the staged files under the S3 or GCS location `uri`, the manifest last; on failure
    delete them.

    Uploads go through runtime.store.put_file (boto3's transfer manager, google-cloud-storage's
    uploads) rather than pyarrow's output streams: pyarrow's S3 stream always uses multipart
    uploads, whose completion moto 5.2.1 answers with a response pyarrow rejects
    (getmoto/moto#10055), and one upload path for both stores keeps their failures alike.
    """
    root = store.parse(uri)
    done = []
    try:
        for p in manifest["partitions"]:
            for f in p["files"]:
                dest = root.join(f["path"])
                store.put_file(os.path.join(tmp, f["path"]), dest, endpoint)
                done.append(dest)
        store.put_bytes(root.join(MANIFEST), json.dumps(manifest, indent=1).encode(), endpoint)
    except BaseException as e:
        for loc in done:
            try:
                store.delete(loc, endpoint)
            except OSError:
                pass
        if isinstance(e, store.StoreError):
            raise BadInput(f"OUT: cannot write to {uri} ({e.detail or e})") from None
        raise


def _remove(fs, path, is_dir=True):
    try:
        if is_dir:
            fs.delete_dir(path)
        else:
            fs.delete_file(path)
    except (OSError, pa.ArrowException):
        pass


def load_manifest(uri, endpoint=None):
    """The manifest of the dataset at `uri` (BadInput when there is none)."""
    fs, path = store.arrow_filesystem(uri, endpoint)
    mpath = posixpath.join(path, MANIFEST)
    try:
        with fs.open_input_stream(mpath) as fh:
            m = json.loads(fh.read())
    except FileNotFoundError:
        raise BadInput(f"{uri}: not a gpufleet dataset (no {MANIFEST}); create one with `gpufleet data partition`") from None
    except (OSError, pa.ArrowException, ValueError) as e:
        raise BadInput(f"{uri}: cannot read {MANIFEST} ({e})") from None
    return m


def manifest_schema(m):
    return pa.ipc.read_schema(pa.py_buffer(base64.b64decode(m["schema"])))


class Dataset:
    """An opened partitioned dataset: its manifest, schema, partitioner and filesystem."""

    def __init__(self, uri, endpoint=None, manifest=None):
        self.uri = uri
        self.fs, self.path = store.arrow_filesystem(uri, endpoint)
        self.manifest = manifest if manifest is not None else load_manifest(uri, endpoint)
        self.schema = manifest_schema(self.manifest)
        self.partitioner = P.from_manifest(self.manifest, self.schema)

    def files(self, partitions=None):
        """[(absolute path, rows, bytes)] in manifest order, for the given partition ids or all."""
        want = None if partitions is None else set(partitions)
        return [(posixpath.join(self.path, f["path"]), f["rows"], f["bytes"])
                for p in self.manifest["partitions"] if want is None or p["id"] in want for f in p["files"]]

    def arrow(self, partitions=None):
        files = [f for f, _, _ in self.files(partitions)]
        return ds.dataset(files, schema=self.schema, filesystem=self.fs, format="parquet")

    def read_table(self, columns=None, partitions=None, filter=None):
        try:
            return self.arrow(partitions).to_table(columns=columns, filter=filter)
        except _ARROW_ERRORS as e:
            raise BadInput(f"{self.uri}: cannot read the dataset ({e})") from None


def read_table(uri, columns=None, partitions=None, endpoint=None):
    """The rows of a partitioned dataset (local, s3:// or gs://) as one pyarrow Table, in manifest order."""
    return Dataset(uri, endpoint).read_table(columns, partitions)


def read_arrays(uri, columns=None, partitions=None, endpoint=None):
    """The dataset as {column: numpy array}: numeric columns zero-copy where Arrow allows,
    ready for `torch.from_numpy`; strings come back as object arrays."""
    t = read_table(uri, columns, partitions, endpoint)
    return {name: np.asarray(t.column(name).to_numpy()) for name in t.column_names}
