"""`gpufleet state`: a stack's remote state (the spec's s3 `backend:`).

bootstrap  create the state bucket (versioned, encrypted, public access blocked) and, with
           `lock: dynamodb`, its lock table; idempotent. It reaches S3 where the target's
           Terraform backend does: the bundled emulator (started when needed), the emulator
           target's `--endpoint URL`, or AWS (boto3's credential chain).
unlock     release a lock whose run died (`terraform force-unlock` in the stack's rendered root,
           which is rendered and initialised first, as for any verb on a root).

Exit codes as everywhere: 0 ok, 1 failed, 2 bad input (a spec without an s3 backend, no lock ID).
"""

from __future__ import annotations

import argparse

from infra.commands import deploy
from infra.commands.common import say, target_of
from infra.target_names import EMULATOR
from runtime.errors import EXIT_OK, BadInput, OperationFailed

DESCRIPTION = """\
bootstrap  create the s3 backend's bucket (versioned, encrypted, public access blocked) and,
           with lock dynamodb, its table; idempotent
unlock     release a lock whose run died (the ID that a locked plan or apply printed)
"""


def _endpoint(args, target):
    """Where the target's Terraform backend finds S3 (infra.state.backend.Endpoint)."""
    from infra.state.backend import endpoint_for

    url = deploy.endpoint_of(args)
    if target.name != EMULATOR:
        if url is not None:
            raise BadInput(f"--endpoint: only the emulator target talks to an AWS-compatible endpoint "
                           f"(got --target {target.name})")
        return endpoint_for(target.name)
    info, started = target.connect(url)
    if started:
        say(f"started the AWS emulator on {info.endpoint} (stop it with `gpufleet emulator stop`)")
    return endpoint_for(target.name, info)


def cmd_state(args) -> int:
    target = target_of(args)
    stack = target.load(args.spec)
    if stack.backend is None:
        raise BadInput(f"backend.type: `gpufleet state` needs an s3 backend (got 'local' in {args.spec}; the state "
                       "is a file in the rendered root)")
    if args.action == "unlock":
        if not args.lock_id:
            raise BadInput("lock_id: required to unlock (got nothing; allowed: the lock ID a locked plan or apply printed)")
        prepared = deploy.prepare(args, stack=stack)
        res = prepared.terraform.run("force-unlock", "-force", "-no-color", args.lock_id)
        if res.rc != 0:
            raise OperationFailed(f"releasing lock {args.lock_id} failed:\n{(res.stderr or res.stdout).strip()}")
        print(f"released lock {args.lock_id} on {stack.backend.uri}")
        return EXIT_OK
    if args.lock_id:
        raise BadInput(f"lock_id: only `state unlock` takes a lock ID (got {args.lock_id!r} for bootstrap)")
    from infra.state.backend import bootstrap

    for line in bootstrap(stack.backend, _endpoint(args, target)):
        print(line)
    return EXIT_OK


def register(sub) -> None:
    """Add `state` to the `gpufleet` subparsers."""
    p = sub.add_parser("state", help="the stack's remote state: create its S3 bucket, release a stuck lock",
                       description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("action", choices=("bootstrap", "unlock"))
    deploy.stack_args(p, "state")  # the spec, --root, --target, --offline, --provider-mirror, --endpoint
    p.add_argument("lock_id", nargs="?", help="unlock: the lock's ID")
    p.set_defaults(func=cmd_state)
