"""Benchmark: a serving instance from the start of its bootstrap to /readyz 200, and what it fetched.

Issue 14's bar: with the image's torch, bootstrap to /readyz in under 20 s here, and 0 bytes
fetched from outside the bucket. The instance is the one tests/bootstrap/test_executed.py boots
(tests/bootstrap/netns.py: private mount + network namespaces, a fake IMDSv2, the emulator's S3
relayed in, no route out), from the user_data render writes for a stack the emulator target
applied. Cases, side by side:

(a) wheelhouse: every pinned requirement, torch included (the CPU wheel this machine's pip
    sources hold), comes from the bucket. `gpufleet bundle` builds the wheelhouse for the
    serving stack with `runtime.torch: wheelhouse`; render puts it into the bundle, and the
    bench uploads the rendered bundle/ to a second bucket key by key, as the storage module's
    objects would (one applied stack holds one wheelhouse: the emulator already holds (b)'s).
(b) image torch (`use_image_torch`, the default): the applied stack's own wheelhouse (every
    requirement but torch) in the bucket, and the image's Python (torch and the rest but
    xxhash, see tests/bootstrap/conftest.py) builds the venv, so the instance fetches and
    installs only what the image lacks.
(c) PyPI, the old path: not measured. The instance has no route out by design, and this
    machine reaches PyPI only through local caches, so a figure would not be PyPI's.

Bytes from the bucket are those the relay to the emulator carried into the instance; bytes
from outside are 0 because a connection to anything else fails (checked every run).

    .venv/bin/python bench/bootstrap_bench.py            # (a) and (b)
    .venv/bin/python bench/bootstrap_bench.py --only b   # one case
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from common import ROOT, save_result  # noqa: E402  (also puts the repository on sys.path)

sys.path.insert(0, os.path.join(ROOT, "tests", "bootstrap"))
import netns  # noqa: E402
from conftest import (PYTHON, REGION, SERVING, SPEC, STACK, boto, fill_template, imds_values,  # noqa: E402
                      make_fleet, write_model)

PORT = 8080
BAR_S = 20.0


def torch_bundle(tmp: Path, endpoint: str) -> tuple[str, int]:
    """Case (a): the serving stack with torch in its wheelhouse, bundled, rendered and uploaded
    to its own bucket; (its user_data, the wheelhouse's bytes)."""
    sys.path.insert(0, os.path.join(ROOT, "tests", "e2e"))
    from e2e_helpers import run_gpufleet

    from infra.render.render import render
    from infra.spec import load_stack
    spec = tmp / "torch-stack.yaml"
    text = SPEC.replace("EPOCHS", "1") + SERVING
    spec.write_text(text.replace('runtime: {python_version: "%s"}' % PYTHON,
                                 'runtime: {python_version: "%s", torch: wheelhouse}' % PYTHON))
    root = tmp / "torch-root"
    print("building the wheelhouse with torch (gpufleet bundle) ...", flush=True)
    print(run_gpufleet("bundle", str(spec), "--root", str(root), timeout=900).stdout.strip(), flush=True)
    r = load_stack(spec)
    render(r, root)
    bucket = f"{STACK}-torch"
    s3 = boto("s3", endpoint)
    s3.create_bucket(Bucket=bucket)
    for path in sorted(p for p in (root / "bundle").rglob("*") if p.is_file()):
        s3.upload_file(str(path), bucket, path.relative_to(root).as_posix())
    template = (root / "user_data" / "serve.sh.tftpl").read_text()
    wheels = sum(p.stat().st_size for p in (root / "bundle" / "wheelhouse").glob("*/*.whl"))
    return fill_template(template, {"bucket": bucket, "group": r.pools[0].group_name}), wheels


def boot_once(fleet, case: str, user_data: str) -> dict:
    """One serving instance for `case` ("a" or "b") booted from `user_data`: seconds and bytes."""
    metadata = imds_values("i-0be4c40000000000a" + case, "10.20.0.60", "us-east-1a", f"{STACK}-serve")
    inst = netns.Instance(f"bench-{case}", fleet.tools, fleet.emulator, metadata,
                          image=fleet.image if case == "b" else None)
    try:
        probe = inst.run(sys.executable, "-c", "import socket; socket.create_connection(('151.101.0.223', 443), timeout=3)",
                         check=False)
        assert probe.returncode != 0 and "unreachable" in probe.stderr.lower(), "the instance has a route out"
        start = time.monotonic()
        code, boot_s = inst.boot(user_data, REGION, timeout=900)
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
            results, user_data = {}, {"b": fleet.user_data["serve"]}
            wheelhouse_bytes = {"b": fleet.wheelhouse_bytes}
            if args.only in (None, "a"):
                user_data["a"], wheelhouse_bytes["a"] = torch_bundle(Path(tmp), info.endpoint)
                write_model(info.endpoint, f"{STACK}-torch", Path(tmp) / "model-a")
            for case in ("b", "a"):
                if args.only in (None, case):
                    print(f"booting case ({case}) ...", flush=True)
                    results[case] = boot_once(fleet, case, user_data[case])
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
              + f"; wheelhouse {wheelhouse_bytes[case] / 1e6:.1f} MB")
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
