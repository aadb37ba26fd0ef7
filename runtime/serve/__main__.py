"""`python -m runtime.serve ...`: the same as `gpufleet serve ...`."""

from runtime.serve.cli import main

raise SystemExit(main())
