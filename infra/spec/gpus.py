"""The GPU instance families gpufleet knows, with GPUs per instance size.

Scale up (a bigger instance) is the instance type; scale out is the fleet's size. The table
lets the spec check that `gpus_per_node` matches the instance type, and lets the runtime
start one training rank per GPU. Sizes come from the cloud's published instance tables.
"""

from __future__ import annotations

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
}


def gpus_for(instance_type: str) -> int | None:
    """GPUs per instance for a known AWS GPU instance type, else None."""
    family, _, size = instance_type.partition(".")
    entry = AWS_GPU_FAMILIES.get(family)
    if entry is None:
        return None
    return entry.sizes.get(size)


def known_instance_types() -> list[str]:
    return [f"{fam}.{size}" for fam, entry in AWS_GPU_FAMILIES.items() for size in entry.sizes]
