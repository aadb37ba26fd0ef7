"""Deterministic, elastic sharding of a partitioned dataset for data-parallel training.

The global order. Samples are numbered 0..R-1 in manifest order (partition by partition, file
by file, row by row). An epoch's global order is a permutation of them that depends only on
(the dataset's fingerprint, seed, epoch):

- samples are cut into blocks of `block_size` consecutive ids (a power of two); the blocks are
  shuffled, then the ids inside each block are shuffled;
- both shuffles are keyed 4-round Feistel networks over xxh64 with cycle walking, so position
  -> sample id is computed on demand, for any slice of positions, in O(slice) time; the only
  state is the shuffled block list, R / block_size integers. Memory stays bounded whatever R,
  and the order is the same on every machine and numpy version (no RNG stream is involved).

Ranks and the cursor. Training steps consume the global order in lockstep: at a step starting
at global position `pos`, rank r of W takes positions [pos + r*b, pos + (r+1)*b) with b the
per-rank batch size, and all ranks advance `pos` by W*b. What has been consumed is therefore
always the prefix [0, pos), and the cursor `{epoch, position}` (plus seed and fingerprint, to
refuse a different dataset) says everything. Resuming with another world size W' continues at
`pos` with steps of W'*b: no sample is lost or repeated. When fewer than W*b samples remain,
they are split as evenly as possible (shares differ by at most one; a rank whose share is
empty gets no batch); `drop_last=True` skips that tail instead, which keeps DDP's collectives
matched.

`cursor()` counts the batch last yielded as consumed: save it after the step that used it.

Reading. `iter_batches` maps each batch's sample ids to (file, row group, row), reads the
row groups it needs (a small LRU of them stays open, so a block's rows are decoded once per
visit), and yields one pyarrow RecordBatch in global order. Memory is bounded by the cache
(a few row groups of at most storage.ROWS_PER_GROUP = 128Ki rows) plus the batch.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import xxhash

from runtime.data.hashing import hash_u64
from runtime.data.storage import Dataset
from runtime.errors import BadInput

_U = np.uint64
_BLOCK_KEY = np.uint64(1 << 63)  # distinguishes the block shuffle from in-block shuffles


def _bits(n):
    b = max(2, int(n - 1).bit_length())
    return b + (b & 1)  # even, so the Feistel halves are equal


def _feistel(x, key, bits, seed):
    half = _U(bits // 2)
    mask = _U((1 << (bits // 2)) - 1)
    left, right = x >> half, x & mask
    for r in range(4):
        left, right = right, left ^ (hash_u64(right, key, _U(r), seed=seed) & mask)
    return (left << half) | right


def permute(x, n, key, bits, seed):
    """A bijection of [0, n) (n may differ per element, all <= 2**bits) applied to `x`."""
    x = np.asarray(x, _U)
    key = np.broadcast_to(np.asarray(key, _U), x.shape).copy()
    n = np.broadcast_to(np.asarray(n, _U), x.shape)
    y = _feistel(x, key, bits, seed)
    bad = np.flatnonzero(y >= n)
    while bad.size:  # cycle walking: re-encrypt until back inside [0, n)
        y[bad] = _feistel(y[bad], key[bad], bits, seed)
        bad = bad[y[bad] >= n[bad]]
    return y


class GlobalOrder:
    """Position -> sample id for one epoch; a pure function of (R, block_size, fingerprint, seed, epoch)."""

    def __init__(self, num_samples, seed, epoch, fingerprint="", block_size=1 << 16):
        if block_size < 1 or block_size & (block_size - 1):
            raise BadInput(f"block_size: must be a power of two (got {block_size})")
        self.num_samples, self.block_size = int(num_samples), int(block_size)
        self.seed = xxhash.xxh64_intdigest(f"{fingerprint}/{int(seed)}/{int(epoch)}".encode())
        nblocks = -(-self.num_samples // self.block_size)
        self.sizes = np.full(nblocks, self.block_size, np.int64)
        if nblocks:
            self.sizes[-1] = self.num_samples - (nblocks - 1) * self.block_size
        self.order = permute(np.arange(nblocks, dtype=_U), nblocks, _BLOCK_KEY, _bits(nblocks), self.seed).astype(np.int64)
        self.starts = np.concatenate([[0], np.cumsum(self.sizes[self.order])])[:-1]

    def samples(self, lo, hi):
        """Sample ids at global positions [lo, hi)."""
        p = np.arange(lo, hi, dtype=np.int64)
        i = np.searchsorted(self.starts, p, side="right") - 1
        blk = self.order[i]
        within = permute((p - self.starts[i]).astype(_U), self.sizes[blk].astype(_U), blk.astype(_U),
                         _bits(self.block_size), self.seed)
        return blk * self.block_size + within.astype(np.int64)


class ShardedSampler:
    """This rank's share of an epoch's global order, resumable from a cursor at any world size.

    `source`: a dataset location (local, s3:// or gs://), an opened `Dataset`, or a manifest dict (then
    only `iter_indices` works). `cursor`: a dict from `cursor()`; it overrides `epoch`.
    """

    def __init__(self, source, seed=0, epoch=0, rank=0, world_size=1, cursor=None, batch_size=1024,
                 block_size=1 << 16, drop_last=False, columns=None, endpoint=None, cache_row_groups=4):
        problems = []
        if world_size < 1:
            problems.append(f"world_size: must be at least 1 (got {world_size})")
        elif not 0 <= rank < world_size:
            problems.append(f"rank: must be in 0..{world_size - 1} (got {rank})")
        if batch_size < 1:
            problems.append(f"batch_size: must be at least 1 (got {batch_size})")
        if problems:
            raise BadInput(problems)
        if isinstance(source, dict):
            self.dataset, self.manifest = None, source
        else:
            self.dataset = source if isinstance(source, Dataset) else Dataset(source, endpoint)
            self.manifest = self.dataset.manifest
        self.num_samples = int(self.manifest["total_rows"])
        self.fingerprint = self.manifest.get("fingerprint", "")
        self.seed, self.rank, self.world_size = int(seed), rank, world_size
        self.batch_size, self.block_size, self.drop_last = batch_size, block_size, drop_last
        self.columns = columns
        self.epoch, self.position = int(epoch), 0
        if cursor is not None:
            if cursor.get("fingerprint", self.fingerprint) != self.fingerprint:
                raise BadInput("cursor: was saved for a different dataset (fingerprint "
                               f"{cursor.get('fingerprint')} != {self.fingerprint})")
            if int(cursor.get("seed", self.seed)) != self.seed:
                raise BadInput(f"cursor: was saved with seed {cursor['seed']}, not {self.seed}")
            self.epoch, self.position = int(cursor["epoch"]), int(cursor["position"])
            if not 0 <= self.position <= self.num_samples:
                raise BadInput(f"cursor: position {self.position} is outside 0..{self.num_samples}")
        self._order = None
        self._cache = OrderedDict()
        self._cache_size = cache_row_groups
        self._file_meta = {}

    def set_epoch(self, epoch):
        """Start epoch `epoch` from its beginning."""
        self.epoch, self.position, self._order = int(epoch), 0, None

    def cursor(self):
        """Where the fleet stands, for a checkpoint: the same dict on every rank."""
        return {"epoch": self.epoch, "position": self.position, "seed": self.seed,
                "num_samples": self.num_samples, "fingerprint": self.fingerprint}

    def order(self):
        if self._order is None:
            self._order = GlobalOrder(self.num_samples, self.seed, self.epoch, self.fingerprint, self.block_size)
        return self._order

    def share(self, pos):
        """(lo, hi, next_pos): this rank's positions in the step starting at `pos`."""
        w, b, r, total = self.world_size, self.batch_size, self.rank, self.num_samples
        if total - pos >= w * b:
            return pos + r * b, pos + (r + 1) * b, pos + w * b
        if self.drop_last:
            return pos, pos, total
        q, extra = divmod(total - pos, w)
        lo = pos + r * q + min(r, extra)
        return lo, lo + q + (r < extra), total

    def iter_indices(self):
        """Yield this rank's sample ids (int64 arrays), step by step, to the epoch's end."""
        order = self.order()
        while self.position < self.num_samples:
            lo, hi, nxt = self.share(self.position)
            self.position = nxt
            if hi > lo:
                yield order.samples(lo, hi)

    def iter_batches(self):
        """Yield this rank's rows as pyarrow RecordBatches, in global order."""
        if self.dataset is None:
            raise BadInput("ShardedSampler: reading rows needs a dataset location, not only a manifest")
        files = self.dataset.files()
        starts = np.concatenate([[0], np.cumsum([rows for _, rows, _ in files])])
        for ids in self.iter_indices():
            yield self._read(ids, files, starts)

    def _row_groups(self, path):
        if path not in self._file_meta:
            with self.dataset.fs.open_input_file(path) as fh:
                md = pq.ParquetFile(fh).metadata
            self._file_meta[path] = np.concatenate([[0], np.cumsum([md.row_group(g).num_rows
                                                                    for g in range(md.num_row_groups)])])
        return self._file_meta[path]

    def _group(self, path, g):
        k = (path, g)
        if k in self._cache:
            self._cache.move_to_end(k)
            return self._cache[k]
        with self.dataset.fs.open_input_file(path) as fh:
            t = pq.ParquetFile(fh).read_row_group(g, columns=self.columns)
        self._cache[k] = t
        while len(self._cache) > self._cache_size:
            self._cache.popitem(last=False)
        return t

    def _read(self, ids, files, starts):
        fi = np.searchsorted(starts, ids, side="right") - 1
        row = ids - starts[fi]
        pieces, where = [], []
        for f in np.unique(fi):
            sel = np.flatnonzero(fi == f)
            path = files[f][0]
            rg = self._row_groups(path)
            g = np.searchsorted(rg, row[sel], side="right") - 1
            for gg in np.unique(g):
                s2 = sel[g == gg]
                pieces.append(self._group(path, int(gg)).take(pa.array(row[s2] - rg[gg])))
                where.append(s2)
        table = pa.concat_tables(pieces) if pieces else self.dataset.schema.empty_table()
        if where:
            table = table.take(pa.array(np.argsort(np.concatenate(where), kind="stable")))
        return table.combine_chunks().to_batches()[0] if table.num_rows else pa.RecordBatch.from_pylist([], table.schema)


def to_numpy(batch):
    """{column: numpy array} for a RecordBatch; numeric columns suit `torch.from_numpy`."""
    return {name: batch.column(i).to_numpy(zero_copy_only=False) for i, name in enumerate(batch.schema.names)}
