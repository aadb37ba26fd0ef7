"""render, plan, apply and destroy for the kubernetes target (infra.commands.deploy hands them over).

The Terraform verbs' options that mean nothing here (--offline, --provider-mirror, --endpoint,
plan's --out/--summary/--detailed-exitcode, apply's --plan/--recreate, destroy's --forget) are
refused by name; `--context` and `--namespace` are this target's (deploy.py refuses them on the
others). Warnings (a cluster add-on the spec needs) go to stderr; the plan summary to stdout.
"""

from __future__ import annotations

import time
from pathlib import Path

from infra.commands.common import confirm, say, target_of
from runtime.errors import EXIT_OK, BadInput

# option dest -> its flag, for options the Terraform verbs take and this target does not
_TERRAFORM_ONLY = {"provider_mirror": "--provider-mirror", "endpoint": "--endpoint", "plan_out": "--out",
                   "summary": "--summary", "detailed_exitcode": "--detailed-exitcode", "plan": "--plan",
                   "recreate": "--recreate", "forget": "--forget"}


def _refuse_terraform_options(args) -> None:
    given = [flag for dest, flag in _TERRAFORM_ONLY.items() if getattr(args, dest, None)]
    if given:
        raise BadInput([f"{flag}: a Terraform target's option; the kubernetes target renders manifests and applies them "
                        "with kubectl (its options: --root, --context, --namespace, --yes)" for flag in given])


def _setup(args):
    _refuse_terraform_options(args)
    target = target_of(args)
    stack = target.load(args.spec)
    return target, stack, Path(args.root) if args.root else None


def cmd_render(args) -> int:
    target, stack, root = _setup(args)
    print(target.render(stack, root, args.namespace))
    return EXIT_OK


def cmd_plan(args) -> int:
    target, stack, root = _setup(args)
    out, lines = target.plan_text(stack, root, args.namespace)
    for line in lines:
        print(line)
    if args.offline or not target.cluster_configured(args.context):
        say("no cluster asked (give --context, or set KUBECONFIG, to see what apply would change)")
        return EXIT_OK
    changes = target.diff(out, args.context)
    print(changes.rstrip("\n") if changes.strip() else "the cluster already matches the manifests (no changes)")
    return EXIT_OK


def _confirm(args, verb: str, namespace: str) -> None:
    confirm(args, verb, f"in namespace {namespace} (context {args.context or 'current'})")


def cmd_apply(args) -> int:
    from infra.terraform.runner import ApplyProgress

    target, stack, root = _setup(args)
    namespace = target.namespace(stack, args.namespace)
    out = target.render(stack, root, args.namespace)
    _confirm(args, "apply", namespace)
    say(f"applying stack {stack.name} ({out}) to namespace {namespace} ...")
    t0 = time.monotonic()
    progress = ApplyProgress(say)
    context = target.apply_manifests(stack, out, args.context, namespace, progress=progress)
    say(f"applied stack {stack.name} to context {context}, namespace {namespace} in {time.monotonic() - t0:.1f}s")
    return EXIT_OK


def cmd_destroy(args) -> int:
    from infra.terraform.runner import ApplyProgress

    target, stack, _ = _setup(args)
    namespace = target.namespace(stack, args.namespace)
    _confirm(args, "destroy", namespace)
    t0 = time.monotonic()
    progress = ApplyProgress(say)
    context = target.destroy_stack(stack, args.context, namespace, progress=progress)
    say(f"destroyed {progress.done} object(s) of stack {stack.name} in context {context}, namespace {namespace} "
        f"in {time.monotonic() - t0:.1f}s")
    return EXIT_OK


COMMANDS = {"render": cmd_render, "plan": cmd_plan, "apply": cmd_apply, "destroy": cmd_destroy}
