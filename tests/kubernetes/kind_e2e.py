"""`make kind-e2e`: the kubernetes target end to end on a throwaway kind cluster.

    python tests/kubernetes/kind_e2e.py [--keep] [--name gpufleet-e2e] [--torch-index-url URL]
    (or `make kind-e2e`)

Where Docker (an engine, not only the client), kind and kubectl exist, this:
1. writes the runtime bundle to build/image/bundle/ and builds the image from the Dockerfile;
2. creates a kind cluster (its own kubeconfig in a temporary folder: the user's is not touched)
   and loads the image into it;
3. puts a synthetic click dataset (user_id, x0..x7, clicked) on a claim of the cluster's default
   storage class, through a pod running the image;
4. derives a spec from examples/k8s-gpu-fleet.yaml for a GPU-less cluster (the same fleets and
   objects, with CPU pods, no GPU node selectors, the loaded image and that claim) and runs
   `gpufleet apply --target kubernetes --context kind-NAME --yes`, which waits for the Jobs to
   start and the serving rollout (serving waits for the trained model);
5. waits for the Indexed training Job to complete on both ranks, port-forwards the serving
   Service and sends predictions;
6. runs `gpufleet destroy` and checks nothing labelled with the stack is left;
7. deletes the cluster (always, unless --keep), also when a step fails.

Without a Docker engine, kind or kubectl it prints `skipped: <why>` and exits 0: these machines have
the Docker client but no engine, and no kind. The kind node runs every pod, so it needs about 4
CPUs and 12 GiB of memory (the data-preparation Job alone asks for 2 CPUs and 8 GiB). Exit 1 on
a failed step, naming it.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "k8s-gpu-fleet.yaml"
BUNDLE_DIR = REPO / "build" / "image" / "bundle"
STACK = "kind-e2e"
NAMESPACE = "gpufleet-e2e"
CLAIM = "kind-e2e-artifacts"
FEATURES = 8
ROWS = 4000
STACK_LABEL = "gpufleet.io/stack"
CPU_TORCH_INDEX = "https://download.pytorch.org/whl/cpu"  # PyTorch's public CPU-only wheel index


class StepFailed(Exception):
    pass


def missing_tools() -> str | None:
    """Why this cannot run here (None when it can): a Docker engine, kind and kubectl are needed."""
    if shutil.which("docker") is None:
        return "no docker on PATH (a Docker engine is needed to run kind)"
    info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True)
    if info.returncode != 0 or not info.stdout.strip():
        why = (info.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine (docker info: {why})"
    if shutil.which("kind") is None:
        return "no kind on PATH (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
    if shutil.which("kubectl") is None:
        return "no kubectl on PATH"
    return None


def step(title: str):
    print(f"== {title}", flush=True)
    return time.monotonic()


def run(*cmd: str, env: dict | None = None, input_file: Path | None = None, timeout: float = 900,
        cwd: Path | None = None, stream: bool = False) -> str:
    """Run a command, echoing it; StepFailed with its output's tail when it fails.

    `stream`: its output goes straight to ours (gpufleet's progress lines), and "" is returned.
    """
    print("   $ " + " ".join(cmd), flush=True)
    if stream:
        res = subprocess.run(cmd, env=env, stdin=subprocess.DEVNULL, timeout=timeout, cwd=cwd)
        if res.returncode != 0:
            raise StepFailed(f"{' '.join(cmd[:4])} exited {res.returncode} (its output is above)")
        return ""
    stdin = open(input_file, "rb") if input_file else subprocess.DEVNULL
    try:
        res = subprocess.run(cmd, env=env, stdin=stdin, capture_output=True, timeout=timeout, cwd=cwd)
    finally:
        if input_file:
            stdin.close()
    out = res.stdout.decode(errors="replace")
    if res.returncode != 0:
        tail = (res.stderr.decode(errors="replace") or out)[-2000:]
        raise StepFailed(f"{' '.join(cmd[:4])} exited {res.returncode}:\n{tail}")
    return out


def write_bundle() -> None:
    """build/image/bundle/: the wheel and pinned requirements the Dockerfile installs (infra/bundle.py)."""
    sys.path.insert(0, str(REPO))
    from infra.bundle import bundle_files

    if BUNDLE_DIR.exists():
        shutil.rmtree(BUNDLE_DIR)
    BUNDLE_DIR.mkdir(parents=True)
    for name, data in bundle_files().items():
        (BUNDLE_DIR / name).write_bytes(data)


def write_dataset(path: Path) -> None:
    """A synthetic two-class click log: a user_id key, FEATURES features, a clicked label."""
    import random

    rng = random.Random(0)
    w = [rng.gauss(0, 1) for _ in range(FEATURES)]
    with open(path, "w") as f:
        f.write("user_id," + ",".join(f"x{i}" for i in range(FEATURES)) + ",clicked\n")
        for i in range(ROWS):
            x = [rng.gauss(0, 1) for _ in range(FEATURES)]
            y = int(sum(a * b for a, b in zip(w, x)) + 0.3 * rng.gauss(0, 1) > 0)
            f.write(f"{i}," + ",".join(f"{v:.5f}" for v in x) + f",{y}\n")


def kind_spec(image: str) -> dict:
    """The example, for a kind cluster: CPU pods anywhere, the loaded image, the claim made here."""
    import yaml

    spec = yaml.safe_load(EXAMPLE.read_text())
    spec["name"] = STACK
    spec["training"]["nodes"] = {"min": 1, "desired": 2, "max": 2}
    spec["training"]["workload"].update(hidden=[32], epochs=2, checkpoint_every=20, max_restarts=1)
    spec["serving"]["replicas"] = {"min": 1, "desired": 1, "max": 2}
    spec["serving"]["autoscaling"] = {"metric": "cpu_utilization", "target": 60,
                                      "scale_out_cooldown_s": 30, "scale_in_cooldown_s": 60}
    k = spec["kubernetes"]
    k.update(image=image, image_pull_policy="Never", namespace=NAMESPACE, storage={"claim": CLAIM})
    k["data"].update(partitions=4)
    cpu_pods = {"gpus": 0, "node_selector": {}, "tolerations": [], "spot_node_selector": {}, "spot_tolerations": []}
    k["training"] = {**cpu_pods, "cpu": "1", "memory": "2Gi"}
    k["serving"] = {**cpu_pods, "cpu": "500m", "memory": "1Gi"}
    return spec


LOADER = """\
apiVersion: v1
kind: Pod
metadata: {{name: dataset-loader, namespace: {ns}}}
spec:
  restartPolicy: Never
  securityContext: {{runAsNonRoot: true, runAsUser: 10001, runAsGroup: 10001, fsGroup: 10001}}
  containers:
  - name: loader
    image: {image}
    imagePullPolicy: Never
    command: [sleep, "3600"]
    workingDir: /var/lib/gpufleet
    volumeMounts: [{{name: artifacts, mountPath: /var/lib/gpufleet/artifacts}}]
  volumes: [{{name: artifacts, persistentVolumeClaim: {{claimName: {claim}}}}}]
---
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {{name: {claim}, namespace: {ns}}}
spec:
  accessModes: [ReadWriteOnce]   # one kind node: every pod mounts it from the same node
  resources: {{requests: {{storage: 1Gi}}}}
"""


def port_forward(kube: list[str], service: str, env: dict) -> tuple[subprocess.Popen, int]:
    """`kubectl port-forward` to the Service on a free loopback port; (process, port). Stopped by pid."""
    proc = subprocess.Popen([*kube, "port-forward", "--address", "127.0.0.1", service, "0:80"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()  # "Forwarding from 127.0.0.1:PORT -> 8080"
    if "Forwarding from 127.0.0.1:" not in line:
        proc.terminate()
        raise StepFailed(f"port-forward to {service}: {line or proc.stderr.read()}")
    return proc, int(line.split("127.0.0.1:")[1].split()[0])


def predict(port: int, n_requests: int = 50) -> list[float]:
    """POST n_requests predictions of 4 rows each; their latencies in ms (StepFailed on a wrong answer)."""
    latencies = []
    for i in range(n_requests):
        rows = [[((i + r + j) % 7 - 3) / 3 for j in range(FEATURES)] for r in range(4)]
        req = urllib.request.Request(f"http://127.0.0.1:{port}/v1/predict", data=json.dumps({"instances": rows}).encode(),
                                     headers={"content-type": "application/json"})
        t0 = time.perf_counter()
        with urllib.request.urlopen(req, timeout=30) as resp:
            body = json.loads(resp.read())
        latencies.append((time.perf_counter() - t0) * 1000)
        if len(body.get("predictions", [])) != len(rows):
            raise StepFailed(f"prediction {i}: expected {len(rows)} predictions, got {body}")
    return latencies


def e2e(work: Path, name: str, image: str, torch_index_url: str | None, keep: bool) -> None:
    env = {**os.environ, "KUBECONFIG": str(work / "kubeconfig")}
    context = f"kind-{name}"
    kube = ["kubectl", "--context", context, "-n", NAMESPACE]
    gpufleet = [sys.executable, "-m", "infra.cli"]

    step("1. the runtime bundle and image")
    write_bundle()
    build_args = ["--build-arg", f"TORCH_INDEX_URL={torch_index_url}"] if torch_index_url else []
    run("docker", "build", "-t", image, *build_args, str(REPO), timeout=1800)

    step(f"2. kind cluster {name}")
    run("kind", "create", "cluster", "--name", name, "--kubeconfig", env["KUBECONFIG"], "--wait", "180s", env=env)
    try:
        run("kind", "load", "docker-image", image, "--name", name, env=env, timeout=900)
        run("kubectl", "--context", context, "create", "namespace", NAMESPACE, env=env)

        step("3. the raw dataset on the artifacts claim")
        (work / "loader.yaml").write_text(LOADER.format(ns=NAMESPACE, image=image, claim=CLAIM))
        run("kubectl", "--context", context, "apply", "-f", str(work / "loader.yaml"), env=env)
        run(*kube, "wait", "--for=condition=Ready", "pod/dataset-loader", "--timeout=180s", env=env)
        write_dataset(work / "clicks.csv")
        run(*kube, "exec", "-i", "dataset-loader", "--", "sh", "-c",
            "mkdir -p artifacts/raw && cat > artifacts/raw/clicks.csv", env=env, input_file=work / "clicks.csv")
        run(*kube, "delete", "pod", "dataset-loader", "--grace-period=1", "--wait=true", env=env)  # sleep ignores TERM

        step("4. gpufleet apply --target kubernetes")
        import yaml

        spec_path = work / "kind-e2e.yaml"
        spec_path.write_text(yaml.safe_dump(kind_spec(image), sort_keys=False))
        t0 = time.monotonic()
        run(*gpufleet, "apply", str(spec_path), "--target", "kubernetes", "--context", context, "--yes",
            env=env, cwd=work, timeout=1200, stream=True)
        print(f"   applied and rolled out in {time.monotonic() - t0:.1f} s")

        step("5. training to completion, then predictions through the Service")
        train = run(*kube, "get", "jobs.batch", "-l", f"{STACK_LABEL}={STACK},app.kubernetes.io/component=train",
                    "-o", "name", env=env).split()
        if len(train) != 1:
            raise StepFailed(f"expected one training Job, found {train}")
        run(*kube, "wait", "--for=condition=complete", train[0], "--timeout=900s", env=env, timeout=960)
        succeeded = run(*kube, "get", train[0], "-o", "jsonpath={.status.succeeded}", env=env)
        if succeeded.strip() != "2":
            raise StepFailed(f"{train[0]}: {succeeded!r} ranks succeeded, expected 2")
        service = run(*kube, "get", "services", "-l", f"{STACK_LABEL}={STACK},app.kubernetes.io/component=serve",
                      "-o", "name", env=env).split()[0]
        proc, port = port_forward(kube, service, env)
        try:
            lat = sorted(predict(port))
            print(f"   {len(lat)} predictions: p50 {lat[len(lat) // 2]:.1f} ms, max {lat[-1]:.1f} ms")
        finally:
            proc.terminate()
            proc.wait(timeout=10)

        step("6. gpufleet destroy")
        run(*gpufleet, "destroy", str(spec_path), "--target", "kubernetes", "--context", context, "--yes",
            env=env, cwd=work, timeout=600, stream=True)
        left = run(*kube, "get", "deployments,jobs,services,configmaps,pdb,hpa,networkpolicies", "-l",
                   f"{STACK_LABEL}={STACK}", "-o", "name", env=env).split()
        if left:
            raise StepFailed(f"destroy left {left}")
    finally:
        if keep:
            print(f"== kept cluster {name} (KUBECONFIG={env['KUBECONFIG']}); delete it: kind delete cluster --name {name}")
        else:
            step(f"7. delete cluster {name}")
            subprocess.run(["kind", "delete", "cluster", "--name", name, "--kubeconfig", env["KUBECONFIG"]], env=env)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--name", default="gpufleet-e2e", help="the kind cluster's name")
    p.add_argument("--image", default="gpufleet-runtime:kind-e2e", help="the image tag to build and load")
    p.add_argument("--torch-index-url", default=os.environ.get("TORCH_INDEX_URL") or CPU_TORCH_INDEX,
                   help="where the image gets torch (default: PyTorch's CPU wheel index, as kind has no GPU; "
                        "'' for PyPI's CUDA build)")
    p.add_argument("--keep", action="store_true", help="keep the cluster afterwards")
    args = p.parse_args(argv)
    reason = missing_tools()
    if reason:
        print(f"skipped: {reason}")
        return 0
    t0 = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="gpufleet-kind-") as tmp:
        try:
            e2e(Path(tmp), args.name, args.image, args.torch_index_url or None, args.keep)
        except StepFailed as exc:
            print(f"failed: {exc}", file=sys.stderr)
            return 1
    print(f"passed: kind end to end in {time.monotonic() - t0:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
