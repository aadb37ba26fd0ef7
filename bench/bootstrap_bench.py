"""Benchmark: a serving instance from the start of its bootstrap to /readyz 200, and what it fetched.

Issue 14's bar: with the image's torch, bootstrap to /readyz in under 20 s here, and 0 bytes
fetched from outside the bucket. The instance is the one tests/bootstrap/test_executed.py boots
(tests/bootstrap/netns.py: private mount + network namespaces, a fake IMDSv2, the emulator's S3
relayed in, no route out), from the user_data render writes for a stack the emulator target
applied. Cases, side by side:

(a) wheelhouse: every pinned requirement, torch included (the CPU wheel on this disk), comes
    from the bucket. A wheelhouse is built once with `pip download` into build/bench/ and
    uploaded under bundle/wheelhouse/. Stand-in: the bench copies it from the bucket into
    /opt/gpufleet/wheelhouse inside the instance (counted in the time and the bucket bytes),
    until runtime/bootstrap.py fetches the wheelhouse itself.
(b) image torch: the image's Python carries torch and the rest (the dev environment's, see
    tests/bootstrap/conftest.py); pip installs only gpufleet's wheel.
(c) PyPI, the old path: not measured. The instance has no route out by design, and this
    machine reaches PyPI only through local caches, so a figure would not be PyPI's.

Bytes from the bucket are those the relay to the emulator carried into the instance; bytes
from outside are 0 because a connection to anything else fails (checked every run).

    .venv/bin/python bench/bootstrap_bench.py            # (a) and (b)
    .venv/bin/python bench/bootstrap_bench.py --only b   # one case
"""

from __future__ import annotations

import argparse
import hashlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, save_result  # noqa: E402  (also puts the repository on sys.path)

sys.path.insert(0, os.path.join(ROOT, "tests", "bootstrap"))
import netns  # noqa: E402
from conftest import REGION, STACK, boto, imds_values, make_fleet  # noqa: E402

PORT = 8080
BAR_S = 20.0
FETCH_WHEELHOUSE = r"""
import os, sys, boto3
bucket, prefix, dest = sys.argv[1:4]
s3 = boto3.client("s3")
os.makedirs(dest, exist_ok=True)
for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
    for o in page.get("Contents", []):
        s3.download_file(bucket, o["Key"], os.path.join(dest, o["Key"].rsplit("/", 1)[-1]))
"""


def build_wheelhouse(requirements: Path) -> Path:
    """Every wheel the pinned requirements need (x86_64, this Python), cached by their digest."""
    digest = hashlib.sha256(requirements.read_bytes()).hexdigest()[:12]
    folder = Path(ROOT) / "build" / "bench" / f"wheelhouse-{digest}"
    if not (folder / ".complete").exists():
        folder.mkdir(parents=True, exist_ok=True)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--only-binary=:all:", "-d", str(folder),
                        "-r", str(requirements)], check=True)
        (folder / ".complete").write_text("")
    return folder


def upload_wheelhouse(fleet, folder: Path) -> int:
    s3 = boto("s3", fleet.endpoint)
    total = 0
    for wheel in sorted(folder.glob("*.whl")):
        s3.upload_file(str(wheel), fleet.bucket, f"bundle/wheelhouse/{wheel.name}")
        total += wheel.stat().st_size
    return total


def boot_once(fleet, case: str) -> dict:
    """One serving instance for `case` ("a" or "b"): seconds and bytes."""
    metadata = imds_values("i-0be4c40000000000a" + case, "10.20.0.60", "us-east-1a", f"{STACK}-serve")
    inst = netns.Instance(f"bench-{case}", fleet.tools, fleet.emulator, metadata,
                          image=fleet.image if case == "b" else None, image_on_pythonpath=fleet.image_on_pythonpath)
    try:
        probe = inst.run(sys.executable, "-c", "import socket; socket.create_connection(('151.101.0.223', 443), timeout=3)",
                         check=False)
        assert probe.returncode != 0 and "unreachable" in probe.stderr.lower(), "the instance has a route out"
        start = time.monotonic()
        if case == "a":
            inst.run(sys.executable, "-c", FETCH_WHEELHOUSE, fleet.bucket, "bundle/wheelhouse/", "/opt/gpufleet/wheelhouse",
                     env=inst.environment(REGION), timeout=600)
        else:
            inst.sh("mkdir -p /opt/gpufleet/wheelhouse")
        fetched_wheelhouse_s = time.monotonic() - start
        code, boot_s = inst.boot(fleet.user_data["serve"], REGION, timeout=900)
        if code != 0:
            raise RuntimeError(f"case {case}: the bootstrap failed\n{inst.console()}")
        while inst.http_get(f"http://127.0.0.1:{PORT}/readyz", timeout=2)[0] != 200:
            if time.monotonic() - start > 600:
                raise RuntimeError(f"case {case}: no /readyz 200 after 600 s\n{inst.unit_log('serve')[-3000:]}")
            time.sleep(0.1)
        ready_s = time.monotonic() - start
        steps = {line.split(": ", 1)[1].rsplit(" ok (", 1)[0]: float(line.rsplit("(", 1)[1].split(" s)")[0])
                 for line in inst.console().splitlines() if " ok (" in line}
        return {"case": case, "ready_s": round(ready_s, 2), "bootstrap_s": round(boot_s, 2),
                "wheelhouse_copy_s": round(fetched_wheelhouse_s, 2) if case == "a" else 0.0,
                "steps_s": steps, "bucket_bytes": inst.relay.bytes_in, "outside_bytes": 0}
    finally:
        inst.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--only", choices=["a", "b"], default=None)
    args = ap.parse_args()
    reason = netns.unavailable()
    if reason:
        print(f"skipped: {reason}")
        return 0
    from infra import emulator
    info, started = emulator.start()
    try:
        with tempfile.TemporaryDirectory(prefix="bootstrap-bench-") as tmp:
            print("applying the training stack to the emulator and rendering the serving user_data ...", flush=True)
            fleet = make_fleet(Path(tmp), info.endpoint)
            results, wheelhouse_bytes = {}, 0
            if args.only in (None, "a"):
                requirements = Path(tmp) / "requirements.txt"
                requirements.write_bytes(boto("s3", info.endpoint).get_object(
                    Bucket=fleet.bucket, Key="bundle/requirements.txt")["Body"].read())
                print("building the wheelhouse (pip download, cached under build/bench/) ...", flush=True)
                wheelhouse_bytes = upload_wheelhouse(fleet, build_wheelhouse(requirements))
            for case in ("b", "a"):
                if args.only in (None, case):
                    print(f"booting case ({case}) ...", flush=True)
                    results[case] = boot_once(fleet, case)
    finally:
        if started:
            emulator.stop()

    names = {"a": "(a) wheelhouse, torch from the bucket", "b": "(b) image torch",
             "c": "(c) PyPI (old path)"}
    print(f"\n{'case':40} {'to /readyz':>11} {'bootstrap':>10} {'from bucket':>12} {'from outside':>13}")
    for case in ("a", "b"):
        r = results.get(case)
        if r:
            print(f"{names[case]:40} {r['ready_s']:>9.2f} s {r['bootstrap_s']:>8.2f} s "
                  f"{r['bucket_bytes'] / 1e6:>9.1f} MB {r['outside_bytes']:>11} B")
    print(f"{names['c']:40} {'skipped: no route out of the instance (by design); PyPI is not measured':>40}")
    for case, r in results.items():
        print(f"  ({case}) steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in r["steps_s"].items())
              + (f"; wheelhouse copy {r['wheelhouse_copy_s']:.2f} s" if case == "a" else ""))
    if "b" in results:
        ok = results["b"]["ready_s"] < BAR_S and results["b"]["outside_bytes"] == 0
        print(f"bar: image torch to /readyz < {BAR_S:.0f} s with 0 bytes from outside: "
              f"{'met' if ok else 'NOT met'} ({results['b']['ready_s']:.2f} s)")
    load = os.getloadavg()[0]
    print(f"load average (1 min) at the end: {load:.2f}")
    path = save_result("bootstrap_bench", {"results": results, "wheelhouse_bytes": wheelhouse_bytes,
                                           "bar_s": BAR_S, "load_avg_1m": load,
                                           "pypi": "skipped: no route out of the instance namespace"})
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
