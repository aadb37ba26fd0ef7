"""Benchmark: distributed k-means (2 ranks) vs scikit-learn KMeans with 2 threads.

Issue 4's target: 1M x 32 float32 rows, k = 64, 20 Lloyd iterations from the same initial
centroids: the runtime's wall time over its iterations <= 1.0x scikit-learn's `fit` with 2
threads (threadpoolctl). The runtime runs as `launch(TrainConfig(workload="kmeans", nproc=2,
init_centroids=...))` over a partitioned dataset; its time is `train_time_s` from metrics.json
(the Lloyd loop: assignment, per-cluster sums, one all-reduce per iteration), not process start
or data loading. Both sides run in alternating rounds, each in a fresh process.

    .venv/bin/python bench/train_kmeans.py            # 1M rows, 3 rounds
    .venv/bin/python bench/train_kmeans.py --quick    # 200k rows, 2 rounds
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

from common import ROOT, save_result  # noqa: E402  (also puts the repository on sys.path)
K, F, ITERS = 64, 32, 20


def sklearn_child(path, init_path, out):
    import numpy as np
    import pyarrow.parquet as pq
    from sklearn.cluster import KMeans
    from threadpoolctl import threadpool_limits
    t = pq.read_table(path)
    x = np.stack([t.column(f"f{i}").to_numpy() for i in range(F)], 1).astype(np.float32)
    init = np.load(init_path)
    with threadpool_limits(2):
        t0 = time.perf_counter()
        km = KMeans(K, init=init, n_init=1, max_iter=ITERS, tol=0, algorithm="lloyd").fit(x)
        dt = time.perf_counter() - t0
    json.dump({"seconds": dt, "iterations": int(km.n_iter_)}, open(out, "w"))


def runtime_child(dataset, init_path, out):
    import numpy as np
    from runtime.train import TrainConfig, launch, validate
    cfg = TrainConfig(workload="kmeans", data=dataset, k=K, epochs=ITERS, test_fraction=0.0, nproc=2, out=out,
                      init_centroids=np.load(init_path).tolist(), tol=-1.0, log_every_s=1000)
    launch(validate(cfg))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--rounds", type=int)
    ap.add_argument("--child", nargs="*")
    a = ap.parse_args()
    if a.child:
        return sklearn_child(*a.child[1:]) if a.child[0] == "sklearn" else runtime_child(*a.child[1:])
    rows = 200_000 if a.quick else 1_000_000
    rounds = a.rounds or (2 if a.quick else 3)
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from runtime.data import write_partitioned
    tmp = tempfile.mkdtemp(prefix="bench-kmeans-")
    rng = np.random.default_rng(0)
    centers = rng.normal(scale=4, size=(K, F))
    x = (centers[rng.integers(0, K, rows)] + rng.normal(size=(rows, F))).astype(np.float32)
    cols = {f"f{i}": x[:, i] for i in range(F)}
    raw = os.path.join(tmp, "raw.parquet")
    pq.write_table(pa.table(cols), raw)
    dataset = os.path.join(tmp, "ds")
    write_partitioned(pa.table({**cols, "id": np.arange(rows)}), dataset, "hash", "id", num_partitions=4)
    init = x[rng.choice(rows, K, replace=False)]
    init_path = os.path.join(tmp, "init.npy")
    np.save(init_path, init)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}
    res = {"sklearn_2_threads": [], "runtime_2_ranks": []}
    for r in range(rounds):
        for side in (["sklearn", "runtime"] if r % 2 == 0 else ["runtime", "sklearn"]):
            out = os.path.join(tmp, f"{side}-{r}")
            args = [raw, init_path, out + ".json"] if side == "sklearn" else [dataset, init_path, out]
            e = env if side == "runtime" else {k: v for k, v in env.items() if k != "OMP_NUM_THREADS"}
            subprocess.run([sys.executable, __file__, "--child", side, *args], env=e, check=True,
                           capture_output=side == "runtime")
            if side == "sklearn":
                v = json.load(open(out + ".json"))["seconds"]
                res["sklearn_2_threads"].append(v)
            else:
                m = json.load(open(os.path.join(out, "metrics.json")))
                v = m["train_time_s"]
                res["runtime_2_ranks"].append(v)
            print(f"round {r + 1}/{rounds} {side:8s} {v:6.2f} s", file=sys.stderr, flush=True)
    ratios = [a_ / b_ for a_, b_ in zip(res["runtime_2_ranks"], res["sklearn_2_threads"])]
    summary = {"rows": rows, "features": F, "k": K, "iterations": ITERS, "rounds": rounds, "seconds": res,
               "runtime_over_sklearn": statistics.median(ratios), "target": "<= 1.0"}
    print(f"{'':24s}{'runtime 2 ranks':>16s}{'sklearn 2 thr':>15s}")
    print(f"{'median wall time (s)':24s}{statistics.median(res['runtime_2_ranks']):16.2f}"
          f"{statistics.median(res['sklearn_2_threads']):15.2f}")
    print(f"ratio runtime / sklearn: {summary['runtime_over_sklearn']:.2f}x")
    save_result("train_kmeans", summary)


if __name__ == "__main__":
    main()
