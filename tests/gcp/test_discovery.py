"""Rendezvous on GCP: the training MIG's running members and their addresses, read from the fake
Compute Engine API through google-cloud-compute (runtime.gcp.compute), and the train role's
dispatch on the runtime config's `cloud`."""

from __future__ import annotations

import pytest

from runtime.errors import BadInput, OperationFailed

REGION, GROUP = "us-central1", "demo-train"


def _mig(compute):
    compute.page_size = 2  # the listing takes several pages
    compute.add_member(REGION, GROUP, "demo-train-a1", "us-central1-a", "10.128.0.10")
    compute.add_member(REGION, GROUP, "demo-train-b2", "us-central1-b", "10.128.0.9")
    compute.add_member(REGION, GROUP, "demo-train-f3", "us-central1-f", "10.128.0.31")
    compute.add_member(REGION, GROUP, "demo-train-a4", "us-central1-a", "10.128.0.2", status="STAGING",
                       action="CREATING")
    compute.add_member(REGION, GROUP, "demo-train-b5", "us-central1-b", "10.128.0.3", action="DELETING")
    compute.add_member(REGION, "other", "other-a1", "us-central1-a", "10.128.0.1")


def _config(compute, **gcp):
    return {"cloud": "gcp", "region": REGION, "gcp": {"project": "demo-project", "zones": ["us-central1-a"], **gcp},
            "train": {"group": GROUP, "nodes": {"min": 1, "max": 3}, "gpus_per_node": 0}}


def test_running_members_lowest_address_first(compute):
    from runtime.gcp.compute import discover, in_service_addresses
    _mig(compute)
    kw = compute.client_kwargs()
    members = in_service_addresses(GROUP, "demo-project", REGION, **kw)
    assert members == ["10.128.0.9", "10.128.0.10", "10.128.0.31"]  # numeric order; CREATING, DELETING left out
    r = discover(GROUP, "10.128.0.31", "demo-project", REGION, **kw)
    assert (r.host, r.endpoint, r.is_host, r.members) == ("10.128.0.9", "10.128.0.9:29400", False, members)
    assert discover(GROUP, "10.128.0.9", "demo-project", REGION, **kw).is_host
    assert discover(GROUP, "10.128.0.4", "demo-project", REGION, **kw).is_host  # not listed yet, but lowest
    lists = [p for m, p in compute.requests if m == "POST"]
    assert lists[0] == (f"/compute/v1/projects/demo-project/regions/{REGION}/instanceGroupManagers/{GROUP}"
                        "/listManagedInstances")
    assert len(lists) == 4 * 3  # four listings of 3 pages (2 members a page)


def test_a_missing_group_is_an_operation_failure(compute):
    from runtime.gcp.compute import in_service_addresses
    with pytest.raises(OperationFailed, match="no managed instance group named 'nope' in demo-project/us-central1"):
        in_service_addresses("nope", "demo-project", REGION, **compute.client_kwargs())


def test_discovery_dispatches_on_the_runtime_configs_cloud(compute, monkeypatch):
    from runtime.train.discovery import discover_for
    _mig(compute)
    r = discover_for(_config(compute, endpoint=compute.url), "10.128.0.10")
    assert r.host == "10.128.0.9" and not r.is_host
    monkeypatch.setenv("GPUFLEET_GCP_COMPUTE_ENDPOINT", compute.url)  # the endpoint from the environment
    assert discover_for(_config(compute), "10.128.0.9").is_host
    with pytest.raises(BadInput, match="gcp.project"):
        discover_for({"cloud": "gcp", "region": REGION, "train": {"group": GROUP}}, "10.0.0.1")
    with pytest.raises(BadInput, match="cloud: unknown cloud"):
        discover_for({"cloud": "azure", "train": {"group": GROUP}}, "10.0.0.1")


def test_the_train_role_on_gcp(compute, gce_metadata, tmp_path, monkeypatch):
    """Address from the metadata server, rendezvous from the MIG, the preemption watch, gs:// checkpoints."""
    import runtime.train.role as role
    _mig(compute)
    gce_metadata.set("instance/network-interfaces/0/ip", "10.128.0.10")
    monkeypatch.setattr(role, "WORKDIR", str(tmp_path / "work"))
    (tmp_path / "d.csv").write_text("x0,x1,target\n" + "".join(f"{i},{-i},{i % 2}\n" for i in range(40)))
    config = dict(_config(compute, endpoint=compute.url), stack="demo",
                  workload={"workload": "logreg", "data": str(tmp_path / "d.csv"), "label": "target"})
    seen = {}
    assert role.run_from_config(config, launch=lambda cfg, **kw: seen.update(cfg=cfg, **kw) or 0) == 0
    assert seen["rdzv_endpoint"] == "10.128.0.9:29400" and seen["local_addr"] == "10.128.0.10"
    assert seen["is_host"] is False and (seen["min_nodes"], seen["max_nodes"]) == (1, 3)
    assert seen["cfg"].termination_watch == {"cloud": "gcp", "metadata_url": gce_metadata.url, "group": GROUP,
                                             "region": REGION}
    config["artifacts"] = {"bucket": "demo-artifacts", "checkpoints": "checkpoints/"}
    assert role.train_config(config)[0].checkpoint_dir == "gs://demo-artifacts/checkpoints"


def test_the_bucket_comes_from_the_instance_attribute_on_gcp(gce_metadata, tmp_path):
    import json

    from runtime.role import load_config
    gce_metadata.set("instance/attributes/gpufleet-bucket", "demo-artifacts")
    path = tmp_path / "runtime.json"
    path.write_text(json.dumps({"format": 1, "role": "train", "cloud": "gcp", "artifacts": {}}))
    assert load_config(path)["artifacts"]["bucket"] == "demo-artifacts"
    path.write_text(json.dumps({"format": 1, "role": "train", "cloud": "gcp", "artifacts": {"bucket": "rendered"}}))
    assert load_config(path)["artifacts"]["bucket"] == "rendered"
