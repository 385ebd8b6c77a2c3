"""Exception types raised by hmog_xp (no array library imported here)."""

from __future__ import annotations


class BackendError(ValueError):
    """A backend is unknown, not installed, unusable here, or cannot do what was asked.

    Raised for unknown names in :func:`hmog_xp.set_backend`, for random generators that do
    not belong to the arrays' backend, and for automatic differentiation on a backend that
    has none (NumPy, CuPy, array-api-strict).
    """


class ValidationError(ValueError):
    """Arrays or parameters given to hmog_xp are not valid for the model.

    Wrong trailing dimensions, non-finite values, or parameters that do not describe a
    distribution (a precision that is not positive definite, probabilities off the simplex).
    """
