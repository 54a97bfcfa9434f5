"""`python -m reasoner.cli ...`: the `reasoner` console script."""

import sys

from reasoner.cli import main

sys.exit(main())
