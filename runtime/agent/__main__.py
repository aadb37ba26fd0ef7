"""`python -m runtime.agent ...`: the same as `gpufleet agent ...`."""

from runtime.agent.cli import main

raise SystemExit(main())
