"""Workload quality against scikit-learn, in one process (the same code path as every rank)."""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest
import torch

from runtime.model import load_artifact
from runtime.train import TrainConfig, launch, validate
from runtime.train.data import split_mask
from runtime.train import kmeans as km

sys.path.insert(0, os.path.dirname(__file__))
from train_helpers import breast_cancer_csv, metrics, write_csv  # noqa: E402


def test_logreg_matches_sklearn_lbfgs_optimum(tmp_path):
    from sklearn.linear_model import LogisticRegression as SkLR
    from sklearn.preprocessing import StandardScaler

    path, x, y = breast_cancer_csv(tmp_path)
    test = split_mask(len(y), 0.2, 0)
    n = int((~test).sum())
    C = 1.0
    l2 = 2.0 / (C * n)  # ours: mean loss + l2/2 ||W||^2 over 2 symmetric logit rows == sklearn's 1/(2Cn) ||v||^2
    out = tmp_path / "run"
    cfg = validate(TrainConfig(workload="logreg", data=path, label="target", out=str(out), l2=l2, dtype="float64"))
    assert launch(cfg) == 0
    m = metrics(out)

    sc = StandardScaler().fit(x[~test])
    sk = SkLR(C=C, solver="lbfgs", tol=1e-12, max_iter=10000).fit(sc.transform(x[~test]), y[~test])
    z = sc.transform(x[~test]) @ sk.coef_[0] + sk.intercept_[0]
    sk_obj = np.mean(np.logaddexp(0, -z * (2 * y[~test] - 1))) + l2 / 4 * float(sk.coef_[0] @ sk.coef_[0])
    assert abs(m["final_loss"] - sk_obj) / sk_obj < 1e-4, (m["final_loss"], sk_obj)
    assert m["accuracy"] == pytest.approx(sk.score(sc.transform(x[test]), y[test]))
    assert m["steps"] <= 300 and m["samples_per_s"] > 0

    pred = load_artifact(out).predict(x[test].astype(np.float32))
    assert np.mean(np.array(pred) == y[test]) == pytest.approx(m["accuracy"])


def _blobs(n=3000, seed=0):
    from sklearn.datasets import make_blobs
    centers = np.array([[0, 0], [6, 6], [-6, 6], [6, -6], [-6, -6]], dtype=float)
    x, _ = make_blobs(n_samples=n, centers=centers, cluster_std=1.2, random_state=seed)
    return x


def test_kmeans_inertia_within_one_percent_of_sklearn(tmp_path):
    from sklearn.cluster import KMeans as SkKMeans

    x = _blobs()
    path = write_csv(tmp_path / "blobs.csv", x)
    out = tmp_path / "km"
    cfg = validate(TrainConfig(workload="kmeans", data=path, k=5, out=str(out), test_fraction=0.0, dtype="float64"))
    assert launch(cfg) == 0
    m = metrics(out)
    best = SkKMeans(5, n_init=10, random_state=0).fit(x)
    exact_best = km.inertia(torch.from_numpy(x), torch.from_numpy(best.cluster_centers_))
    assert m["inertia"] <= 1.01 * exact_best
    assert load_artifact(out).predict(x[:5].astype(np.float32)) is not None


def test_kmeans_same_init_matches_sklearn_final_centers():
    from sklearn.cluster import KMeans as SkKMeans

    x = _blobs(4000, seed=1)
    xt = torch.from_numpy(x)
    init = km.kmeans_pp(xt, 5, seed=3)
    sk = SkKMeans(5, init=init.numpy(), n_init=1, max_iter=300, tol=0, algorithm="lloyd").fit(x)
    theirs = km.inertia(xt, torch.from_numpy(sk.cluster_centers_))
    for fit in (km.lloyd, km.lloyd_bounded):
        c, _ = fit(xt, init.clone(), max_iter=300)
        assert abs(km.inertia(xt, c) - theirs) / theirs < 1e-6, fit.__name__


def test_mlp_classifier_writes_a_servable_artifact(tmp_path):
    from sklearn.datasets import make_classification
    x, y = make_classification(n_samples=1200, n_features=10, n_informative=6, n_classes=3, random_state=0)
    path = write_csv(tmp_path / "cls.csv", x, y)
    out = tmp_path / "mlp"
    cfg = validate(TrainConfig(workload="mlp", data=path, label="target", out=str(out), hidden=[32, 32],
                               epochs=15, batch_size=64, lr=3e-3))
    assert launch(cfg) == 0
    m = metrics(out)
    assert m["accuracy"] > 0.8 and m["loss_curve"][-1] < m["loss_curve"][0]
    p = load_artifact(out)
    assert p.kind == "mlp" and len(p.predict(x[:7].astype(np.float32))) == 7


def test_streaming_shard_reads_match_in_memory(tmp_path):
    """Rows read from the dataset's files, this rank's only, give the same model as rows from memory."""
    from sklearn.datasets import make_classification
    import torch as t
    x, y = make_classification(n_samples=700, n_features=6, n_classes=2, random_state=1)
    path = write_csv(tmp_path / "c.csv", x, y)
    outs = []
    for name, limit in (("mem", 2 << 30), ("stream", 0)):
        out = tmp_path / name
        cfg = validate(TrainConfig(workload="mlp", data=path, label="target", out=str(out), hidden=[8], epochs=2,
                                   batch_size=32, in_memory_limit_bytes=limit))
        assert launch(cfg) == 0
        outs.append(t.load(out / "weights.pt", weights_only=True))
    for k in outs[0]:
        assert t.allclose(outs[0][k], outs[1][k], atol=1e-5), k
