"""Rendezvous for a training fleet, found from its Auto Scaling group.

Every instance asks Auto Scaling for the group's InService instances and EC2 for their private
addresses; the instance with the lowest private address (compared as IPv4 numbers, so every
instance picks the same one without talking to the others) hosts the c10d store that the
elastic agents rendezvous on. An instance that is not yet InService in the API's view still
joins: it is the store host only if its address is the lowest.
"""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass

from runtime.errors import OperationFailed

DEFAULT_PORT = 29400


@dataclass
class Rendezvous:
    endpoint: str          # host:port of the c10d store
    host: str              # the store host's private address
    members: list          # private addresses of the InService instances, sorted
    is_host: bool          # this instance hosts the store


def _clients(region, endpoint):
    import boto3
    endpoint = endpoint or os.environ.get("AWS_ENDPOINT_URL") or None
    return (boto3.client("autoscaling", region_name=region, endpoint_url=endpoint),
            boto3.client("ec2", region_name=region, endpoint_url=endpoint))


def in_service_addresses(group, region=None, endpoint=None, autoscaling=None, ec2=None):
    """Private IPv4 addresses of the group's InService instances, lowest first."""
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
    return sorted(set(addrs), key=ipaddress.IPv4Address)


def discover(group, my_address, region=None, port=DEFAULT_PORT, endpoint=None, autoscaling=None, ec2=None):
    members = in_service_addresses(group, region, endpoint, autoscaling, ec2)
    candidates = sorted(set(members) | {my_address}, key=ipaddress.IPv4Address)
    host = candidates[0]
    return Rendezvous(f"{host}:{port}", host, members, host == my_address)
