"""kubectl, as the kubernetes target drives it: the cluster operations behind plan, apply and destroy.

The target renders plain manifests (build/<stack>/kubernetes/, a kustomization); everything that
talks to a cluster goes through this module and through the user's own `kubectl`, so what
gpufleet does is what a user could type, and authentication (exec plugins, OIDC, cloud CLIs) is
kubectl's business. The contract:

- Every call names the context (`--context`): a current-context that changes between two calls
  (another terminal, a CI step) never redirects an apply.
- The checks come before any change: `resolve_context` (the context exists), then
  `check_namespace_writable` (the namespace exists and the user may create and patch each kind the
  stack renders). A failed check is BadInput (exit 2) and nothing has been applied.
- A failing kubectl call becomes one line, OperationFailed (exit 1): the command and kubectl's
  first error line (with a count of the others).
- What gpufleet owns on a cluster is what carries the label `gpufleet.io/stack: <stack>`:
  `apply` uses server-side apply under the field manager `gpufleet`; `destroy` deletes exactly the
  objects of the kinds in `STACK_KINDS` with that label, nothing found by name.
- Progress events have the Terraform runner's shape (`{"type": "apply_start" | "apply_progress" |
  "apply_complete" | "apply_errored", "hook": {"resource": {"addr": ...}, "action": ...,
  "elapsed_seconds": ...}}`), so the CLI's ApplyProgress prints and counts them as it does for
  Terraform: each applied or deleted object completes once (counted); the waits for Jobs and
  rollouts complete with the action "read" (they read status and change nothing, like Terraform's
  data sources), so they are printed but not counted.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Literal

from runtime.errors import BadInput, OperationFailed

STACK_LABEL = "gpufleet.io/stack"
FIELD_MANAGER = "gpufleet"
INSTALL_HINT = ("install kubectl (https://kubernetes.io/docs/tasks/tools/, or your distribution's kubectl "
                "package) and make sure it is on PATH")
# Every kind the kubernetes target renders, namespaced, as kubectl names them (resource.group):
# what `check_namespace_writable` asks about and what `destroy` deletes by label. Deleting by an
# explicit list (never `kubectl delete all`) keeps destroy to what gpufleet renders.
STACK_KINDS = (
    "deployments.apps",
    "jobs.batch",
    "services",
    "configmaps",
    "poddisruptionbudgets.policy",
    "horizontalpodautoscalers.autoscaling",
    "persistentvolumeclaims",
    "serviceaccounts",
    "networkpolicies.networking.k8s.io",
)
APPLY_VERBS = ("create", "patch")  # server-side apply creates what is missing and patches the rest
DESTROY_VERBS = ("delete",)
ROLLOUT_TIMEOUT_S = 600
JOB_TIMEOUT_S = 600
DELETE_TIMEOUT_S = 300
JOB_POLL_S = 2.0
CHECK_TIMEOUT = "15s"  # --request-timeout of the read-only checks

Progress = Callable[[dict], None]


def kubectl_path() -> str:
    """The kubectl on PATH; BadInput saying how to get one when there is none."""
    path = shutil.which("kubectl")
    if path is None:
        raise BadInput(f"--target kubernetes: no kubectl on PATH; {INSTALL_HINT}")
    return path


def _run(args: list[str], context: str | None = None, *, timeout_s: float | None = None,
         ok_codes: tuple[int, ...] = (0,)) -> subprocess.CompletedProcess:
    """Run `kubectl [--context C] ARGS`; OperationFailed (one line) on an exit code outside `ok_codes`."""
    argv = [kubectl_path(), *(["--context", context] if context is not None else []), *args]
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise OperationFailed(f"kubectl {_shown(args)}: no answer within {timeout_s:.0f} s") from None
    if res.returncode not in ok_codes:
        raise OperationFailed(f"kubectl {_shown(args)}: {error_line(res.stderr, res.stdout)}")
    return res


def _shown(args: list[str]) -> str:
    """The command as the user would recognise it: its words up to the first flag."""
    words = []
    for a in args:
        if a.startswith("-"):
            break
        words.append(a)
    return " ".join(words)


def error_line(stderr: str, stdout: str = "") -> str:
    """kubectl's failure as one line: its first error line, and how many more there were.

    client-go's log lines (`E1202 18:31:14.812396 6734 memcache.go:265] ...`) repeat the cause in
    Go's words and are left out.
    """
    lines = [ln.strip() for ln in (stderr or stdout or "").splitlines()
             if ln.strip() and not re.match(r"^[IWEF]\d{4} \d", ln.strip())]
    errors = [ln for ln in lines if ln.lower().startswith(("error", "the ", "unable", "failed"))] or lines
    if not errors:
        return "failed without a message"
    more = f" (and {len(errors) - 1} more error line(s))" if len(errors) > 1 else ""
    return errors[0] + more


# -- checks: nothing is applied until these pass


def resolve_context(context: str | None) -> str:
    """The context to use: `context`, else kubectl's current-context (from $KUBECONFIG or ~/.kube/config).

    BadInput naming the context and listing those that exist when it is not one of them, or when
    no context is given and none is current. Reads the kubeconfig only: no API server is asked.
    """
    contexts = [c for c in _run(["config", "get-contexts", "-o", "name"]).stdout.split() if c]
    listed = ", ".join(contexts) if contexts else "none: the kubeconfig ($KUBECONFIG or ~/.kube/config) has no contexts"
    if context is None:
        res = _run(["config", "current-context"], ok_codes=(0, 1))
        current = res.stdout.strip()
        if res.returncode != 0 or not current:
            raise BadInput(f"--context: no context given and kubectl has no current-context (contexts: {listed})")
        context = current
    if context not in contexts:
        raise BadInput(f"--context: no such context in the kubeconfig (got {context!r}; contexts: {listed})")
    return context


def check_namespace_writable(context: str, namespace: str, verbs: tuple[str, ...] = APPLY_VERBS,
                             kinds: tuple[str, ...] = STACK_KINDS) -> None:
    """BadInput unless `namespace` exists and the user may do each of `verbs` on each of `kinds` in it.

    Asks the API server (`kubectl get namespace`, then `kubectl auth can-i VERB KIND -n NS` for
    every pair, concurrently) and reports every refusal at once, one line each naming the namespace,
    verb and kind. A namespace the user may not read (forbidden, not missing) is left to can-i.
    A cluster that does not answer is OperationFailed (exit 1), not bad input.
    """
    res = _run(["get", "namespace", namespace, "-o", "name", f"--request-timeout={CHECK_TIMEOUT}"], context,
               ok_codes=(0, 1))
    if res.returncode != 0:
        if "NotFound" in res.stderr or "not found" in res.stderr:
            raise BadInput(f"--namespace: namespace {namespace!r} does not exist in context {context!r} "
                           f"(create it: kubectl --context {context} create namespace {namespace})")
        if "Forbidden" not in res.stderr and "forbidden" not in res.stderr:
            raise OperationFailed(f"kubectl get namespace {namespace}: {error_line(res.stderr)}")

    def can_i(pair: tuple[str, str]) -> tuple[str, str, bool]:
        verb, kind = pair
        out = _run(["auth", "can-i", verb, kind, "-n", namespace, f"--request-timeout={CHECK_TIMEOUT}"], context,
                   ok_codes=(0, 1))
        answer = out.stdout.strip().split(" ", 1)[0] if out.stdout.strip() else ""
        if answer not in ("yes", "no"):  # exit 1 with no answer: the cluster did not reply
            raise OperationFailed(f"kubectl auth can-i {verb} {kind}: {error_line(out.stderr, out.stdout)}")
        return verb, kind, answer == "yes"

    pairs = [(v, k) for v in verbs for k in kinds]
    with ThreadPoolExecutor(max_workers=8) as pool:
        answers = list(pool.map(can_i, pairs))
    refused = [f"--namespace: context {context!r} may not {verb} {kind} in namespace {namespace!r} "
               f"(kubectl auth can-i {verb} {kind} -n {namespace}: no)" for verb, kind, ok in answers if not ok]
    if refused:
        raise BadInput(refused)


def _kustomization(manifest_dir: Path) -> Path:
    manifest_dir = Path(manifest_dir)
    if not any((manifest_dir / name).is_file() for name in ("kustomization.yaml", "kustomization.yml", "Kustomization")):
        raise BadInput(f"{manifest_dir}: no kustomization.yaml here; render the stack first "
                       "(gpufleet render SPEC --target kubernetes)")
    return manifest_dir


# -- the operations


def diff(manifest_dir: Path, context: str) -> str:
    """What applying `manifest_dir` would change, as `kubectl diff` shows it ("" when nothing would).

    Server-side, under gpufleet's field manager, so the diff is the one `apply` would make (the
    API server's defaults and admission included). Exit 1 means differences, not an error.
    """
    res = _run(["diff", "--server-side", f"--field-manager={FIELD_MANAGER}", "-k", str(_kustomization(manifest_dir))],
               context, ok_codes=(0, 1))
    return res.stdout


def apply(manifest_dir: Path, context: str, namespace: str, stack: str, progress: Progress | None = None, *,
          check: bool = True, jobs: Literal["started", "complete", "none"] = "started",
          rollout_timeout_s: float = ROLLOUT_TIMEOUT_S, job_timeout_s: float = JOB_TIMEOUT_S) -> None:
    """Apply the kustomization in `manifest_dir` with server-side apply, then wait for it to run.

    `check`: first check the namespace (`check_namespace_writable`), so a refusal applies nothing.
    Then `kubectl apply --server-side --field-manager=gpufleet -k DIR`; then the stack's Jobs are
    waited for (`jobs`: "started" = each Job running or done; "complete" = each done, as the kind
    end-to-end test asks; "none") before the Deployments' `kubectl rollout status`, since serving
    may need what the Jobs write. A failed Job or a rollout that does not finish in time is
    OperationFailed naming it.
    """
    def emit(kind: str, addr: str, action: str, elapsed: float = 0.0) -> None:
        if progress:
            progress({"type": kind, "hook": {"resource": {"addr": addr}, "action": action,
                                             "elapsed_seconds": int(elapsed)}})

    manifest_dir = _kustomization(manifest_dir)
    if check:
        check_namespace_writable(context, namespace)
    started = time.monotonic()
    res = _run(["apply", "--server-side", f"--field-manager={FIELD_MANAGER}", "-n", namespace,
                "-k", str(manifest_dir), "-o", "name"], context)
    applied = [line.strip() for line in res.stdout.splitlines() if line.strip()]
    for addr in applied:
        emit("apply_complete", addr, "apply", time.monotonic() - started)
    if jobs != "none":
        _wait_jobs(context, namespace, stack, jobs, job_timeout_s, emit)
    for addr in applied:
        if addr.startswith("deployment.apps/"):
            t0 = time.monotonic()
            emit("apply_start", addr, "rollout")
            _run(["rollout", "status", addr, "-n", namespace, f"--timeout={int(rollout_timeout_s)}s"], context)
            emit("apply_complete", f"{addr}: rolled out", "read", time.monotonic() - t0)


def job_state(job: dict) -> str:
    """A Job's state from its status: "complete", "failed", "running" (it has pods: active, pending or
    running, or ready) or "pending" (none yet: quota, admission or a suspended Job)."""
    status = job.get("status", {})
    for cond in status.get("conditions", []) or []:
        if cond.get("status") == "True" and cond.get("type") in ("Complete", "Failed"):
            return cond["type"].lower()
    return "running" if status.get("active") or status.get("ready") else "pending"


def _wait_jobs(context: str, namespace: str, stack: str, until: str, timeout_s: float,
               emit: Callable[..., None]) -> None:
    """Poll the stack's Jobs (one `kubectl get jobs -l` per round) until each is `until` ("started":
    running or complete; "complete"); OperationFailed on a failed Job or the timeout, naming the Jobs."""
    goal = {"started": ("running", "complete"), "complete": ("complete",)}[until]
    t0 = time.monotonic()
    reported: set[str] = set()
    while True:
        res = _run(["get", "jobs.batch", "-n", namespace, "-l", f"{STACK_LABEL}={stack}", "-o", "json"], context)
        states = {f"job.batch/{j['metadata']['name']}": job_state(j) for j in json.loads(res.stdout).get("items", [])}
        for addr, state in sorted(states.items()):
            if state == "failed":
                emit("apply_errored", addr, "job")
                raise OperationFailed(f"{addr} failed in namespace {namespace!r}; see "
                                      f"kubectl --context {context} -n {namespace} describe {addr}")
            if state in goal and addr not in reported:
                reported.add(addr)
                emit("apply_complete", f"{addr}: {state}", "read", time.monotonic() - t0)
        waiting = sorted(a for a, s in states.items() if s not in goal)
        if not waiting:
            return
        elapsed = time.monotonic() - t0
        if elapsed > timeout_s:
            raise OperationFailed(f"{', '.join(waiting)} not {until} after {timeout_s:.0f} s in namespace {namespace!r}")
        for addr in waiting:
            emit("apply_progress", addr, "job", elapsed)
        time.sleep(JOB_POLL_S)


def destroy(context: str, namespace: str, stack: str, progress: Progress | None = None, *,
            check: bool = True, timeout_s: float = DELETE_TIMEOUT_S) -> None:
    """Delete exactly the stack's objects: every kind in STACK_KINDS labelled gpufleet.io/stack=<stack>.

    Foreground deletion, waited for, so the Jobs' and Deployments' pods are gone when it returns.
    Nothing else is touched: a claim the user named (`storage.claim`) is not labelled, so it stays.
    """
    if check:
        check_namespace_writable(context, namespace, verbs=DESTROY_VERBS)
    t0 = time.monotonic()
    res = _run(["delete", ",".join(STACK_KINDS), "-n", namespace, "-l", f"{STACK_LABEL}={stack}",
                "--cascade=foreground", "--wait=true", "--ignore-not-found=true", f"--timeout={int(timeout_s)}s",
                "-o", "name"], context)
    for line in res.stdout.splitlines():
        if line.strip() and progress:
            progress({"type": "apply_complete", "hook": {"resource": {"addr": line.strip()}, "action": "delete",
                                                         "elapsed_seconds": int(time.monotonic() - t0)}})
