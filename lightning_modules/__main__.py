"""`python -m lightning_modules {train,eval} ...` (see docs/training.md)."""
from .cli import main

if __name__ == "__main__":
    raise SystemExit(main())
