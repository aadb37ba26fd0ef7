import sys

from runtime.train.cli import main

sys.exit(main())
