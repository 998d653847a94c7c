"""`python -m datagen ...`: see datagen/cli.py."""
import sys

from datagen.cli import main

if __name__ == "__main__":
    sys.exit(main())
