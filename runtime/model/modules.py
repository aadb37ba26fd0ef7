"""The three model kinds a stack trains and serves, as torch modules.

Every module maps a float32 batch `[n, n_features]` to one output row per input row, and
`decide(output)` turns that output into integer indices (a class or a cluster). Keeping the
decision separate lets training use the raw output (logits, distances) for its loss while
serving only needs the index.

Feature standardization is part of the module (buffers `mean`/`std`), so a saved state_dict is
self-contained: the server never re-implements preprocessing that training did.
"""

from __future__ import annotations

import torch
from torch import nn


class _Standardize(nn.Module):
    """(x - mean) / std with buffers saved in the state_dict; identity when std is all ones."""

    def __init__(self, n_features: int):
        super().__init__()
        self.register_buffer("mean", torch.zeros(n_features))
        self.register_buffer("std", torch.ones(n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


class LogisticRegression(nn.Module):
    """Multinomial logistic regression: one linear layer; output = logits `[n, n_classes]`.

    Two classes still use two logits (softmax), so binary and multiclass share one code path.
    """

    kind = "logreg"

    def __init__(self, n_features: int, n_classes: int = 2):
        super().__init__()
        self.standardize = _Standardize(n_features)
        self.linear = nn.Linear(n_features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.linear(self.standardize(x))

    @staticmethod
    def decide(output: torch.Tensor) -> torch.Tensor:
        return output.argmax(dim=1)


class KMeans(nn.Module):
    """k-means as a module: buffer `centroids [k, n_features]`; output = squared distances `[n, k]`.

    `decide` picks the nearest centroid. The centroids are a buffer, not a parameter, because
    k-means updates them by assignment (Lloyd's step), not by gradient.
    """

    kind = "kmeans"

    def __init__(self, n_features: int, k: int):
        super().__init__()
        self.standardize = _Standardize(n_features)
        self.register_buffer("centroids", torch.zeros(k, n_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.standardize(x)
        # ||x - c||^2 = ||x||^2 - 2 x.c + ||c||^2: one matmul instead of an [n, k, f] tensor.
        return (x * x).sum(1, keepdim=True) - 2 * x @ self.centroids.T + (self.centroids**2).sum(1)

    @staticmethod
    def decide(output: torch.Tensor) -> torch.Tensor:
        return output.argmin(dim=1)


class MLP(nn.Module):
    """A ReLU multilayer perceptron classifier; output = logits `[n, n_classes]`.

    `hidden` lists the widths of the hidden layers, e.g. (256, 256). Layers live in one
    `nn.Sequential` named `layers`, so state_dict keys are `layers.0.weight`, `layers.2.weight`, ...
    """

    kind = "mlp"

    def __init__(self, n_features: int, n_classes: int = 2, hidden: tuple[int, ...] = (64,)):
        super().__init__()
        self.standardize = _Standardize(n_features)
        widths = [n_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(widths, widths[1:]):
            layers += [nn.Linear(a, b), nn.ReLU()]
        layers.append(nn.Linear(widths[-1], n_classes))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(self.standardize(x))

    @staticmethod
    def decide(output: torch.Tensor) -> torch.Tensor:
        return output.argmax(dim=1)


KINDS = {"logreg": LogisticRegression, "kmeans": KMeans, "mlp": MLP}


def build_module(meta: dict) -> nn.Module:
    """Construct an untrained module of the shape `meta` (a parsed model.json) describes."""
    kind, n = meta["kind"], int(meta["n_features"])
    if kind == "logreg":
        return LogisticRegression(n, len(meta["classes"]))
    if kind == "kmeans":
        return KMeans(n, int(meta["k"]))
    if kind == "mlp":
        return MLP(n, len(meta["classes"]), tuple(int(h) for h in meta["hidden"]))
    raise ValueError(f"unknown model kind {kind!r}")
