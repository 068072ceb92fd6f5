"""Entry point for `python -m qahub_lite` and the frozen executable."""

import sys

from qahub_lite.cli import main

if __name__ == "__main__":
    sys.exit(main())
