"""The rendered manifests, executed: each container's command and args run as local processes with
the environment the manifest gives, so the manifests and the runtime are shown to agree on
commands, config paths, ports, probes and rendezvous. No API server or container runtime exists
here, so a small "kubelet" below stands in for the cluster; what it substitutes, and nothing else:

- the pod's working directory (WORKDIR, /var/lib/gpufleet) is a temp directory per pod, and every
  path under WORKDIR (volume mounts, env values) maps into it. The artifacts claim is one shared
  directory linked into every pod (ReadWriteMany); a ConfigMap volume is its keys written as files;
  an emptyDir is an empty directory. /dev/shm (a memory emptyDir) is the host's own;
- the downward API: status.podIP is 127.0.0.1, the job-completion-index annotation the pod's index;
- the headless Service name `<job>-0.<service>` resolves to 127.0.0.1 (as the cluster DNS would to
  pod 0), and the serving container's all-interfaces `--host 0.0.0.0` binds 127.0.0.1 instead
  (servers in tests listen on loopback only);
- PATH is this environment's (the venv's `gpufleet`, the host's `/bin/sh`), as an image's PATH is;
- in preStop, PID 1 (the container's main process) is the replica's pid.

Ports are the manifests' own; the spec picks free ones so parallel test runs do not collide.
The spec is the example's with a small dataset and workload (and its columns).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from k8s_render_helpers import example_doc, one, rendered  # noqa: E402

from infra.spec.kubernetes import WORKDIR  # noqa: E402

pytestmark = pytest.mark.slow
LOOPBACK = "127.0.0.1"
FEATURES = [f"x{i}" for i in range(8)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return s.getsockname()[1]


class Kubelet:
    """Runs a pod template's containers as local processes (see the module docstring)."""

    def __init__(self, objects: list[dict], base: Path, rendezvous_host: str):
        self.objects, self.base, self.rendezvous_host = objects, base, rendezvous_host
        self.claim = base / "claim"
        self.claim.mkdir()
        self.procs: list[subprocess.Popen] = []

    def local(self, path: str, root: Path) -> str:
        assert path == WORKDIR or path.startswith(WORKDIR + "/"), path
        return str(root / os.path.relpath(path, WORKDIR))

    def pod_root(self, template: dict, pod: str) -> Path:
        """The pod's working directory, its volumes mounted."""
        root = self.base / pod
        root.mkdir()
        volumes = {v["name"]: v for v in template["spec"]["volumes"]}
        for c in template["spec"].get("initContainers", []) + template["spec"]["containers"]:
            assert c["workingDir"] == WORKDIR
            for m in c["volumeMounts"]:
                if m["mountPath"] == "/dev/shm":
                    continue  # the host's
                target = Path(self.local(m["mountPath"], root))
                if target.exists() or target.is_symlink():
                    continue
                target.parent.mkdir(parents=True, exist_ok=True)
                v = volumes[m["name"]]
                if "persistentVolumeClaim" in v:
                    target.symlink_to(self.claim)
                elif "configMap" in v:
                    target.mkdir()
                    config_map = one(self.objects, "ConfigMap", v["configMap"]["name"])
                    for key, text in config_map["data"].items():
                        (target / key).write_text(text)
                else:
                    assert set(v) == {"name", "emptyDir"}, v
                    target.mkdir()
        return root

    def env(self, c: dict, root: Path, index: int | None) -> dict:
        env = {"PATH": os.path.dirname(sys.executable) + os.pathsep + os.environ.get("PATH", "/usr/bin:/bin")}
        for e in c["env"]:
            if "value" in e:
                value = e["value"]
                if value == self.rendezvous_host:
                    value = LOOPBACK
                elif value.startswith(WORKDIR):
                    value = self.local(value, root)
            else:
                path = e["valueFrom"]["fieldRef"]["fieldPath"]
                if path == "status.podIP":
                    value = LOOPBACK
                else:
                    assert path == "metadata.annotations['batch.kubernetes.io/job-completion-index']", path
                    assert index is not None, f"{c['name']} reads a Job index outside an Indexed Job"
                    value = str(index)
            env[e["name"]] = value
        return env

    def start(self, c: dict, root: Path, index: int | None = None, args: list[str] | None = None) -> subprocess.Popen:
        argv = c["command"] + (args if args is not None else c["args"])
        log = open(root / f"{c['name']}.log", "w")
        proc = subprocess.Popen(argv, cwd=root, env=self.env(c, root, index), stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        proc.log_path = root / f"{c['name']}.log"
        self.procs.append(proc)
        return proc

    def run(self, c: dict, root: Path, index: int | None = None, timeout: float = 60) -> None:
        proc = self.start(c, root, index)
        assert proc.wait(timeout=timeout) == 0, f"{c['name']}: exit {proc.returncode}\n{proc.log_path.read_text()}"

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)


def _spec(tmp_path: Path) -> dict:
    doc = example_doc()
    doc["serving"]["port"] = free_port()
    doc["serving"]["load_balancer"]["deregistration_delay_s"] = 1  # the drain's window, kept short here
    doc["kubernetes"]["rendezvous_port"] = free_port()
    doc["kubernetes"]["data"].update(source="raw/example.csv", key="id", partitions=2)
    doc["training"]["workload"].update(label="label", features=FEATURES, hidden=[8], epochs=2, checkpoint_every=0)
    return doc


def _probe(port: int, path: str) -> int:
    try:
        with urllib.request.urlopen(f"http://{LOOPBACK}:{port}{path}", timeout=2) as resp:
            return resp.status
    except OSError as exc:
        return getattr(exc, "code", 0) or 0


def test_manifests_run_data_training_and_serving(tmp_path):
    from infra.targets.local.training import make_example_data

    r = rendered(_spec(tmp_path))
    objects = r.objects
    train_job = one(objects, "Job", "k8s-fleet-train")
    data_job = one(objects, "Job", "k8s-fleet-data")
    headless = one(objects, "Service", "k8s-fleet-train")
    deployment = one(objects, "Deployment", "k8s-fleet-serve-main")
    kubelet = Kubelet(objects, tmp_path, f"{train_job['metadata']['name']}-0.{headless['metadata']['name']}")
    make_example_data(kubelet.claim / "raw" / "example.csv")
    try:
        # the data Job, then (what each training pod's init container does) the wait for its dataset
        data_pod = data_job["spec"]["template"]
        kubelet.run(data_pod["spec"]["containers"][0], kubelet.pod_root(data_pod, "data-0"), timeout=90)
        assert (kubelet.claim / "datasets" / "clicks" / "_manifest.json").is_file()

        # the Indexed Job: one pod per index, rendezvous on index 0 through the headless Service's name
        template = train_job["spec"]["template"]
        n = train_job["spec"]["completions"]
        assert n == train_job["spec"]["parallelism"] == 2
        roots = [kubelet.pod_root(template, f"train-{i}") for i in range(n)]
        for i, root in enumerate(roots):
            kubelet.run(template["spec"]["initContainers"][0], root, index=i, timeout=60)
        pods = [kubelet.start(template["spec"]["containers"][0], root, index=i) for i, root in enumerate(roots)]
        for i, proc in enumerate(pods):
            assert proc.wait(timeout=180) == 0, f"train pod {i}: exit {proc.returncode}\n{proc.log_path.read_text()}"
        model = kubelet.claim / "models" / "latest"
        metrics = json.loads((model / "metrics.json").read_text())
        assert metrics["world_size"] == 2, metrics
        assert (model / "model.json").is_file()
        assert any((kubelet.claim / "checkpoints").iterdir()), "no checkpoint written"

        # serving: wait for the model (init container), start the replica, probe the manifest's own probes
        template = deployment["spec"]["template"]
        root = kubelet.pod_root(template, "serve-0")
        kubelet.run(template["spec"]["initContainers"][0], root, timeout=30)
        c = template["spec"]["containers"][0]
        ports = {p["name"]: p["containerPort"] for p in c["ports"]}
        args = list(c["args"])
        assert args[args.index("--host") + 1] == "0.0.0.0"
        args[args.index("--host") + 1] = LOOPBACK
        replica = kubelet.start(c, root, args=args)
        ready = c["readinessProbe"]["httpGet"]
        live = c["livenessProbe"]["httpGet"]
        port = ports[ready["port"]]
        deadline = time.monotonic() + 60
        while _probe(port, ready["path"]) != 200:
            assert replica.poll() is None, replica.log_path.read_text()
            assert time.monotonic() < deadline, "never ready\n" + replica.log_path.read_text()
            time.sleep(0.2)
        assert _probe(ports[live["port"]], live["path"]) == 200
        body = json.dumps({"instances": [[0.1] * len(FEATURES), [-1.0] * len(FEATURES)]}).encode()
        req = urllib.request.Request(f"http://{LOOPBACK}:{port}/v1/predict", data=body,
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            predictions = json.loads(resp.read())["predictions"]
        assert len(predictions) == 2 and set(predictions) <= {0, 1}

        # preStop starts the drain (SIGTERM to the main process) and returns once it exited cleanly
        prestop = c["lifecycle"]["preStop"]["exec"]["command"]
        script = prestop[-1]
        assert "kill -TERM 1;" in script and "kill -0 1 " in script
        pid = str(replica.pid)
        hook = subprocess.Popen(prestop[:-1] + [script.replace("kill -TERM 1;", f"kill -TERM {pid};")
                                                .replace("kill -0 1 ", f"kill -0 {pid} ")])
        # the replica drains (the deregistration window, then in-flight requests) and exits 0; waiting
        # reaps it here, as a container's end would, so the hook's `kill -0` then finds it gone
        assert replica.wait(timeout=template["spec"]["terminationGracePeriodSeconds"]) == 0, \
            replica.log_path.read_text()
        assert hook.wait(timeout=5) == 0
    finally:
        kubelet.stop_all()
