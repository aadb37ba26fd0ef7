"""A recording stand-in for `kubectl`, for the tests of infra/targets/kubectl.py.

No Kubernetes API server can run on these machines (no Docker engine for kind, no kube-apiserver
binary), so the commands apply and destroy send to a cluster are checked against this script
instead: `install(dir, scenario)` writes it to DIR/kubectl (put DIR first on PATH); each call
appends its argv (without the program name) as one JSON line to the log, and answers from the
scenario:

    {"contexts": [...], "current": "ctx" | null,
     "namespaces": [...],                       # `get namespace NS`: NotFound unless listed
     "refuse": ["patch deployments.apps", ...], # `auth can-i VERB KIND`: "no" for these, else "yes"
     "apply_out": "deployment.apps/x\n...",     # stdout of `apply ... -o name`
     "apply_fail": "Error from server ...",     # or: stderr and exit 1
     "jobs": [[{"name": n, "state": "pending|running|complete|failed"}, ...], ...],
                                                # successive answers to `get jobs.batch` (the last repeats)
     "diff_rc": 0 | 1 | 2, "diff_out": "...",
     "delete_out": "deployment.apps/x\n...",
     "names": {"jobs.batch": "job.batch/x\n", ...},  # `get KIND -o name`
     "jsonpath": "2",                             # `get ... -o jsonpath=...`
     "forward_port": 12345}                       # `port-forward` prints it, then waits to be stopped

The config commands (`config get-contexts`, `current-context`) are answered from the scenario
too; the tests of those against a real kubectl use a real kubeconfig instead.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

SCRIPT = r'''#!{python}
import json, sys
from pathlib import Path
here = Path(__file__).parent
scenario = json.loads((here / "scenario.json").read_text())
argv = sys.argv[1:]
with open(here / "calls.jsonl", "a") as log:
    log.write(json.dumps(argv) + "\n")
TAKES_VALUE = {"--context", "--kubeconfig", "-n", "--namespace", "-l", "-o", "-k", "-f", "--address"}
words, flags, skip = [], {}, None
for a in argv:
    if skip:
        flags[skip], skip = a, None
    elif a in TAKES_VALUE:
        skip = a
    elif not a.startswith("-"):
        words.append(a)
verb = words[0] if words else ""

def out(text="", code=0, err=""):
    sys.stdout.write(text)
    sys.stderr.write(err)
    sys.exit(code)

if words[:2] == ["config", "get-contexts"]:
    out("".join(c + "\n" for c in scenario.get("contexts", [])))
if words[:2] == ["config", "current-context"]:
    cur = scenario.get("current")
    out(cur + "\n") if cur else out("", 1, "error: current-context is not set\n")
if verb == "get" and words[1] == "namespace":
    ns = words[2]
    if ns in scenario.get("namespaces", []):
        out("namespace/" + ns + "\n")
    out("", 1, 'Error from server (NotFound): namespaces "' + ns + '" not found\n')
if verb == "auth":
    pair = words[2] + " " + words[3]
    out("no\n", 1) if pair in scenario.get("refuse", []) else out("yes\n")
if verb == "apply":
    if scenario.get("apply_fail"):
        out("", 1, 'E1202 12:00:00.000000 1 memcache.go:265] "Unhandled Error"\n' + scenario["apply_fail"] + "\n")
    out(scenario.get("apply_out", ""))
if verb == "get" and flags.get("-o") == "name" and words[1] != "namespace":
    out(scenario.get("names", {}).get(words[1], ""))
if verb == "get" and flags.get("-o", "").startswith("jsonpath"):
    out(scenario.get("jsonpath", ""))
if verb == "get" and words[1] == "jobs.batch":
    counter = here / "jobs.count"
    n = int(counter.read_text()) if counter.exists() else 0
    counter.write_text(str(n + 1))
    rounds = scenario.get("jobs", [[]])
    jobs = rounds[min(n, len(rounds) - 1)]
    conds = {"complete": [{"type": "Complete", "status": "True"}], "failed": [{"type": "Failed", "status": "True"}]}
    items = [{"metadata": {"name": j["name"]},
              "status": {"conditions": conds.get(j["state"], []), "active": 1 if j["state"] == "running" else 0}}
             for j in jobs]
    out(json.dumps({"items": items}))
if verb == "rollout":
    out('deployment "x" successfully rolled out\n')
if verb == "diff":
    out(scenario.get("diff_out", ""), scenario.get("diff_rc", 0), "error: diff failed\n" if scenario.get("diff_rc", 0) > 1 else "")
if verb == "delete":
    out(scenario.get("delete_out", ""))
if verb in ("create", "wait") or (verb == "apply" and "-f" in flags):
    out("")
if verb == "exec":
    sys.stdin.buffer.read()  # the data the caller streams in
    out("")
if verb == "port-forward":
    print("Forwarding from 127.0.0.1:%d -> 8080" % scenario["forward_port"], flush=True)
    import time
    time.sleep(600)
out("", 1, "error: the fake kubectl does not know " + " ".join(argv) + "\n")
'''


def install(directory: Path, scenario: dict) -> Path:
    """Write the fake kubectl and its scenario into `directory`; returns the script's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "kubectl"
    path.write_text(SCRIPT.replace("{python}", sys.executable))
    path.chmod(0o755)
    (directory / "scenario.json").write_text(json.dumps(scenario))
    return path


def calls(directory: Path) -> list[list[str]]:
    """The argv of every call so far, in order."""
    log = directory / "calls.jsonl"
    return [json.loads(line) for line in log.read_text().splitlines()] if log.exists() else []
