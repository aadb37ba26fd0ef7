"""Which worker (training rank or serving replica) owns which virtual partition.

The algorithm: rendezvous-ranked, load-bounded, grown one worker at a time.

- There are V virtual partitions (a dataset's partitions, or more: a key's virtual partition
  is its hash mod V) and workers 0..n-1.
- With one worker, worker 0 owns everything. Going from k to k+1 workers, the new worker k takes
  floor(V/(k+1)) virtual partitions, one at a time, each from a currently most loaded worker
  (ties: the lowest id), choosing among that donor's partitions the one that ranks highest for
  worker k under rendezvous hashing (score = xxh64(vpart, worker)). The assignment for n workers
  is this process run from 1 to n, so it is a pure function of (V, n): every process computes
  the same table without talking to the others.

Why not plain rendezvous or jump hashing: they place each virtual partition independently at
random, so with 16 per worker the most loaded worker typically holds ~1.5x the mean. Here the
guarantees are exact:

- Balance: loads always differ by at most one, so max <= ceil(V/n) and max/mean <= 1 + n/V,
  i.e. <= 1.0625 with at least 16 virtual partitions per worker. (Induction: before a step the
  loads are in {q', q'+1}; taking only from a maximum keeps the old workers within one of each
  other; with V = q(k+1) + r, the old workers end with total qk + r, so at most q + 1 each, and
  the new worker has q.)
- Movement: going n -> n+1 moves exactly floor(V/(n+1)) virtual partitions, all to the new
  worker: a fraction <= 1/(n+1), the ideal. Shrinking n+1 -> n is the same step undone.
  Workers are positional (ranks): removing a worker means removing the highest id. A serving
  fleet that loses replica 3 of 8 renumbers its survivors 0..6 in a stable order.

Cost: O(V log V) numpy work plus O(V/(k+1)) Python steps per worker added, memoized per (V, n).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass

import numpy as np

from runtime.data.hashing import hash_u64
from runtime.errors import BadInput


_CACHE = {}  # num_virtual -> {num_workers: owners}, a few sizes per V


def _grow(owner, num_virtual, num_workers):
    """One step k -> k+1 = num_workers (see the module docstring)."""
    owner = owner.copy()
    k = num_workers - 1  # the new worker's id
    take = num_virtual // num_workers
    if take == 0:
        return owner
    scores = hash_u64(np.arange(num_virtual, dtype=np.uint64), np.uint64(k))
    by_score = np.argsort(scores, kind="stable")[::-1]  # best-ranked for worker k first
    grouped = by_score[np.argsort(owner[by_score], kind="stable")]  # per worker, best first
    cursor = np.searchsorted(owner[grouped], np.arange(k))
    loads = np.bincount(owner, minlength=k)
    heap = [(-int(loads[w]), w) for w in range(k)]
    heapq.heapify(heap)
    for _ in range(take):
        neg, w = heapq.heappop(heap)
        owner[grouped[cursor[w]]] = k
        cursor[w] += 1
        heapq.heappush(heap, (neg + 1, w))
    return owner


def _owners(num_virtual, num_workers):
    known = _CACHE.setdefault(num_virtual, {1: np.zeros(num_virtual, np.int64)})
    start = max(n for n in known if n <= num_workers)
    owner = known[start]
    for n in range(start + 1, num_workers + 1):
        owner = _grow(owner, num_virtual, n)
    if len(known) > 8:
        known.pop(max(n for n in known if n != 1))
    known[num_workers] = owner
    return owner


def assign(num_virtual, num_workers):
    """Owner worker id of each virtual partition (numpy int64 array of length `num_virtual`)."""
    problems = []
    if num_virtual < 1:
        problems.append(f"virtual partitions: must be at least 1 (got {num_virtual})")
    if num_workers < 1:
        problems.append(f"workers: must be at least 1 (got {num_workers})")
    if problems:
        raise BadInput(problems)
    out = _owners(int(num_virtual), int(num_workers)).copy()
    out.setflags(write=False)
    return out


def partitions_of(worker, num_virtual, num_workers):
    """The virtual partitions `worker` owns, ascending."""
    return np.flatnonzero(assign(num_virtual, num_workers) == worker).tolist()


@dataclass(frozen=True)
class MoveReport:
    """What changes when a fleet goes from `old_workers` to `new_workers`.

    `moves` lists (virtual partition, from worker, to worker); `fraction` is the share of
    virtual partitions that move, `ideal` the least any scheme could move,
    |new - old| / max(new, old); `max_load`/`mean_load` describe the new assignment.
    """

    num_virtual: int
    old_workers: int
    new_workers: int
    moves: list
    fraction: float
    ideal: float
    max_load: int
    mean_load: float

    @property
    def skew(self):
        return self.max_load / self.mean_load


def plan_moves(num_virtual, old_workers, new_workers):
    """The move report between two fleet sizes (a rank or replica set resize)."""
    a, b = assign(num_virtual, old_workers), assign(num_virtual, new_workers)
    changed = np.flatnonzero(a != b)
    loads = np.bincount(b, minlength=new_workers)
    return MoveReport(
        num_virtual, old_workers, new_workers,
        [(int(v), int(a[v]), int(b[v])) for v in changed],
        len(changed) / num_virtual,
        abs(new_workers - old_workers) / max(new_workers, old_workers),
        int(loads.max()), num_virtual / new_workers)


def assign_partitions(manifest, num_workers):
    """{worker: [partition ids]} for a dataset's partitions (the null partition included when
    present). The balance bound needs >= 16 partitions per worker; with fewer, loads still
    differ by at most one partition."""
    ids = [p["id"] for p in manifest["partitions"] if p["rows"] > 0 or p["id"] < manifest["num_partitions"]]
    owner = assign(len(ids), num_workers)
    out = {w: [] for w in range(num_workers)}
    for i, pid in enumerate(ids):
        out[int(owner[i])].append(pid)
    return out
