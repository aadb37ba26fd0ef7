"""Errors a user can cause, shared by infra and runtime.

`BadInput` is the one exception the CLI turns into exit code 2: the message is already in
the user's terms (the field or value, what is allowed). Anything else is an internal error
and is left to propagate with its traceback.
"""

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
# A run stopped on request (SIGTERM, a termination notice) after saving its state: 128 + SIGTERM,
# what a process killed by SIGTERM reports, so supervisors (systemd, torchrun) read it the same way.
EXIT_STOPPED = 143


class BadInput(Exception):
    """Input from a user (spec, dataset, flag, request) that cannot be used.

    `problems` holds one line per problem, each `path.to.field: what is wrong (got VALUE; allowed ...)`,
    so every problem is reported at once rather than one per run.
    """

    def __init__(self, problems):
        if isinstance(problems, str):
            problems = [problems]
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


class OperationFailed(Exception):
    """An operation the user asked for ran and failed (Terraform error, emulator down): exit 1."""


def run_command(func, args) -> int:
    """Run a CLI command's function and map the outcome to the exit codes every entry point uses.

    BadInput prints one `error: ...` line per problem (exit 2); OperationFailed prints
    `failed: ...` (exit 1); Ctrl-C exits 130. Anything else is an internal error and keeps its
    traceback.
    """
    import sys

    try:
        return int(func(args) or 0)
    except BadInput as exc:
        for line in exc.problems:
            print(f"error: {line}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except OperationFailed as exc:
        print(f"failed: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
