"""Run the ``hmog-xp`` command line: ``python -m hmog_xp --help``."""

import sys

from hmog_xp.cli import main

if __name__ == "__main__":
    sys.exit(main())
