"""The Terraform verbs: render, plan, apply, destroy, outputs, drift (a target's rendered root).

Exit codes as everywhere (0 ok, 1 failed, 2 bad input), except where 2 answers the question
the command asks, as Terraform's `-detailed-exitcode` does: `plan --detailed-exitcode` (2:
changes present) and `drift` (2: drift found). There every error exits 1, so that 2 means
only that.

Options every verb on a root shares: `--root DIR` (default build/<name>/; `--out` is its older
name, except on `plan`, where `--out FILE` is the saved plan as in `terraform plan -out`),
`--target`, `--offline`, `--provider-mirror DIR` (or $GPUFLEET_PROVIDER_MIRROR) and, for the
emulator target, `--endpoint URL` (or $GPUFLEET_EMULATOR_ENDPOINT).

The kubernetes target (manifests, not a Terraform root) answers render, plan, apply and destroy
through infra.commands.kubernetes; its options `--context` and `--namespace` are refused on the
other targets.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys
import time
from pathlib import Path

from infra.commands.common import confirm, say, target_arg, target_of
from infra.terraform.mirror import MIRROR_ENV
from runtime.errors import EXIT_FAILED, EXIT_OK, BadInput, OperationFailed

ENDPOINT_ENV = "GPUFLEET_EMULATOR_ENDPOINT"
EXIT_CHANGES = 2  # plan --detailed-exitcode: changes present; drift: drift found


def exit_2_means_changes(command: str | None, argv: list[str]) -> bool:
    """Whether this command line answers with 2 for "changes" (so its usage errors exit 1 too)."""
    return command == "drift" or (command == "plan" and "--detailed-exitcode" in argv)


def _answers_with_2(func):
    """For a command whose exit code 2 means "changes": report errors, bad input included, with 1."""

    @functools.wraps(func)
    def run(args) -> int:
        try:
            return func(args)
        except BadInput as exc:
            for line in exc.problems:
                print(f"error: {line}", file=sys.stderr)
            return EXIT_FAILED

    return run


def _root(args, stack) -> Path:
    from infra.render.render import default_out_dir

    return Path(args.root) if args.root else default_out_dir(stack)


def _mirror(args, target):
    """The CLI config for --provider-mirror / $GPUFLEET_PROVIDER_MIRROR (checked now), or None."""
    if args.provider_mirror:
        return target.mirror_cli_config(args.provider_mirror)
    if os.environ.get(MIRROR_ENV):
        return target.mirror_cli_config(os.environ[MIRROR_ENV], flag=MIRROR_ENV)
    return None


def endpoint_of(args) -> str | None:
    """--endpoint, else $GPUFLEET_EMULATOR_ENDPOINT for the emulator target (other targets ignore it)."""
    from infra.target_names import EMULATOR

    if args.endpoint is not None:
        return args.endpoint
    if args.target == EMULATOR and os.environ.get(ENDPOINT_ENV):
        return os.environ[ENDPOINT_ENV]
    return None


def prepare(args, recreate: bool = False, start_emulator: bool = True, stack=None):
    """Check the flags, render, and get Terraform ready (init when needed): the target's Prepared."""
    target = target_of(args)
    stack = stack or target.load(args.spec)
    cli_config = _mirror(args, target)  # before anything is rendered or run
    endpoint = endpoint_of(args)
    prepared, started = target.prepare(
        stack, Path(args.root) if args.root else None, offline=args.offline, recreate=recreate,
        start_emulator=start_emulator, cli_config=cli_config, endpoint=endpoint,
    )
    if started:
        say(f"started the AWS emulator on {prepared.emulator.endpoint} (stop it with `gpufleet emulator stop`)")
    elif endpoint is not None:
        say(f"using the AWS-compatible endpoint {prepared.emulator.endpoint}")
    _require_state_backend(prepared, args.spec)
    tf = prepared.terraform
    t0 = time.monotonic()
    if tf.init():
        say(f"terraform init ({tf.description}) in {time.monotonic() - t0:.1f}s")
    return prepared


def _require_state_backend(prepared, spec: str) -> None:
    """Before init: a remote state's bucket (and lock table) must exist, else exit 2 saying how to make it."""
    if prepared.stack.backend is not None:
        from infra.state.backend import endpoint_for, require

        require(prepared.stack.backend, endpoint_for(prepared.target, prepared.emulator), spec)


def cmd_render(args) -> int:
    target = target_of(args)
    print(target.render(target.load(args.spec), Path(args.root) if args.root else None))
    return EXIT_OK


def _check_offline(args) -> int:
    """`plan --offline` on a target without an offline provider (gcp): render, then the offline
    checks; exit 0 when none failed (skipped ones say why), 1 otherwise."""
    for flag, value in (("--out", args.plan_out), ("--summary", args.summary), ("--endpoint", args.endpoint)):
        if value:
            raise BadInput(f"{flag}: --offline on the {args.target} target makes no plan, it renders and checks the root "
                           f"(got {flag} {value})")
    target = target_of(args)
    stack = target.load(args.spec)
    mirror = args.provider_mirror or os.environ.get(MIRROR_ENV)
    say(f"checking stack {stack.name} for target {args.target} offline (no cloud is contacted) ...")
    results = target.check_offline(stack, Path(args.root) if args.root else None, progress=print,
                                   provider_mirror=Path(mirror) if mirror else None)
    failed = [r.name for r in results if r.status == "failed"]
    skipped = [r.name for r in results if r.status == "skipped"]
    say(f"offline checks: {len(results) - len(failed) - len(skipped)} passed, {len(failed)} failed, "
        f"{len(skipped)} skipped" + (f" ({', '.join(skipped)})" if skipped else ""))
    return EXIT_FAILED if failed else EXIT_OK


def cmd_plan(args) -> int:
    from infra.targets.base import PLAN_FILE
    from infra.terraform.runner import PlanProgress, format_plan_summary, plan_summary
    from infra.terraform.saved_plan import write_record

    if args.offline and not getattr(target_of(args), "plans_offline", True):
        return _check_offline(args)
    out = Path(args.plan_out).resolve() if args.plan_out else None
    if out is not None and out.is_dir():
        raise BadInput(f"--out: a directory (got {args.plan_out!r}); on `plan`, --out names the saved plan's file "
                       "(as `terraform plan -out`), and --root the rendered root's directory")
    prepared = prepare(args)
    say(f"planning stack {prepared.stack.name} for target {args.target} in {prepared.workdir} ...")
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
    result = target_of(args).plan(prepared, out, progress=PlanProgress(say))
    for line in format_plan_summary(plan_summary(result.plan)):
        print(line)
    write_record(result.file, stack=prepared.stack.name, target=args.target, root=prepared.workdir,
                 changes=result.changes, emulator_run=prepared.emulator_run)
    print(f"wrote {result.file} (apply it with `gpufleet apply SPEC --plan {result.file}`) and "
          f"{prepared.workdir / PLAN_FILE}")
    if args.summary:
        from infra.terraform.summary import markdown_summary
        from runtime.store import open_atomic

        summary = Path(args.summary)
        summary.parent.mkdir(parents=True, exist_ok=True)
        with open_atomic(summary, "w") as f:
            f.write(markdown_summary(result.plan, prepared.stack, args.target))
        print(f"wrote {summary}")
    return EXIT_CHANGES if args.detailed_exitcode and result.changes else EXIT_OK


def _confirm_real_cloud(args, verb: str) -> None:
    if target_of(args).real_cloud:
        confirm(args, verb, f"on target {args.target}")


def _offer_recreate(args, exc) -> bool:
    if getattr(args, "recreate", False):
        return True
    if sys.stdin.isatty():
        say(str(exc))
        return input("Recreate the stack in the running emulator now? [y/N] ").strip().lower() in ("y", "yes")
    raise exc


def _prepare_saved_plan(args):
    """Check `--plan FILE` against the stack before anything runs, then prepare and check again
    against what was rendered; returns (prepared, plan file)."""
    from infra.terraform import saved_plan

    if args.recreate:
        raise BadInput("--recreate: not with --plan (the saved plan was made against the state --recreate discards)")
    plan_file = Path(args.plan).resolve()
    target = target_of(args)
    stack = target.load(args.spec)
    record = saved_plan.check_for_stack(plan_file, stack=stack.name, target=args.target, root=_root(args, stack))
    prepared = prepare(args, start_emulator=False, stack=stack)
    saved_plan.check_current(plan_file, record, root=prepared.workdir, emulator_run=prepared.emulator_run)
    return prepared, plan_file


def cmd_apply(args) -> int:
    from infra.targets.emulator import StaleState
    from infra.terraform.runner import ApplyProgress

    plan_file = None
    if args.plan:
        prepared, plan_file = _prepare_saved_plan(args)
    else:
        try:
            prepared = prepare(args, recreate=args.recreate)
        except StaleState as exc:
            if not _offer_recreate(args, exc):
                return EXIT_FAILED
            prepared = prepare(args, recreate=True)
    _confirm_real_cloud(args, "apply")
    what = f"the saved plan {plan_file}" if plan_file else f"stack {prepared.stack.name}"
    say(f"applying {what} to {args.target} ...")
    t0 = time.monotonic()
    progress = ApplyProgress(say)
    target = target_of(args)
    target.apply(prepared, progress=progress, plan_file=plan_file)
    say(f"applied {progress.done} resource(s) in {time.monotonic() - t0:.1f}s")
    _record_baseline(target, prepared)
    print(json.dumps(target.outputs(prepared), indent=2))
    return EXIT_OK


def _record_baseline(target, prepared) -> None:
    """After an apply: the state takes what the cloud reports, the baseline `drift` compares with."""
    t0 = time.monotonic()
    try:
        target.refresh(prepared)
    except OperationFailed as exc:
        say(f"warning: applied, but the state could not be refreshed, so `gpufleet drift` may list read-back "
            f"differences until the next apply:\n{exc}")
        return
    say(f"recorded what the cloud reports as drift's baseline (a refresh-only apply) in {time.monotonic() - t0:.1f}s")


def cmd_destroy(args) -> int:
    from infra.terraform.runner import ApplyProgress

    # --forget: a state from an earlier emulator run is set aside, leaving nothing to destroy
    prepared = prepare(args, recreate=args.forget)
    if not prepared.has_state():
        say(f"nothing to destroy: no state in {prepared.workdir}")
        return EXIT_OK
    _confirm_real_cloud(args, "destroy")
    t0 = time.monotonic()
    progress = ApplyProgress(say)
    target_of(args).destroy(prepared, progress=progress)
    say(f"destroyed {progress.done} resource(s) in {time.monotonic() - t0:.1f}s")
    return EXIT_OK


def cmd_outputs(args) -> int:
    prepared = prepare(args)
    print(json.dumps(target_of(args).outputs(prepared), indent=2))
    return EXIT_OK


def _deployed(plan: dict) -> bool:
    """Whether the plan's prior state holds any managed resource (in any module)."""
    stack = [(plan.get("prior_state") or {}).get("values", {}).get("root_module", {})]
    while stack:
        module = stack.pop()
        if any(r.get("mode") == "managed" for r in module.get("resources", [])):
            return True
        stack.extend(module.get("child_modules", []))
    return False


@_answers_with_2
def cmd_drift(args) -> int:
    from infra.terraform.drift import drift_from_plan, format_drift
    from infra.terraform.runner import PlanProgress

    prepared = prepare(args)
    say(f"checking stack {prepared.stack.name} on {args.target} for drift (a refresh-only plan: it reads every "
        "object and writes no state) ...")
    plan = target_of(args).drift(prepared, progress=PlanProgress(say))
    if not _deployed(plan):
        raise BadInput(f"{args.spec}: nothing deployed to compare (the state in {prepared.workdir} holds no resources; "
                       "`gpufleet apply SPEC` first)")
    drift = drift_from_plan(plan)
    if args.json:
        print(json.dumps([d.as_dict() for d in drift], indent=2))
    else:
        for line in format_drift(drift):
            print(line)
    if drift:
        say("`gpufleet plan SPEC` shows what the next apply would put back (the attributes the spec sets)")
    return EXIT_CHANGES if drift else EXIT_OK


# -- the parser -------------------------------------------------------------------------------
class _Refuse(argparse.Action):
    """A flag that exists only to be refused with a reason (a flag users carry over from another verb)."""

    def __init__(self, option_strings, dest, reason: str = "", **kwargs):
        self.reason = reason
        super().__init__(option_strings, dest, nargs=0, help=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser, namespace, values, option_string=None):
        parser.error(f"{option_string}: {self.reason}")


def _root_args(p: argparse.ArgumentParser, verb: str) -> None:
    if verb == "render":
        p.add_argument("--out", "--root", dest="root", metavar="DIR", help="where to write the root (default build/<name>/)")
    elif verb == "plan":
        p.add_argument("--root", dest="root", metavar="DIR", help="the rendered root's directory (default build/<name>/)")
        p.add_argument("--out", dest="plan_out", metavar="FILE",
                       help="write the saved plan here, for `apply --plan FILE` (default <root>/tfplan); "
                            "a record of its stack goes beside it as FILE.gpufleet.json")
    else:
        p.add_argument("--root", "--out", dest="root", metavar="DIR",
                       help="the rendered root's directory (default build/<name>/; --out is its older name)")


KUBERNETES_VERBS = ("render", "plan", "apply", "destroy")


def _for_target(verb: str, terraform_cmd):
    """The command of `verb`: the kubernetes target's (infra.commands.kubernetes), else `terraform_cmd`,
    which refuses the kubernetes target's own options."""
    def run(args) -> int:
        from infra.target_names import KUBERNETES

        if args.target == KUBERNETES:
            from infra.commands.kubernetes import COMMANDS

            return COMMANDS[verb](args)
        given = [flag for flag, dest in (("--context", "context"), ("--namespace", "namespace"))
                 if getattr(args, dest, None)]
        if given:
            raise BadInput([f"{flag}: an option of the kubernetes target (got --target {args.target})" for flag in given])
        return terraform_cmd(args)

    return run


def stack_args(p: argparse.ArgumentParser, verb: str) -> None:
    p.add_argument("spec", help="the stack spec (YAML)")
    _root_args(p, verb)
    target_arg(p, verb)
    if verb in KUBERNETES_VERBS:
        p.add_argument("--context", metavar="NAME",
                       help="kubernetes target: the kube context (default: the current context of $KUBECONFIG)")
        p.add_argument("--namespace", metavar="NAME",
                       help="kubernetes target: the namespace (default: the spec's kubernetes.namespace, else its name)")
    p.add_argument("--offline", action="store_true",
                   help="use the bundled AWS provider instead of the registry (always on for the emulator); "
                        "gcp: render and run the offline checks (checkov, ...) only; kubernetes: plan asks no cluster")
    if verb == "render":
        return
    p.add_argument("--provider-mirror", metavar="DIR",
                   help=f"install providers only from this filesystem mirror (behind a firewall; as written by "
                        f"`terraform providers mirror DIR`); default ${MIRROR_ENV}")
    p.add_argument("--endpoint", metavar="URL",
                   help="emulator target: an AWS-compatible endpoint you run (LocalStack, moto) instead of the "
                        f"bundled moto server; default ${ENDPOINT_ENV}")


def register(sub) -> None:
    """Add render, plan, apply, destroy, outputs and drift to the `gpufleet` subparsers."""
    p = sub.add_parser("render", help="write the stack's Terraform root (default build/<name>/)")
    stack_args(p, "render")
    p.set_defaults(func=_for_target("render", cmd_render))

    p = sub.add_parser("plan", help="render, terraform init and plan; writes build/<name>/plan.json",
                       description="Exit codes: 0 ok, 1 failed, 2 bad input; with --detailed-exitcode: 0 no changes, "
                                   "2 changes present, 1 any error (as Terraform's -detailed-exitcode).")
    stack_args(p, "plan")
    p.add_argument("--detailed-exitcode", action="store_true",
                   help="exit 0 when there are no changes, 2 when there are, 1 on any error")
    p.add_argument("--summary", metavar="FILE",
                   help="write a Markdown summary (changes by resource type, replacements, GPUs per fleet), "
                        "e.g. for a pull request or $GITHUB_STEP_SUMMARY")
    p.set_defaults(func=_for_target(
        "plan", lambda args: (_answers_with_2(cmd_plan) if args.detailed_exitcode else cmd_plan)(args)))

    p = sub.add_parser("apply", help="render and apply (or apply a saved plan exactly); prints the outputs")
    stack_args(p, "apply")
    p.add_argument("--plan", metavar="FILE",
                   help="apply exactly this saved plan (from `gpufleet plan SPEC --out FILE`); refused if it was made "
                        "for another stack, or the stack changed since")
    p.add_argument("--recreate", action="store_true",
                   help="discard a state left from an earlier emulator run and create the stack again")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation on a real cloud")
    p.add_argument("--detailed-exitcode", action=_Refuse,
                   reason="plan's and drift's option, not apply's (apply exits 0 applied, 1 failed, 2 bad input); "
                          "use `gpufleet plan SPEC --out FILE --detailed-exitcode`, then `apply --plan FILE`")
    p.set_defaults(func=_for_target("apply", cmd_apply))

    p = sub.add_parser("destroy", help="destroy what apply created")
    stack_args(p, "destroy")
    p.add_argument("--forget", action="store_true",
                   help="discard a state left from an earlier emulator run instead of failing")
    p.add_argument("--yes", action="store_true", help="do not ask for confirmation on a real cloud")
    p.set_defaults(func=_for_target("destroy", cmd_destroy))

    p = sub.add_parser("outputs", help="print the stack's Terraform outputs as JSON")
    stack_args(p, "outputs")
    p.set_defaults(func=cmd_outputs)

    p = sub.add_parser("drift", help="what changed outside Terraform, by resource and attribute (exit 2: drift)",
                       description="A refresh-only plan compared with the state. Exit codes: 0 no drift, 2 drift, "
                                   "1 any error.")
    stack_args(p, "drift")
    p.add_argument("--json", action="store_true", help="as JSON: [{address, type, deleted, changes: [...]}]")
    p.set_defaults(func=cmd_drift)
