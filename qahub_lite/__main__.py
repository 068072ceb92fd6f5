"""Entry point for `python -m qahub_lite` and the frozen executable."""

import sys

from qahub_lite.frozen import die_with_bootloader

if __name__ == "__main__":
    die_with_bootloader()  # first: the executable's process must not outlive its bootloader

    from qahub_lite.cli import main

    sys.exit(main())
