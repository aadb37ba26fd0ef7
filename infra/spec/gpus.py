"""The GPU instance types gpufleet knows, per cloud, with GPUs per instance.

Scale up (a bigger instance) is the instance type; scale out is the fleet's size. The tables
let the spec check that `gpus_per_node` matches the instance type, and let the runtime
start one training rank per GPU. Sizes come from the clouds' published instance tables.

AWS: instance families and sizes. GCP: accelerator-optimized machine types with built-in GPUs,
N1 types with attached GPUs (allowed counts and vCPU limits per accelerator), and which zones
of a region offer each accelerator (a static table; a live check asks the project).
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class GpuFamily:
    gpu: str
    gpu_memory_gib: int
    sizes: dict[str, int]  # size suffix -> GPUs per instance


AWS_GPU_FAMILIES: dict[str, GpuFamily] = {
    "g4dn": GpuFamily("NVIDIA T4", 16, {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "metal": 8}),
    "g5": GpuFamily("NVIDIA A10G", 24, {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "g6": GpuFamily("NVIDIA L4", 24, {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "g6e": GpuFamily("NVIDIA L40S", 48, {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 1, "12xlarge": 4, "24xlarge": 4, "48xlarge": 8}),
    "p3": GpuFamily("NVIDIA V100", 16, {"2xlarge": 1, "8xlarge": 4, "16xlarge": 8}),
    "p3dn": GpuFamily("NVIDIA V100", 32, {"24xlarge": 8}),
    "p4d": GpuFamily("NVIDIA A100", 40, {"24xlarge": 8}),
    "p4de": GpuFamily("NVIDIA A100", 80, {"24xlarge": 8}),
    "p5": GpuFamily("NVIDIA H100", 80, {"48xlarge": 8}),
    "p5e": GpuFamily("NVIDIA H200", 141, {"48xlarge": 8}),
    "p5en": GpuFamily("NVIDIA H200", 141, {"48xlarge": 8}),
    # Graviton (arm64) with NVIDIA T4G: the one AWS GPU family that is not x86_64.
    "g5g": GpuFamily("NVIDIA T4G", 16, {"xlarge": 1, "2xlarge": 1, "4xlarge": 1, "8xlarge": 1, "16xlarge": 2, "metal": 2}),
}
# CPU architecture of an instance type, as `uname -m` and manylinux wheel tags name it. The GPU
# families above are x86_64 but these (Graviton); every GCP GPU machine type gpufleet knows is x86_64.
AARCH64_FAMILIES = frozenset({"g5g"})
ARCHS = ("x86_64", "aarch64")


def arch_of(instance_type: str) -> str:
    """"x86_64" or "aarch64" for an instance (or GCP machine) type."""
    return "aarch64" if instance_type.partition(".")[0] in AARCH64_FAMILIES else "x86_64"


def gpus_for(instance_type: str) -> int | None:
    """GPUs per instance for a known AWS GPU instance type, else None."""
    family, _, size = instance_type.partition(".")
    entry = AWS_GPU_FAMILIES.get(family)
    if entry is None:
        return None
    return entry.sizes.get(size)


def known_instance_types() -> list[str]:
    return [f"{fam}.{size}" for fam, entry in AWS_GPU_FAMILIES.items() for size in entry.sizes]


# -- GCP ----------------------------------------------------------------------------------------
# Two kinds of GPU machine types. Accelerator-optimized series (a2, a3, g2) come with their GPUs
# built in: the machine type fixes the accelerator and its count. General-purpose N1 types take
# GPUs attached to them (`gpus: {type, count}` in the spec), in the counts an accelerator allows
# and only up to a vCPU limit per count.


@dataclass(frozen=True)
class GcpAccelerator:
    """An accelerator type as Compute Engine names it (`nvidia-tesla-t4`)."""

    gpu: str
    gpu_memory_gib: int
    # N1 only: GPUs per VM -> most vCPUs an N1 machine type may have with that many (None: not attachable)
    n1_max_vcpus: dict[int, int] | None = None


GCP_ACCELERATORS: dict[str, GcpAccelerator] = {
    "nvidia-tesla-t4": GcpAccelerator("NVIDIA T4", 16, {1: 48, 2: 48, 4: 96}),
    "nvidia-tesla-v100": GcpAccelerator("NVIDIA V100", 16, {1: 12, 2: 24, 4: 48, 8: 96}),
    "nvidia-tesla-a100": GcpAccelerator("NVIDIA A100 40GB", 40),
    "nvidia-a100-80gb": GcpAccelerator("NVIDIA A100 80GB", 80),
    "nvidia-l4": GcpAccelerator("NVIDIA L4", 24),
    "nvidia-h100-80gb": GcpAccelerator("NVIDIA H100 80GB", 80),
    "nvidia-h100-mega-80gb": GcpAccelerator("NVIDIA H100 80GB Mega", 80),
}


@dataclass(frozen=True)
class GcpMachineSeries:
    """An accelerator-optimized machine series: its accelerator and GPUs per machine type."""

    accelerator: str
    types: dict[str, int]  # machine type -> built-in GPUs


GCP_GPU_SERIES: dict[str, GcpMachineSeries] = {
    "a2-highgpu": GcpMachineSeries("nvidia-tesla-a100", {"a2-highgpu-1g": 1, "a2-highgpu-2g": 2, "a2-highgpu-4g": 4,
                                                         "a2-highgpu-8g": 8}),
    "a2-megagpu": GcpMachineSeries("nvidia-tesla-a100", {"a2-megagpu-16g": 16}),
    "a2-ultragpu": GcpMachineSeries("nvidia-a100-80gb", {"a2-ultragpu-1g": 1, "a2-ultragpu-2g": 2, "a2-ultragpu-4g": 4,
                                                         "a2-ultragpu-8g": 8}),
    "a3-highgpu": GcpMachineSeries("nvidia-h100-80gb", {"a3-highgpu-8g": 8}),
    "a3-megagpu": GcpMachineSeries("nvidia-h100-mega-80gb", {"a3-megagpu-8g": 8}),
    "g2-standard": GcpMachineSeries("nvidia-l4", {"g2-standard-4": 1, "g2-standard-8": 1, "g2-standard-12": 1,
                                                  "g2-standard-16": 1, "g2-standard-24": 2, "g2-standard-32": 1,
                                                  "g2-standard-48": 4, "g2-standard-96": 8}),
}
# General-purpose types that take attached GPUs: n1-standard-8, n1-highmem-16, ...
N1_TYPE = re.compile(r"^n1-(standard|highmem|highcpu)-(1|2|4|8|16|32|64|96)$")

# Which zones of a region offer each accelerator: a static snapshot of Google's "GPU regions
# and zones" table (2025) for the regions gpufleet knows. Availability changes; the live check
# against a project (infra/targets/gcp_preflight.py) asks the Compute API's acceleratorTypes.
_T4, _V100, _A100, _A100_80, _L4, _H100, _H100M = (
    "nvidia-tesla-t4", "nvidia-tesla-v100", "nvidia-tesla-a100", "nvidia-a100-80gb", "nvidia-l4",
    "nvidia-h100-80gb", "nvidia-h100-mega-80gb")
GCP_ZONE_ACCELERATORS: dict[str, dict[str, frozenset[str]]] = {
    "us-central1": {
        "us-central1-a": frozenset({_T4, _V100, _A100, _A100_80, _L4, _H100, _H100M}),
        "us-central1-b": frozenset({_T4, _V100, _A100, _L4, _H100, _H100M}),
        "us-central1-c": frozenset({_T4, _V100, _A100, _A100_80, _L4, _H100, _H100M}),
        "us-central1-f": frozenset({_T4, _V100, _A100}),
    },
    "us-east1": {
        "us-east1-b": frozenset({_A100, _L4}),
        "us-east1-c": frozenset({_T4, _V100, _L4}),
        "us-east1-d": frozenset({_T4, _L4}),
    },
    "us-east4": {
        "us-east4-a": frozenset({_T4, _L4, _H100}),
        "us-east4-b": frozenset({_T4, _H100}),
        "us-east4-c": frozenset({_T4, _A100_80, _L4, _H100, _H100M}),
    },
    "us-west1": {
        "us-west1-a": frozenset({_T4, _V100, _L4, _H100}),
        "us-west1-b": frozenset({_T4, _V100, _A100, _L4}),
        "us-west1-c": frozenset({_L4}),
    },
    "us-west4": {
        "us-west4-a": frozenset({_T4, _L4, _H100}),
        "us-west4-b": frozenset({_T4, _A100}),
        "us-west4-c": frozenset({_L4}),
    },
    "europe-west4": {
        "europe-west4-a": frozenset({_T4, _V100, _A100, _A100_80, _L4}),
        "europe-west4-b": frozenset({_T4, _V100, _A100, _L4, _H100, _H100M}),
        "europe-west4-c": frozenset({_T4, _V100, _L4, _H100}),
    },
    "asia-southeast1": {
        "asia-southeast1-a": frozenset({_T4, _L4}),
        "asia-southeast1-b": frozenset({_T4, _A100, _L4, _H100}),
        "asia-southeast1-c": frozenset({_T4, _A100, _A100_80, _L4, _H100}),
    },
}


def gcp_series(machine_type: str) -> GcpMachineSeries | None:
    """The accelerator-optimized series a machine type belongs to (a2, a3, g2), else None."""
    return next((s for s in GCP_GPU_SERIES.values() if machine_type in s.types), None)


def gcp_builtin_gpus(machine_type: str) -> tuple[str, int] | None:
    """(accelerator, GPUs) built into an a2/a3/g2 machine type, else None (n1 takes attached GPUs)."""
    series = gcp_series(machine_type)
    return (series.accelerator, series.types[machine_type]) if series else None


def n1_vcpus(machine_type: str) -> int | None:
    """vCPUs of an N1 machine type that can take GPUs (n1-standard-8 -> 8), else None."""
    m = N1_TYPE.match(machine_type)
    return int(m[2]) if m else None


def gcp_zones_offering(region: str, accelerators: set[str]) -> list[str]:
    """The zones of `region` (sorted) that offer every accelerator in `accelerators`."""
    zones = GCP_ZONE_ACCELERATORS.get(region, {})
    return sorted(z for z, offered in zones.items() if accelerators <= offered)


def known_gcp_machine_types() -> list[str]:
    return [t for s in GCP_GPU_SERIES.values() for t in s.types]
