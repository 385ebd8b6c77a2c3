"""Cholesky factors and triangular solves of small NumPy matrices through SciPy's LAPACK.

``numpy.linalg`` spends about 3 µs per call before any arithmetic (array wrapping, dtype
resolution, an error-state context); a small fit's EM step makes about ten such calls on
2 x 2 to 13 x 13 matrices. SciPy's LAPACK and BLAS wrappers (``potrf``, ``trsm``) take
0.4-0.8 µs for the same work. They take one matrix at a time, so a few stacked matrices
are looped over; large batches and large matrices go to NumPy, whose fixed cost is then
small. Results are the same LAPACK/BLAS factorisations and substitutions.
"""

from __future__ import annotations

import functools
from typing import Any

from hmog_xp._errors import ValidationError

#: The most stacked matrices looped over (NumPy's batched call is faster beyond).
_MAX_BATCH = 8
#: The most entries of a right-hand side or a matrix taken this way.
_MAX_ENTRIES = 4096


@functools.cache
def _routines(dtype_char: str) -> tuple[Any, Any] | None:
    """SciPy's ``(potrf, trsm)`` for a NumPy dtype character (None: not a real float)."""
    if dtype_char not in ("f", "d"):
        return None
    try:
        from scipy.linalg import blas, lapack
    except ImportError:  # SciPy is a scikit-learn dependency; be safe without it
        return None
    prefix = "s" if dtype_char == "f" else "d"
    return getattr(lapack, f"{prefix}potrf"), getattr(blas, f"{prefix}trsm")


def _small(a: Any) -> tuple[Any, Any] | None:
    """The routines for ``a``'s dtype when ``a`` is one small matrix or a short stack of them."""
    if not (2 <= a.ndim <= 3) or a.size > _MAX_ENTRIES or (a.ndim == 3 and len(a) > _MAX_BATCH):
        return None
    return _routines(a.dtype.char)


def _checked(potrf: Any, matrix: Any) -> Any:
    """``potrf``'s lower factor of one matrix; ValidationError where it is not definite."""
    factor, info = potrf(matrix, lower=1)
    if info > 0:
        msg = (
            "matrix is not positive definite (Cholesky factorization failed: the leading "
            f"minor of order {info} is not positive)"
        )
        raise ValidationError(msg)
    return factor


def small_cholesky(a: Any) -> Any:
    """Lower Cholesky factors of a few small matrices, or None where NumPy should do it.

    Parameters
    ----------
    a : numpy.ndarray, shape (n, n) or (m, n, n)
        Symmetric positive definite matrices (the lower triangle is read).

    Returns
    -------
    numpy.ndarray or None
        ``L`` with ``L @ L.mT == a`` (NaN entries propagate as in NumPy), or None.

    Raises
    ------
    ValidationError
        If a matrix is not positive definite.
    """
    routines = _small(a)
    if routines is None:
        return None
    potrf = routines[0]
    if a.ndim == 2:
        return _checked(potrf, a)
    import numpy

    out = numpy.empty_like(a)
    for index, matrix in enumerate(a):
        out[index] = _checked(potrf, matrix)
    return out


def small_definite(a: Any) -> bool | None:
    """Whether every one of a few small symmetric matrices is positive definite, or None.

    Parameters
    ----------
    a : numpy.ndarray, shape (n, n) or (m, n, n)
        Symmetric matrices (the lower triangle is read).

    Returns
    -------
    bool or None
        Whether ``potrf`` factorises every matrix, or None where the stack is too large for
        this path. Finite entries are the caller's to check (``potrf`` may pass a NaN).
    """
    routines = _small(a)
    if routines is None:
        return None
    potrf = routines[0]
    matrices = a[None] if a.ndim == 2 else a
    return all(potrf(matrix, lower=1)[1] == 0 for matrix in matrices)


def small_solve_triangular(factor: Any, b: Any, *, lower: bool, transpose: bool) -> Any:
    """``T⁻¹ b`` (or ``T⁻ᵀ b``) for a few small triangular ``T``, or None for NumPy to do it.

    Parameters
    ----------
    factor : numpy.ndarray, shape (n, n) or (m, n, n)
        Triangular matrices.
    b : numpy.ndarray, shape (n, k) or (m, n, k)
        Right-hand sides, of ``factor``'s dtype; with a stack of factors, one matrix for
        all or one per factor.
    lower : bool
        Whether ``T`` is lower triangular.
    transpose : bool
        Solve with ``T.mT``.

    Returns
    -------
    numpy.ndarray or None
        The solutions, shaped like ``b``, or None.
    """
    routines = _small(factor)
    if routines is None or b.dtype != factor.dtype or b.ndim < 2 or b.size > _MAX_ENTRIES:
        return None
    trsm = routines[1]
    down, across = int(lower), int(transpose)
    if factor.ndim == 2:
        if b.ndim == 2:
            return trsm(1.0, factor, b, lower=down, trans_a=across)
        if b.ndim != 3:
            return None
        # one factor, stacked right-hand sides: one solve with their columns side by side
        m, n, k = b.shape
        columns = b.transpose(1, 0, 2).reshape(n, m * k)
        solved = trsm(1.0, factor, columns, lower=down, trans_a=across)
        return solved.reshape(n, m, k).transpose(1, 0, 2)
    import numpy

    if b.ndim == 2:  # one right-hand side for every factor
        out = numpy.empty((len(factor), *b.shape), dtype=b.dtype)
        for index, t in enumerate(factor):
            out[index] = trsm(1.0, t, b, lower=down, trans_a=across)
        return out
    if b.shape[:-2] != factor.shape[:-2]:
        return None
    out = numpy.empty(b.shape, dtype=b.dtype)
    for index, t in enumerate(factor):
        out[index] = trsm(1.0, t, b[index], lower=down, trans_a=across)
    return out
