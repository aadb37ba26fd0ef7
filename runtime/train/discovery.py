"""Rendezvous for a training fleet, found from its cloud's group of instances.

On AWS, every instance asks Auto Scaling for the group's InService instances and EC2 for their
private addresses; on GCP (runtime.gcp.compute), the regional managed instance group for its
running members and Compute Engine for their network IPs. The rule is runtime.rendezvous's: the
instance with the lowest private address hosts the c10d store the elastic agents rendezvous on;
an instance the API does not list yet still joins, and is the store host only if its address is
the lowest.

On Kubernetes (`"cloud": "kubernetes"`: an Indexed Job, one pod per node) nothing is listed:
the store is on pod index 0, whose DNS name under the Job's headless Service
(`<job>-0.<service>`) the pod gets in the environment variable that `kubernetes.rendezvous_host_env`
names, and whose index the Job gives each pod as JOB_COMPLETION_INDEX. A pod other than index 0
waits until that name resolves (the DNS record appears once pod 0 exists) before joining.

`discover_for(config, ...)` picks the cloud from the runtime config: `"cloud"` is "aws" (the
default), "gcp" or "kubernetes"; on GCP the config carries `"gcp": {"project", "zones"}` (and
optionally `"endpoint"`, the Compute API's), `"region"`, and `train.group` names the MIG; on
Kubernetes it carries `"kubernetes": {"rendezvous_host_env", "rendezvous_port"}`.
"""

from __future__ import annotations

import os
import socket
import time

from runtime.errors import BadInput, OperationFailed
from runtime.rendezvous import DEFAULT_PORT, Rendezvous, by_address, choose

__all__ = ["DEFAULT_PORT", "Rendezvous", "discover", "discover_for", "in_service_addresses", "kubernetes_rendezvous"]
CLOUDS = ("aws", "gcp", "kubernetes")
INDEX_ENV = "JOB_COMPLETION_INDEX"  # set by an Indexed Job (the rendered manifest names it too)
DNS_WAIT_S = 600.0


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


def kubernetes_rendezvous(config: dict, my_address: str, wait_s: float = DNS_WAIT_S) -> Rendezvous:
    """The rendezvous of an Indexed Job's pod: the store on index 0, by its DNS name (see above)."""
    k = config.get("kubernetes") or {}
    host_env = k.get("rendezvous_host_env") or "GPUFLEET_RENDEZVOUS_HOST"
    host, index = os.environ.get(host_env), os.environ.get(INDEX_ENV)
    problems = []
    if not host:
        problems.append(f"{host_env}: the rendezvous host (pod index 0 under the Job's headless Service) is not set")
    if index is None or not index.isdigit():
        problems.append(f"{INDEX_ENV}: this pod's index in the Indexed Job is not a number (got {index!r})")
    if problems:
        raise BadInput(problems)
    port = int(k.get("rendezvous_port") or DEFAULT_PORT)
    is_host = int(index) == 0
    if not is_host:
        _wait_resolvable(host, port, wait_s)
    return Rendezvous(f"{host}:{port}", host, [], is_host)


def _wait_resolvable(host: str, port: int, wait_s: float) -> None:
    deadline = time.monotonic() + wait_s
    while True:
        try:
            socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            return
        except socket.gaierror:
            if time.monotonic() > deadline:
                raise OperationFailed(f"rendezvous host {host} did not resolve within {wait_s:.0f} s (is pod index 0 "
                                      "running, and the Job's subdomain its headless Service?)") from None
            time.sleep(1.0)


def discover_for(config: dict, my_address: str, endpoint=None, port=DEFAULT_PORT) -> Rendezvous:
    """The rendezvous of the runtime config's training fleet (`train.group`) on its cloud.

    `endpoint` is the AWS API endpoint (AWS_ENDPOINT_URL otherwise); on GCP the Compute endpoint
    is `gcp.endpoint`, else runtime.gcp.compute's rule.
    """
    group = config["train"]["group"]
    if cloud_of(config) == "kubernetes":
        return kubernetes_rendezvous(config, my_address)
    if cloud_of(config) == "gcp":
        from runtime.gcp.compute import discover as discover_mig
        gcp = gcp_settings(config)
        return discover_mig(group, my_address, gcp["project"], config["region"], port=port,
                            endpoint=gcp.get("endpoint"))
    return discover(group, my_address, region=config.get("region"), port=port, endpoint=endpoint)
