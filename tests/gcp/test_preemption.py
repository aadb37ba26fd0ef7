"""A spot VM's preemption on GCP: the fake metadata server flips `instance/preempted` to TRUE while
the termination watcher holds a `wait_for_change` request on it, and a real (small, CPU) training
run checkpoints and exits with EXIT_STOPPED, the path AWS's spot notice takes."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest

from runtime.errors import EXIT_STOPPED
from runtime.train import TrainConfig, launch, validate
from runtime.train.checkpoint import Checkpointer


def _data(tmp_path):
    x = np.random.default_rng(0).normal(size=(300, 4))
    lines = ["x0,x1,x2,x3,target"] + [",".join(f"{v:.5f}" for v in row) + f",{int(row[0] > 0)}" for row in x]
    (tmp_path / "d.csv").write_text("\n".join(lines) + "\n")
    return str(tmp_path / "d.csv")


def _preempt_once_watched(gce_metadata):
    """Flip `preempted` to TRUE as soon as a client is waiting on it (so the flip is seen through the wait)."""
    def flip():
        if gce_metadata.waiting.wait(120):
            gce_metadata.set("instance/preempted", "TRUE")
    threading.Thread(target=flip, daemon=True).start()


@pytest.mark.timeout(300)
def test_a_preemption_notice_checkpoints_and_exits_stopped(tmp_path, gce_metadata):
    _preempt_once_watched(gce_metadata)
    epochs = 100_000  # far more than the run gets through before the notice
    cfg = validate(TrainConfig(workload="kmeans", data=_data(tmp_path), k=3, out=str(tmp_path / "o"), epochs=epochs,
                               tol=-1.0, termination_watch={"cloud": "gcp", "metadata_url": gce_metadata.url,
                                                            "group": "demo-train", "poll_s": 5}))
    assert launch(cfg) == EXIT_STOPPED
    step = Checkpointer(cfg.checkpoint_dir).load_latest()["step"]
    assert 1 <= step < epochs
    assert not (tmp_path / "o" / "metrics.json").exists()
    assert any("instance/preempted?wait_for_change=true" in r for r in gce_metadata.requests)
    # the run that replaces the preempted VM resumes from that checkpoint and finishes
    cfg2 = validate(TrainConfig(workload="kmeans", data=cfg.data, k=3, out=str(tmp_path / "o"), epochs=step + 2,
                                tol=-1.0))
    assert launch(cfg2) == 0
    assert json.loads((tmp_path / "o" / "metrics.json").read_text())["resumed_from_step"] >= 1


def test_the_watcher_reports_preempted_and_has_no_action_to_complete(gce_metadata):
    from runtime.train.termination import TerminationWatcher
    seen = threading.Event()
    watcher = TerminationWatcher(on_notice=lambda why: seen.set(), cloud="gcp", poll_s=1)  # GCE_METADATA_HOST
    assert watcher.check() is None
    watcher.start()
    gce_metadata.waiting.wait(10)
    gce_metadata.set("instance/preempted", "TRUE")
    assert seen.wait(10) and watcher.reason == "preempted" and watcher.check() == "preempted"
    assert watcher.complete() is False
    watcher.stop()
