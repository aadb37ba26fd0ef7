"""runtime.train.discovery's Kubernetes branch: the rendezvous of an Indexed Job's pod from its
index and the headless Service's DNS name (as the rendered Job gives them), and the train role's
settings for a pod."""

from __future__ import annotations

import pytest

from runtime.errors import BadInput, OperationFailed
from runtime.train.discovery import discover_for, kubernetes_rendezvous
from runtime.train.role import my_address, train_config

CONFIG = {"cloud": "kubernetes", "train": {"group": "s-train", "nodes": {"min": 1, "max": 2}, "gpus_per_node": 1},
          "kubernetes": {"rendezvous_host_env": "GPUFLEET_RENDEZVOUS_HOST", "rendezvous_port": 29411},
          "artifacts": {"bucket_env": None},
          "workload": {"workload": "logreg", "data": "artifacts/datasets/x", "label": "y",
                       "checkpoint_dir": "artifacts/checkpoints", "out": "artifacts/models/latest"}}


def test_index_0_hosts_the_store(monkeypatch):
    monkeypatch.setenv("GPUFLEET_RENDEZVOUS_HOST", "s-train-0.s-train")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "0")
    rdzv = discover_for(CONFIG, "10.1.2.3")
    assert rdzv.endpoint == "s-train-0.s-train:29411" and rdzv.is_host


def test_other_indexes_join_once_the_name_resolves(monkeypatch):
    monkeypatch.setenv("GPUFLEET_RENDEZVOUS_HOST", "localhost")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    rdzv = discover_for(CONFIG, "10.1.2.4")
    assert rdzv.endpoint == "localhost:29411" and not rdzv.is_host


def test_a_name_that_never_resolves_fails_naming_it(monkeypatch):
    monkeypatch.setenv("GPUFLEET_RENDEZVOUS_HOST", "no-such-pod-0.invalid")
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "1")
    with pytest.raises(OperationFailed, match="no-such-pod-0.invalid did not resolve"):
        kubernetes_rendezvous(CONFIG, "10.1.2.4", wait_s=0.0)


def test_missing_pod_environment_is_named(monkeypatch):
    monkeypatch.delenv("GPUFLEET_RENDEZVOUS_HOST", raising=False)
    monkeypatch.setenv("JOB_COMPLETION_INDEX", "first")
    with pytest.raises(BadInput) as exc:
        discover_for(CONFIG, "10.1.2.3")
    assert [p.split(":")[0] for p in exc.value.problems] == ["GPUFLEET_RENDEZVOUS_HOST", "JOB_COMPLETION_INDEX"]


def test_a_pod_trains_with_its_config_paths_and_no_metadata_watch(monkeypatch):
    monkeypatch.setenv("POD_IP", "10.1.2.5")
    assert my_address(cloud="kubernetes") == "10.1.2.5"
    cfg, nodes = train_config(dict(CONFIG))
    assert (cfg.checkpoint_dir, cfg.out, cfg.termination_watch) == ("artifacts/checkpoints", "artifacts/models/latest",
                                                                    None)
    assert nodes == {"min": 1, "max": 2} and cfg.nproc == 1
