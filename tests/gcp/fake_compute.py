"""A FAKE of the Compute Engine v1 REST API on 127.0.0.1, for tests. Not an emulator: Google
publishes none for Compute Engine, so this serves the handful of read-only methods gpufleet
calls, with the JSON shapes of the real API (compute/v1 reference: camelCase fields, `id` as a
string, `limit`/`usage` as numbers, list responses with `items` and `nextPageToken`), and
nothing else. google-cloud-compute talks to it over plain HTTP with
`client_options=ClientOptions(api_endpoint=fake.url)` and `AnonymousCredentials()`
(`fake.client_kwargs()`).

Served, all under `/compute/v1/projects/{project}`:

| method | path |
|---|---|
| GET  | `` (the project, with `quotas`: GPUS_ALL_REGIONS ...) |
| GET  | `/regions/{region}` (with `quotas: [{metric, limit, usage}]`) |
| GET  | `/zones/{zone}/acceleratorTypes` and `/zones/{zone}/acceleratorTypes/{name}` |
| GET  | `/zones/{zone}/machineTypes` and `/zones/{zone}/machineTypes/{name}` |
| POST | `/regions/{region}/instanceGroupManagers/{group}/listManagedInstances` |
| GET  | `/zones/{zone}/instances/{name}` (with `networkInterfaces[0].networkIP`) |

Lists page by `maxResults`/`pageToken` (at most `page_size` items a page). A missing resource
answers 404 with the API's error body (`{"error": {"code", "message", "errors": [{"reason":
"notFound"}]}}`); a request for another project answers 403. Every request is recorded in
`requests` as (method, path) so tests can assert what was asked.

Configure per test: `add_zone`, `offer` (accelerators a zone offers), `add_machine_type`,
`set_region_quota`, `set_project_quota`, `add_member` (a MIG's instance with its address).
"""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

API = "https://www.googleapis.com/compute/v1"


class FakeCompute:
    def __init__(self, project: str = "demo-project", page_size: int = 500):
        self.project, self.page_size = project, page_size
        self.zones: dict[str, dict] = {}           # zone -> {"accelerators": {name: max cards}, "machine_types": {...}}
        self.regions: dict[str, dict] = {}         # region -> {metric: (limit, usage)}
        self.project_quotas: dict[str, tuple] = {"CPUS_ALL_REGIONS": (32.0, 0.0), "GPUS_ALL_REGIONS": (0.0, 0.0)}
        self.groups: dict[tuple, list] = {}        # (region, group) -> [member dict]
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True,
                                        name="fake-compute")
        self._thread.start()

    # ---- configuration -------------------------------------------------------------------------------------------
    def add_zone(self, zone: str) -> dict:
        self.regions.setdefault(zone.rsplit("-", 1)[0], {})
        return self.zones.setdefault(zone, {"accelerators": {}, "machine_types": {}})

    def offer(self, zone: str, *accelerators: str, max_cards: int = 8) -> None:
        for name in accelerators:
            self.add_zone(zone)["accelerators"][name] = max_cards

    def add_machine_type(self, zone: str, name: str, cpus: int = 8, memory_mb: int = 32768,
                         accelerators: tuple = ()) -> None:
        """`accelerators`: ((type, count), ...) built into the machine type (a2, a3, g2 families)."""
        self.add_zone(zone)["machine_types"][name] = {"cpus": cpus, "memory_mb": memory_mb,
                                                      "accelerators": list(accelerators)}

    def set_region_quota(self, region: str, metric: str, limit: float, usage: float = 0.0) -> None:
        self.regions.setdefault(region, {})[metric] = (float(limit), float(usage))

    def set_project_quota(self, metric: str, limit: float, usage: float = 0.0) -> None:
        self.project_quotas[metric] = (float(limit), float(usage))

    def add_member(self, region: str, group: str, name: str, zone: str, ip: str, status: str = "RUNNING",
                   action: str = "NONE") -> None:
        self.add_zone(zone)
        self.groups.setdefault((region, group), []).append(
            {"name": name, "zone": zone, "ip": ip, "status": status, "action": action})

    def client_kwargs(self) -> dict:
        """What a google-cloud-compute client needs to talk to this fake."""
        from google.api_core.client_options import ClientOptions
        from google.auth.credentials import AnonymousCredentials
        return {"credentials": AnonymousCredentials(), "client_options": ClientOptions(api_endpoint=self.url)}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    # ---- resources, in the API's JSON shapes ----------------------------------------------------------------------
    def _link(self, path: str) -> str:
        return f"{API}/projects/{self.project}/{path}" if path else f"{API}/projects/{self.project}"

    @staticmethod
    def _quotas(table: dict) -> list:
        return [{"metric": m, "limit": lim, "usage": use} for m, (lim, use) in sorted(table.items())]

    def _accelerator(self, zone, name, max_cards):
        return {"kind": "compute#acceleratorType", "id": _id(name), "name": name,
                "description": name.replace("nvidia-", "NVIDIA ").replace("-", " ").upper(),
                "zone": self._link(f"zones/{zone}"), "maximumCardsPerInstance": max_cards,
                "selfLink": self._link(f"zones/{zone}/acceleratorTypes/{name}")}

    def _machine_type(self, zone, name, spec):
        body = {"kind": "compute#machineType", "id": _id(name), "name": name,
                "description": f"{spec['cpus']} vCPUs, {spec['memory_mb'] // 1024} GB RAM",
                "guestCpus": spec["cpus"], "memoryMb": spec["memory_mb"], "maximumPersistentDisks": 128,
                "maximumPersistentDisksSizeGb": "263168", "zone": zone, "isSharedCpu": False,
                "selfLink": self._link(f"zones/{zone}/machineTypes/{name}")}
        if spec["accelerators"]:
            body["accelerators"] = [{"guestAcceleratorType": t, "guestAcceleratorCount": n}
                                    for t, n in spec["accelerators"]]
        return body

    def _instance(self, m):
        return {"kind": "compute#instance", "id": _id(m["name"]), "name": m["name"],
                "zone": self._link(f"zones/{m['zone']}"), "status": m["status"],
                "machineType": self._link(f"zones/{m['zone']}/machineTypes/n1-standard-8"),
                "networkInterfaces": [{"kind": "compute#networkInterface", "name": "nic0", "networkIP": m["ip"],
                                       "network": self._link("global/networks/default"), "stackType": "IPV4_ONLY"}],
                "selfLink": self._link(f"zones/{m['zone']}/instances/{m['name']}")}

    def _managed(self, m):
        return {"instance": self._link(f"zones/{m['zone']}/instances/{m['name']}"),
                "id": _id(m["name"]), "name": m["name"],
                "instanceStatus": m["status"], "currentAction": m["action"]}

    def _page(self, kind, items, query, key="items"):
        start = int(query.get("pageToken", "0") or 0)
        size = min(self.page_size, int(query.get("maxResults", self.page_size) or self.page_size))
        body = {"kind": kind, key: items[start:start + size]}
        if start + size < len(items):
            body["nextPageToken"] = str(start + size)
        return body

    def answer(self, method: str, path: str, query: dict):
        """(status, body) for one request; the routing table of the methods listed above."""
        prefix = f"/compute/v1/projects/{self.project}"
        if not path.startswith("/compute/v1/projects/"):
            return _error(404, f"no such method: {method} {path}")
        if path != prefix and not path.startswith(prefix + "/"):
            return _error(403, "Required 'compute.projects.get' permission for the project", "forbidden")
        rest = path[len(prefix):].strip("/")
        for pattern, verb, fn in self._routes():
            m = re.fullmatch(pattern, rest)
            if m and verb == method:
                return fn(query, *m.groups())
        return _error(404, f"The resource '{self._link(rest)}' was not found")

    def _routes(self):
        return [
            (r"", "GET", self._get_project),
            (r"regions/([^/]+)", "GET", self._get_region),
            (r"zones/([^/]+)/acceleratorTypes", "GET", self._list_accelerators),
            (r"zones/([^/]+)/acceleratorTypes/([^/]+)", "GET", self._get_accelerator),
            (r"zones/([^/]+)/machineTypes", "GET", self._list_machine_types),
            (r"zones/([^/]+)/machineTypes/([^/]+)", "GET", self._get_machine_type),
            (r"regions/([^/]+)/instanceGroupManagers/([^/]+)/listManagedInstances", "POST", self._list_managed),
            (r"zones/([^/]+)/instances/([^/]+)", "GET", self._get_instance),
        ]

    def _get_project(self, query):
        return 200, {"kind": "compute#project", "id": "1234567890", "name": self.project,
                     "quotas": self._quotas(self.project_quotas), "selfLink": self._link(""),
                     "defaultServiceAccount": "1234567890-compute@developer.gserviceaccount.com",
                     "xpnProjectStatus": "UNSPECIFIED_XPN_PROJECT_STATUS"}

    def _get_region(self, query, region):
        if region not in self.regions:
            return _error(404, f"The resource '{self._link('regions/' + region)}' was not found")
        zones = [self._link(f"zones/{z}") for z in sorted(self.zones) if z.rsplit("-", 1)[0] == region]
        return 200, {"kind": "compute#region", "id": _id(region), "name": region,
                     "description": region, "status": "UP", "zones": zones,
                     "quotas": self._quotas(self.regions[region]), "selfLink": self._link(f"regions/{region}")}

    def _zone(self, zone):
        return self.zones.get(zone)

    def _list_accelerators(self, query, zone):
        if self._zone(zone) is None:
            return _error(404, f"The resource '{self._link('zones/' + zone)}' was not found")
        items = [self._accelerator(zone, n, c) for n, c in sorted(self.zones[zone]["accelerators"].items())]
        return 200, self._page("compute#acceleratorTypeList", items, query)

    def _get_accelerator(self, query, zone, name):
        cards = (self._zone(zone) or {}).get("accelerators", {}).get(name)
        if cards is None:
            return _error(404, f"The resource '{self._link(f'zones/{zone}/acceleratorTypes/{name}')}' was not found")
        return 200, self._accelerator(zone, name, cards)

    def _list_machine_types(self, query, zone):
        if self._zone(zone) is None:
            return _error(404, f"The resource '{self._link('zones/' + zone)}' was not found")
        items = [self._machine_type(zone, n, s) for n, s in sorted(self.zones[zone]["machine_types"].items())]
        return 200, self._page("compute#machineTypeList", items, query)

    def _get_machine_type(self, query, zone, name):
        spec = (self._zone(zone) or {}).get("machine_types", {}).get(name)
        if spec is None:
            return _error(404, f"The resource '{self._link(f'zones/{zone}/machineTypes/{name}')}' was not found")
        return 200, self._machine_type(zone, name, spec)

    def _list_managed(self, query, region, group):
        members = self.groups.get((region, group))
        if members is None:
            return _error(404, f"The resource '{self._link(f'regions/{region}/instanceGroupManagers/{group}')}' "
                               "was not found")
        return 200, self._page(None, [self._managed(m) for m in members], query, key="managedInstances")

    def _get_instance(self, query, zone, name):
        for members in self.groups.values():
            for m in members:
                if m["zone"] == zone and m["name"] == name:
                    return 200, self._instance(m)
        return _error(404, f"The resource '{self._link(f'zones/{zone}/instances/{name}')}' was not found")


def _id(name: str) -> str:
    return str(zlib.crc32(name.encode()) * 7919)  # uint64 ids travel as strings in the API's JSON


def _error(code: int, message: str, reason: str = "notFound"):
    return code, {"error": {"code": code, "message": message,
                            "errors": [{"message": message, "domain": "global", "reason": reason}]}}


def _handler(fake: FakeCompute):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _serve(self, method):
            length = int(self.headers.get("content-length") or 0)
            if length:
                self.rfile.read(length)
            url = urllib.parse.urlsplit(self.path)
            query = {k: v[-1] for k, v in urllib.parse.parse_qs(url.query).items()}
            with fake._lock:
                fake.requests.append((method, url.path))
                status, body = fake.answer(method, url.path, query)
            if body.get("kind") is None:
                body.pop("kind", None)
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json; charset=UTF-8")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            self._serve("GET")

        def do_POST(self):
            self._serve("POST")

    return Handler
