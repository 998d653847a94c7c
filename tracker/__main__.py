"""`python -m tracker ...`: see tracker/cli.py."""
import sys

from tracker.cli import main

sys.exit(main())
