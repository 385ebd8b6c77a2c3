"""The ``hmog-xp`` command: ``demo``, ``fit`` and ``predict`` (see ``hmog-xp --help``).

Also runnable as ``python -m hmog_xp``. :func:`main` takes the argument list and returns the
exit status, so the commands can be driven from Python and tests.
"""

from hmog_xp.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
