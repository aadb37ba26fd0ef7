"""`python -m runtime.fleet DIR`: the fleet manager of the local stack whose state is in DIR."""

import sys

from runtime.fleet.manager import main

if len(sys.argv) != 2:
    sys.exit("usage: python -m runtime.fleet DIR  (the stack's state directory, with fleet-config.json)")
sys.exit(main(sys.argv[1]))
