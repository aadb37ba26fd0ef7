"""Rendezvous for a training fleet, found from its cloud's group of instances.

On AWS, every instance asks Auto Scaling for the group's InService instances and EC2 for their
private addresses; on GCP (runtime.gcp.compute), the regional managed instance group for its
running members and Compute Engine for their network IPs. The rule is runtime.rendezvous's: the
instance with the lowest private address hosts the c10d store the elastic agents rendezvous on;
an instance the API does not list yet still joins, and is the store host only if its address is
the lowest.

`discover_for(config, ...)` picks the cloud from the runtime config: `"cloud"` is "aws" (the
default) or "gcp"; on GCP the config carries `"gcp": {"project", "zones"}` (and optionally
`"endpoint"`, the Compute API's), `"region"`, and `train.group` names the MIG.
"""

from __future__ import annotations

import os

from runtime.errors import BadInput, OperationFailed
from runtime.rendezvous import DEFAULT_PORT, Rendezvous, by_address, choose

__all__ = ["DEFAULT_PORT", "Rendezvous", "discover", "discover_for", "in_service_addresses"]
CLOUDS = ("aws", "gcp")


def _clients(region, endpoint):
    import boto3
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or None
    return (boto3.client("autoscaling", region_name=region, endpoint_url=endpoint),
            boto3.client("ec2", region_name=region, endpoint_url=endpoint))


def in_service_addresses(group, region=None, endpoint=None, autoscaling=None, ec2=None):
    """Private IPv4 addresses of the Auto Scaling group's InService instances, lowest first."""
    if autoscaling is None or ec2 is None:
        autoscaling, ec2 = _clients(region, endpoint)
    groups = autoscaling.describe_auto_scaling_groups(AutoScalingGroupNames=[group])["AutoScalingGroups"]
    if not groups:
        raise OperationFailed(f"training fleet: no Auto Scaling group named {group!r} in {region}")
    ids = [i["InstanceId"] for i in groups[0]["Instances"] if i["LifecycleState"] == "InService"]
    if not ids:
        return []
    addrs = []
    for page in ec2.get_paginator("describe_instances").paginate(InstanceIds=ids):
        for res in page["Reservations"]:
            addrs += [i["PrivateIpAddress"] for i in res["Instances"] if i.get("PrivateIpAddress")]
    return by_address(addrs)


def discover(group, my_address, region=None, port=DEFAULT_PORT, endpoint=None, autoscaling=None, ec2=None):
    """The rendezvous of an Auto Scaling group's training fleet (AWS)."""
    return choose(in_service_addresses(group, region, endpoint, autoscaling, ec2), my_address, port)


def cloud_of(config: dict) -> str:
    cloud = config.get("cloud") or "aws"
    if cloud not in CLOUDS:
        raise BadInput(f"cloud: unknown cloud in the runtime config (got {cloud!r}; allowed: {', '.join(CLOUDS)})")
    return cloud


def gcp_settings(config: dict) -> dict:
    """The runtime config's `gcp` section, checked: a project and the region the MIG lives in."""
    gcp = dict(config.get("gcp") or {})
    missing = [f"gcp.{k}" for k in ("project",) if not gcp.get(k)] + (["region"] if not config.get("region") else [])
    if missing:
        raise BadInput([f"{m}: a GCP training fleet's runtime config needs it (got nothing)" for m in missing])
    return gcp


def discover_for(config: dict, my_address: str, endpoint=None, port=DEFAULT_PORT) -> Rendezvous:
    """The rendezvous of the runtime config's training fleet (`train.group`) on its cloud.

    `endpoint` is the AWS API endpoint (AWS_ENDPOINT_URL otherwise); on GCP the Compute endpoint
    is `gcp.endpoint`, else runtime.gcp.compute's rule.
    """
    group = config["train"]["group"]
    if cloud_of(config) == "gcp":
        from runtime.gcp.compute import discover as discover_mig
        gcp = gcp_settings(config)
        return discover_mig(group, my_address, gcp["project"], config["region"], port=port,
                            endpoint=gcp.get("endpoint"))
    return discover(group, my_address, region=config.get("region"), port=port, endpoint=endpoint)
