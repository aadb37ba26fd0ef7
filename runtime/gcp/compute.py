"""Rendezvous for a training fleet on GCP, found from its regional managed instance group (MIG).

Same contract as runtime.train.discovery on AWS (`in_service_addresses`, `discover`; the rule is
runtime.rendezvous's): every instance lists the MIG's managed instances
(`regionInstanceGroupManagers.listManagedInstances`), keeps those whose `instanceStatus` is
RUNNING and that the group is not taking away (`currentAction` DELETING, ABANDONING,
RECREATING, STOPPING, SUSPENDING), reads each one's `networkInterfaces[0].networkIP`
(`instances.get`, in the zone its URL names), and the lowest address hosts the c10d store.

Clients are google-cloud-compute's, over REST. The endpoint is the `endpoint` argument, else
`GPUFLEET_GCP_COMPUTE_ENDPOINT`, else the real API with Application Default Credentials (on an
instance: its service account, through the metadata server). An `http://` endpoint is a local
fake or emulator: it gets anonymous credentials, since plain HTTP must never carry real tokens.
google-cloud-compute is imported only when a call runs; without it the call raises
OperationFailed naming the `gcp` extra.
"""

from __future__ import annotations

import os

from runtime.errors import OperationFailed
from runtime.rendezvous import DEFAULT_PORT, Rendezvous, by_address, choose

ENDPOINT_VARIABLE = "GPUFLEET_GCP_COMPUTE_ENDPOINT"
LEAVING = frozenset({"DELETING", "ABANDONING", "RECREATING", "STOPPING", "SUSPENDING"})


def compute_v1():
    try:
        from google.cloud import compute_v1 as module
    except ImportError:
        raise OperationFailed("GCP discovery needs google-cloud-compute: pip install 'gpufleet[gcp]'") from None
    return module


def client_kwargs(endpoint: str | None = None, client_options=None, credentials=None) -> dict:
    """Keyword arguments for a google-cloud-compute client, by the endpoint rule above."""
    endpoint = endpoint or os.environ.get(ENDPOINT_VARIABLE) or None
    kwargs = {}
    if endpoint and client_options is None:
        from google.api_core.client_options import ClientOptions
        client_options = ClientOptions(api_endpoint=endpoint)
        if endpoint.startswith("http://") and credentials is None:
            from google.auth.credentials import AnonymousCredentials
            credentials = AnonymousCredentials()
    if client_options is not None:
        kwargs["client_options"] = client_options
    if credentials is not None:
        kwargs["credentials"] = credentials
    return kwargs


def _zone_and_name(url: str) -> tuple[str, str, str]:
    """(project, zone, name) from an instance URL `.../projects/P/zones/Z/instances/NAME`."""
    parts = url.rstrip("/").split("/")
    at = {key: parts[i + 1] for i, key in enumerate(parts[:-1]) if key in ("projects", "zones", "instances")}
    return at["projects"], at["zones"], at["instances"]


def in_service_addresses(group: str, project: str, region: str, endpoint: str | None = None,
                         client_options=None, credentials=None) -> list[str]:
    """Private IPv4 addresses of the MIG's running members, lowest first."""
    compute = compute_v1()
    from google.api_core import exceptions as gexc

    kwargs = client_kwargs(endpoint, client_options, credentials)
    try:
        managed = compute.RegionInstanceGroupManagersClient(**kwargs).list_managed_instances(
            project=project, region=region, instance_group_manager=group)
        running = [m.instance for m in managed if m.instance_status == "RUNNING" and m.current_action not in LEAVING]
    except gexc.NotFound:
        raise OperationFailed(f"training fleet: no managed instance group named {group!r} in {project}/{region}") \
            from None
    instances = compute.InstancesClient(**kwargs)
    addresses = []
    for url in running:
        owner, zone, name = _zone_and_name(url)
        try:
            found = instances.get(project=owner, zone=zone, instance=name)
        except gexc.NotFound:  # deleted since the group was listed
            continue
        nics = list(found.network_interfaces)
        if nics and nics[0].network_i_p:
            addresses.append(nics[0].network_i_p)
    return by_address(addresses)


def discover(group: str, my_address: str, project: str, region: str, port: int = DEFAULT_PORT,
             endpoint: str | None = None, client_options=None, credentials=None) -> Rendezvous:
    members = in_service_addresses(group, project, region, endpoint, client_options, credentials)
    return choose(members, my_address, port)
