"""What the serving agent reads on its instance: the local replica's in-flight count and GPU use.

Instance metadata (IMDSv2) is `runtime.imds.InstanceMetadata`, shared with training.
"""

from __future__ import annotations

import urllib.request

from runtime.serve.metrics import parse_metrics


def read_inflight(server_url: str, timeout_s: float = 1.0) -> float | None:
    """A replica's current in-flight requests from its /metrics, or None if it does not answer."""
    try:
        with urllib.request.urlopen(f"{server_url.rstrip('/')}/metrics", timeout=timeout_s) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    return parse_metrics(text)[0]


def gpu_utilization() -> float | None:
    """Mean GPU utilization (percent) over this instance's GPUs via NVML; None without a GPU.

    NVML comes from the `nvidia-ml-py` package (module `pynvml`), present on GPU images only.
    """
    try:
        import pynvml
    except ImportError:
        return None
    try:
        pynvml.nvmlInit()
    except Exception:  # no driver: a CPU instance
        return None
    try:
        n = pynvml.nvmlDeviceGetCount()
        if n == 0:
            return None
        return sum(pynvml.nvmlDeviceGetUtilizationRates(pynvml.nvmlDeviceGetHandleByIndex(i)).gpu for i in range(n)) / n
    finally:
        pynvml.nvmlShutdown()
