"""``python -m graphc ...``: the graphc command line."""
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
