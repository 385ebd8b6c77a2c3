"""Covariance representations ``PositiveDefinite``, ``Diagonal`` and ``Scale``.

See :mod:`hmog_xp.reps._base` for the storage conventions every rep follows.
"""

from hmog_xp.reps._base import CovarianceRep
from hmog_xp.reps._concrete import Diagonal, PositiveDefinite, Scale

__all__ = ["CovarianceRep", "Diagonal", "PositiveDefinite", "Scale"]
