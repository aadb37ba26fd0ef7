import sys

from runtime.local.cli import main

sys.exit(main())
