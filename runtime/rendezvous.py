"""The rendezvous rule every cloud's training discovery shares.

Each instance lists its fleet's in-service members (an Auto Scaling group on AWS, a regional
managed instance group on GCP) and their private IPv4 addresses; the lowest address (compared
as IPv4 numbers, so every instance picks the same one without talking to the others) hosts the
c10d store the elastic agents rendezvous on. An instance the API does not list yet still joins:
it is the store host only if its own address is the lowest.

It lives beside the cloud modules rather than in runtime.train so that runtime.gcp, which may
not import runtime.train, returns the same `Rendezvous`.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

DEFAULT_PORT = 29400


@dataclass
class Rendezvous:
    endpoint: str          # host:port of the c10d store
    host: str              # the store host's private address
    members: list          # private addresses of the in-service instances, sorted
    is_host: bool          # this instance hosts the store


def by_address(addresses) -> list[str]:
    """Distinct IPv4 addresses, lowest first."""
    return sorted(set(addresses), key=ipaddress.IPv4Address)


def choose(members: list[str], my_address: str, port: int = DEFAULT_PORT) -> Rendezvous:
    """The rendezvous of `members` (sorted, as listed by the cloud) as seen from `my_address`."""
    host = by_address(list(members) + [my_address])[0]
    return Rendezvous(f"{host}:{port}", host, list(members), host == my_address)
