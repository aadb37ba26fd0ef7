"""Model artifacts shared by training (writes them) and serving (loads them).

Public API: `save_artifact`, `load_artifact`, `Predictor`, and the modules
`LogisticRegression`, `KMeans`, `MLP`. See artifact.py for the on-disk format.
"""

from runtime.model.artifact import FORMAT_VERSION, Predictor, load_artifact, save_artifact
from runtime.model.modules import KMeans, LogisticRegression, MLP, build_module

__all__ = [
    "FORMAT_VERSION", "Predictor", "load_artifact", "save_artifact",
    "KMeans", "LogisticRegression", "MLP", "build_module",
]
