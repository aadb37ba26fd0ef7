"""runtime.data: partitioned datasets, partition-aware queries, worker assignment, elastic sharding.

Large datasets are split into partitions that are stored, read and queried independently, and
that training ranks and serving replicas own (seed section 3.1). One module per concept:

| module | what it holds |
|---|---|
| `hashing` | the stable 64-bit key hash: xxh64 over a canonical encoding, vectorized in numpy |
| `partitioners` | `hash`, `range`, `key` partitioners; null keys go to the null partition (id N) |
| `storage` | the atomic writer, `_manifest.json`, readers; local paths, `s3://` and `gs://bucket/prefix` |
| `query` | `COL = V` / `COL BETWEEN A AND B`, reading only partitions that can match |
| `assignment` | virtual partitions -> workers, balanced, with move reports for resizes |
| `sharding` | the deterministic global sample order of an epoch, per-rank iteration, the cursor |
| `cli` | `gpufleet data partition|inspect|query` |

Writing and reading:

    write_partitioned(source, out, strategy, key, num_partitions=None, split_points=None,
                      mapping_file=None, endpoint=None, progress=None) -> manifest dict
        source: a CSV/Parquet file or directory (local, s3:// or gs://), or a pyarrow Table/Dataset.
    load_manifest(uri) -> dict          Dataset(uri) -> .manifest .schema .partitioner .files()
    read_table(uri, columns=None, partitions=None) -> pyarrow.Table
    read_arrays(uri, columns=None, partitions=None) -> {column: numpy array}  (torch.from_numpy-ready)
    query(uri, "id = 42", limit=None, columns=None) -> QueryResult(table, partitions_scanned,
                                                                   partitions_total, bytes_scanned, bytes_total)

Workers (training ranks, serving replicas):

    assign(num_virtual, num_workers) -> owner per virtual partition (numpy array)
    partitions_of(worker, num_virtual, num_workers) -> [virtual partitions]
    assign_partitions(manifest, num_workers) -> {worker: [partition ids]}
    plan_moves(num_virtual, old_workers, new_workers) -> MoveReport(moves=[(vpart, from, to)],
                                                                     fraction, ideal, max_load, mean_load)
    Guarantees: n -> n+1 moves floor(V/(n+1)) virtual partitions, all to the new worker;
    loads differ by at most one, so max/mean <= 1 + n/V.

Training (the API runtime.train consumes):

    sampler = ShardedSampler(uri_or_manifest, seed, epoch, rank, world_size, cursor=None,
                             batch_size=1024, block_size=65536, drop_last=False, columns=None)
    for batch in sampler.iter_batches():     # pyarrow RecordBatch, this rank's rows of one step
        arrays = to_numpy(batch)             # {column: numpy array}
        ...train one step...
        state["data"] = sampler.cursor()     # {epoch, position, seed, num_samples, fingerprint}
    sampler.iter_indices()                   # the same steps as int64 sample-id arrays, no I/O
    sampler.set_epoch(epoch + 1)

    Resuming: ShardedSampler(uri, seed, rank=r, world_size=W2, cursor=state["data"]) continues
    the same global order at the saved position with any world size: no sample is lost or
    repeated. The order is a pure function of (the manifest's fingerprint, seed, epoch); steps
    are taken in lockstep by all ranks (see runtime.data.sharding); memory is bounded by a
    few row groups plus one batch, whatever the dataset's size.

User errors raise runtime.errors.BadInput with a message naming the flag, input or column.
"""

from runtime.data.assignment import MoveReport, assign, assign_partitions, partitions_of, plan_moves
from runtime.data.query import QueryResult, parse_where, query
from runtime.data.sharding import GlobalOrder, ShardedSampler, to_numpy
from runtime.data.storage import Dataset, load_manifest, read_arrays, read_table, write_partitioned

__all__ = [
    "Dataset", "GlobalOrder", "MoveReport", "QueryResult", "ShardedSampler", "assign", "assign_partitions",
    "load_manifest", "parse_where", "partitions_of", "plan_moves", "query", "read_arrays", "read_table",
    "to_numpy", "write_partitioned",
]
