"""Input checks shared by the public entry points (no array library imported here).

Shape checks are free and always run. Value checks (finite entries, positive definiteness)
need the values on the host, which costs a device synchronisation and is impossible under
``jax.jit``; they run only while validation is enabled (the default) and only on concrete
arrays. Turn them off around hot loops with ``with hmog_xp.validation(False): ...``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import Any

from hmog_xp._backend import is_concrete
from hmog_xp._errors import ValidationError


class _Switch:
    enabled: bool = True


def set_validation(enabled: bool) -> bool:
    """Turn value checks (finite data, positive definite parameters) on or off globally.

    Parameters
    ----------
    enabled : bool
        The new setting.

    Returns
    -------
    bool
        The previous setting.
    """
    previous = _Switch.enabled
    _Switch.enabled = bool(enabled)
    return previous


@contextmanager
def validation(enabled: bool) -> Iterator[None]:
    """Context manager that sets value checks on or off inside a ``with`` block.

    Parameters
    ----------
    enabled : bool
        The setting inside the block; the previous one is restored on exit.

    Yields
    ------
    None
        Nothing.
    """
    previous = set_validation(enabled)
    try:
        yield
    finally:
        set_validation(previous)


def values_checked(x: Any) -> bool:
    """Whether value checks run on ``x`` now (validation on and ``x`` concrete).

    Callers that must compute something only to check it (a sum to compare with one, a
    diagonal) ask first, so hot loops without validation do not compute it.

    Parameters
    ----------
    x : array
        The array that would be checked.

    Returns
    -------
    bool
        True when validation is enabled and ``x`` holds values.
    """
    return _Switch.enabled and is_concrete(x)


def _fails(condition: Any) -> bool:
    """True when a reduced boolean condition is concretely False.

    Under ``jax.jit`` even operations on constant inputs are traced, so the reduction itself
    must be concrete before it is read on the host.
    """
    return is_concrete(condition) and not bool(condition)


def check_trailing_dim(x: Any, dim: int, name: str, owner: str) -> None:
    """Raise if ``x`` is not an array of shape ``(..., dim)``.

    Parameters
    ----------
    x : array
        The array.
    dim : int
        Expected size of the last axis.
    name : str
        What ``x`` is, for the message (e.g. ``'params'``).
    owner : str
        Who expects it, for the message (e.g. ``'Normal(3, Diagonal())'``).
    """
    shape = getattr(x, "shape", None)
    if shape is None:
        msg = f"{name} must be an array of shape (..., {dim}) for {owner}; got {type(x).__name__}"
        raise ValidationError(msg)
    if len(shape) == 0 or shape[-1] != dim:
        msg = f"{name} has shape {tuple(shape)}; {owner} expects shape (..., {dim})"
        raise ValidationError(msg)


def check_finite(x: Any, name: str, *, xp: ModuleType) -> None:
    """Raise if ``x`` holds NaN or infinite values (when validation is on).

    Parameters
    ----------
    x : array
        The array.
    name : str
        What ``x`` is, for the message.
    xp : module
        Namespace of ``x``.
    """
    if values_checked(x) and _fails(xp.all(xp.isfinite(x))):
        count = int(xp.sum(xp.astype(~xp.isfinite(x), xp.int32)))
        msg = f"{name} contains {count} non-finite value(s) (NaN or inf); remove or impute them"
        raise ValidationError(msg)


def check_positive(x: Any, message: str, *, xp: ModuleType) -> None:
    """Raise ``ValidationError(message)`` unless every entry of ``x`` is finite and > 0.

    Parameters
    ----------
    x : array
        Values that must be positive (e.g. Cholesky diagonals, variances, probabilities).
    message : str
        The error message.
    xp : module
        Namespace of ``x``.
    """
    if values_checked(x) and _fails(xp.all(xp.isfinite(x) & (x > 0))):
        raise ValidationError(message)


def check_small(excess: Any, message: str, *, xp: ModuleType) -> None:
    """Raise ``ValidationError(message)`` if any entry of ``excess`` is positive or NaN.

    Parameters
    ----------
    excess : array
        Amounts by which a quantity exceeds its tolerance (``<= 0`` is acceptable).
    message : str
        The error message.
    xp : module
        Namespace of ``excess``.
    """
    if values_checked(excess) and _fails(xp.all(excess <= 0)):
        raise ValidationError(message)
