"""The `aws` target: real AWS, credentials from the usual boto3 chain, providers from the registry
(or the bundled mirror with `--offline`). Applying and destroying ask for confirmation."""

from __future__ import annotations

from infra.target_names import AWS
from infra.targets.base import TerraformTarget


class AwsTarget(TerraformTarget):
    name = AWS
    summary = "real AWS"
    real_cloud = True
