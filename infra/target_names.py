"""The deployment targets' names: the one home of `--target`'s values.

infra.targets binds each name to its implementation (the registry the CLI reads); infra.render
pins an AWS provider per Terraform target. The names live in this module of their own, which
imports nothing, so that the renderer (which the targets use) reads them without importing
the targets.
"""

EMULATOR = "emulator"  # Terraform against the local AWS emulator (moto on 127.0.0.1)
AWS = "aws"  # Terraform against real AWS
GCP = "gcp"  # Terraform against real GCP (offline: render and checks only)
KUBERNETES = "kubernetes"  # plain manifests for a cluster the user already has (kubectl applies them)
LOCAL = "local"  # the runtime on this machine: replicas behind HAProxy, a local autoscaler

# Real clouds only when asked for by name.
DEFAULT = EMULATOR
