"""The `kubernetes` target: the stack as plain manifests, for a cluster the user already has.

Verbs: render (infra.render.kubernetes: build/<name>/kubernetes/, kustomize-ready, applyable
with `kubectl apply -k` without gpufleet), plan (render, then what Kubernetes honours of the spec
and what the cluster needs; with a cluster configured, what apply would change), apply and
destroy. The cluster operations are infra.targets.kubectl's, imported only when a verb talks to
a cluster, so rendering needs no kubectl:
- `resolve_context(context)`: the kube context (`--context`, else KUBECONFIG's current one); BadInput
  naming it when it does not exist;
- `diff(manifest_dir, context)`: what apply would change;
- `apply(manifest_dir, context, namespace, stack, progress)`: `check_namespace_writable` (BadInput
  when the namespace is missing or the user may not write there), then server-side apply, then
  rollout;
- `destroy(context, namespace, stack, progress)`: the same check for deleting, then delete what
  carries gpufleet.io/stack=<stack>.
Every check runs before anything is applied; progress events have the Terraform runner's shape. The spec's cloud does not matter here: its
instance types give the GPUs per pod, the `kubernetes` block the rest (infra.spec.kubernetes).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Callable

from infra.target_names import KUBERNETES
from infra.targets.base import Target
from runtime.errors import BadInput

VERBS = frozenset({"render", "plan", "apply", "destroy"})


class KubernetesTarget(Target):
    name = KUBERNETES
    summary = "plain manifests for a cluster you have (kubectl; --context, --namespace)"
    verbs = VERBS
    real_cloud = True  # apply and destroy ask for confirmation: a real cluster

    def load(self, spec_path: str):
        """The resolved stack with the kubernetes block's checks (BadInput naming every problem)."""
        from infra.spec.kubernetes import kubernetes_problems

        stack = super().load(spec_path)
        problems = kubernetes_problems(stack)
        if problems:
            raise BadInput(problems)
        return stack

    def namespace(self, stack, namespace: str | None = None) -> str:
        from infra.spec.kubernetes import namespace_of

        return namespace or namespace_of(stack)

    def render(self, stack, out_dir: Path | None = None, namespace: str | None = None,
               warn: Callable[[str], None] | None = None) -> Path:
        """Write the manifests (atomically); each warning (a cluster add-on the spec needs) goes to `warn`."""
        from infra.render.kubernetes import render

        out, rendered = render(stack, out_dir, namespace)
        for line in rendered.warnings:
            (warn or _say)(f"warning: {line}")
        return out

    def plan_text(self, stack, out_dir: Path | None = None, namespace: str | None = None,
                  warn: Callable[[str], None] | None = None) -> tuple[Path, list[str]]:
        """Render, then the plan summary: objects by kind and what Kubernetes honours of the spec."""
        from infra.render.kubernetes import render

        out, rendered = render(stack, out_dir, namespace)
        for line in rendered.warnings:
            (warn or _say)(f"warning: {line}")
        kinds: dict[str, list[str]] = {}
        for obj in rendered.objects:
            kinds.setdefault(obj["kind"], []).append(obj["metadata"]["name"])
        lines = [f"stack {stack.name}: {len(rendered.objects)} object(s) in namespace {rendered.namespace} ({out})"]
        lines += [f"  {kind}: {', '.join(names)}" for kind, names in kinds.items()]
        lines.append("what Kubernetes honours of the spec:")
        lines += [f"  {note}" for note in rendered.notes]
        return out, lines

    def cluster_configured(self, context: str | None) -> bool:
        """Whether plan should ask a cluster what would change: --context given, or $KUBECONFIG set."""
        return bool(context or os.environ.get("KUBECONFIG"))

    def diff(self, manifest_dir: Path, context: str | None) -> str:
        from infra.targets import kubectl

        return kubectl.diff(manifest_dir, kubectl.resolve_context(context))

    def apply_manifests(self, stack, manifest_dir: Path, context: str | None, namespace: str,
                        progress: Callable | None = None) -> str:
        """Check the context (and, in kubectl.apply, the namespace), then server-side apply and wait for
        rollout; the context used."""
        from infra.targets import kubectl

        ctx = kubectl.resolve_context(context)
        kubectl.apply(manifest_dir, ctx, namespace, stack.name, progress=progress)
        return ctx

    def destroy_stack(self, stack, context: str | None, namespace: str, progress: Callable | None = None) -> str:
        """Delete exactly what carries the stack's label; the context used."""
        from infra.targets import kubectl

        ctx = kubectl.resolve_context(context)
        kubectl.destroy(ctx, namespace, stack.name, progress=progress)
        return ctx


def _say(msg: str) -> None:
    """A warning for the user, on stderr (as infra.commands.common.say; targets do not import the commands)."""
    print(msg, file=sys.stderr, flush=True)
