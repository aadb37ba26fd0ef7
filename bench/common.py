"""What the benchmark scripts share: the repository root on sys.path, and where results go.

Each script runs as `python bench/NAME.py`, so this module is importable as `common`.
"""

from __future__ import annotations

import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "bench", "results")
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)


def save_result(name: str, result: dict) -> str:
    """Write `result` to bench/results/NAME.json (whole, or not at all); returns the path."""
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path + ".tmp", "w") as f:
        json.dump(result, f, indent=2)
    os.replace(path + ".tmp", path)
    return path
