"""The AWS provider a rendered root pins, and everything that differs by its major version.

This module is the one place that tells provider majors apart. The emulator target runs
offline against provider 3.39 (from a PyPI wheel); real AWS gets 5.x or 6.x from the registry.
The modules are written once for every major except where a resource type itself differs,
and the templates ask `Spellings` for those differences instead of testing the version:

| what                                  | 3.x                                                | 4.x - 6.x                                  |
|---------------------------------------|----------------------------------------------------|--------------------------------------------|
| the artifacts bucket's settings, its objects | inline blocks, `aws_s3_bucket_object` (`modules/aws/storage/provider-v3`) | `aws_s3_bucket_*` resources, `aws_s3_object` (`modules/aws/storage`) |
| emulator override: path-style S3      | `s3_force_path_style` (+ `skip_get_ec2_platforms`) | `s3_use_path_style`                        |
| emulator override: the ELBv2 endpoint | `elb`                                              | `elbv2`                                    |

Where one spelling serves every major, the modules use it rather than a per-major one:
`aws_eip` sets neither `vpc` (removed in 6.0) nor `domain` (3.x cannot set it): AWS
allocates addresses in a VPC by default since EC2-Classic was retired. The region comes from
`data.aws_region.current.id` (6.x deprecates `.name`; 3.x and 5.x have no `.region`).

The S3 state backend is part of Terraform itself, not the provider: its arguments follow the
Terraform release (1.15 embedded) whatever the provider major.
"""

from __future__ import annotations

from dataclasses import dataclass

from infra.target_names import AWS, EMULATOR


@dataclass(frozen=True)
class Spellings:
    """What a template writes for one provider major."""

    storage_module: str  # the storage module's folder under modules/
    path_style_argument: str  # provider argument for path-style S3 addressing (the emulator)
    elbv2_endpoint: str  # the `endpoints {}` key that serves ELBv2
    skip_get_ec2_platforms: bool  # 3.x asks EC2 for its platforms at start unless told not to


_LEGACY = Spellings("aws/storage/provider-v3", "s3_force_path_style", "elb", True)
_CURRENT = Spellings("aws/storage", "s3_use_path_style", "elbv2", False)
SUPPORTED_MAJORS = (3, 4, 5, 6)


def spellings(major: int) -> Spellings:
    """The spellings for AWS provider `major`.x (ValueError for a major gpufleet does not render for)."""
    if major not in SUPPORTED_MAJORS:
        raise ValueError(f"AWS provider {major}.x is not supported (supported: {', '.join(map(str, SUPPORTED_MAJORS))})")
    return _LEGACY if major < 4 else _CURRENT


@dataclass(frozen=True)
class AwsProvider:
    """The AWS provider a target's rendered root pins."""

    constraint: str
    major: int  # the oldest major the constraint admits: what the templates spell for
    emulated: bool = False  # moto: the emulator's tfvars, and an endpoint override written at plan time

    @property
    def spellings(self) -> Spellings:
        return spellings(self.major)


# The emulator target runs offline against the AWS provider in the local mirror (3.39); real
# AWS gets current providers from the registry: 5.x and 6.x share one set of spellings.
AWS_PROVIDERS = {EMULATOR: AwsProvider("= 3.39.0", 3, emulated=True), AWS: AwsProvider(">= 5.0, < 7.0", 5)}
