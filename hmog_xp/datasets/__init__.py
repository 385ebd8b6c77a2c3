"""Small real datasets shipped with hmog_xp, loaded into any backend.

* :func:`load_digits`: the UCI optical handwritten digits (8×8 images, 1797 samples),
  the data set of the ``hmog-xp demo`` command.
"""

from hmog_xp.datasets._digits import DIGITS_FILE, load_digits

__all__ = ["DIGITS_FILE", "load_digits"]
