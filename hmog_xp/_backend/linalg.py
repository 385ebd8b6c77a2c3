"""Numerical helpers the Array API standard lacks, with backend fast paths chosen here.

Every function takes the namespace as the keyword ``xp`` (private-kernel convention) and
works on batched inputs with leading axes. This is the one delegation layer: model code
never branches on the backend itself.
"""

from __future__ import annotations

import math
from types import ModuleType
from typing import Any

import numpy

from hmog_xp._backend._arrays import device_of, is_concrete
from hmog_xp._backend._registry import backend_name_of
from hmog_xp._backend._small_lapack import small_cholesky, small_definite, small_solve_triangular
from hmog_xp._backend.products import (
    column_products,
    last_axis_max,
    last_axis_sum,
    numpy_take_columns,
    take_columns,
)
from hmog_xp._errors import ValidationError


def logsumexp(x: Any, /, *, axis: int = -1, keepdims: bool = False, xp: ModuleType) -> Any:
    """Compute ``log(sum(exp(x), axis))`` without overflow.

    Parameters
    ----------
    x : array, shape (..., k, ...)
        Values; ``-inf`` entries are allowed (they contribute zero).
    axis : int, optional
        Axis to reduce.
    keepdims : bool, optional
        Keep the reduced axis with length one.
    xp : module
        Namespace of ``x``.

    Returns
    -------
    array
        ``x`` reduced over ``axis``.
    """
    weights, peak, finite = _shifted_exp(x, axis, xp)
    total = _sum(weights, axis, xp)
    result = xp.log(total) + peak if finite else _log_total(total, peak, xp)
    return result if keepdims else xp.squeeze(result, axis=axis)


def _shifted_exp(x: Any, axis: int, xp: ModuleType) -> tuple[Any, Any, bool]:
    """``exp(x − m)``, ``m`` the maximum along ``axis`` (0 where not finite), and whether
    every maximum is known to be finite.

    With a finite maximum every sum of ``exp(x − m)`` is at least one, so the guards against
    empty sums are needed only where a maximum is infinite. On CPU backends asking the host
    costs less than the guards (NumPy: two calls against about ten on small arrays).
    """
    if axis in (-1, x.ndim - 1):
        peak = last_axis_max(x, xp=xp)
    else:
        peak = xp.max(x, axis=axis, keepdims=True)
    if _finite_on_host(peak, xp):
        return xp.exp(x - peak), peak, True
    peak = xp.where(xp.isfinite(peak), peak, xp.zeros_like(peak))
    return xp.exp(x - peak), peak, False


def _finite_on_host(x: Any, xp: ModuleType) -> bool:
    """Whether ``x`` is all finite, asked only where that is cheap (False: not asked)."""
    name = backend_name_of(xp)
    if name == "numpy":
        return bool(xp.all(xp.isfinite(x)))
    if name == "torch" and x.device.type == "cpu" and is_concrete(x):
        return bool(x.isfinite().all())  # the tensor methods: the namespace's take 3 µs more
    return False


def _sum(x: Any, axis: int, xp: ModuleType) -> Any:
    """``xp.sum(x, axis=axis, keepdims=True)`` (the last axis by :func:`last_axis_sum`)."""
    if axis in (-1, x.ndim - 1):
        return last_axis_sum(x, xp=xp)
    return xp.sum(x, axis=axis, keepdims=True)


def _log_total(total: Any, peak: Any, xp: ModuleType) -> Any:
    """``log(total) + peak``; ``-inf`` where every entry was ``-inf`` (no log(0) warning)."""
    empty = total == 0
    safe_log = xp.log(xp.where(empty, xp.ones_like(total), total))
    return xp.where(empty, xp.full_like(total, -math.inf), safe_log + peak)


def softmax_and_logsumexp(
    x: Any, /, *, axis: int = -1, xp: ModuleType, scale: Any = None
) -> tuple[Any, Any]:
    """:func:`softmax` and :func:`logsumexp` (``keepdims``) from one pass of ``exp``.

    Parameters
    ----------
    x : array, shape (..., k, ...)
        Logits; ``-inf`` entries are allowed (they get probability zero).
    axis : int, optional
        Axis to normalise and reduce.
    xp : module
        Namespace of ``x``.
    scale : array, optional
        Multiplies the probabilities; shaped like the reduced ``x`` with the axis kept (e.g.
        row weights of shape ``(N, 1)``), folded into the normalisation at no extra pass.

    Returns
    -------
    probabilities : array, shape of ``x``
        ``scale * softmax(x)``; zeros where every entry along ``axis`` is ``-inf``.
    log_normalizers : array, shape of ``x`` with ``axis`` of length one
        ``logsumexp(x)``.
    """
    weights, peak, finite = _shifted_exp(x, axis, xp)
    total = _sum(weights, axis, xp)
    if finite:  # every total is at least one
        factor = 1.0 / total if scale is None else scale / total
        return weights * factor, xp.log(total) + peak
    safe = xp.where(total == 0, xp.ones_like(total), total)
    factor = 1.0 / safe if scale is None else scale / safe
    return weights * factor, _log_total(total, peak, xp)


def softmax(x: Any, /, *, axis: int = -1, xp: ModuleType) -> Any:
    """Compute ``exp(x) / sum(exp(x))`` along ``axis`` stably.

    Parameters
    ----------
    x : array
        Logits.
    axis : int, optional
        Axis to normalise.
    xp : module
        Namespace of ``x``.

    Returns
    -------
    array, shape of ``x``
        Probabilities summing to one along ``axis``.

    Notes
    -----
    Normalised by the sum of ``exp(x − max x)``, not through ``logsumexp``: for huge logits
    ``max x + log(sum)`` rounds to ``max x`` and the result would not sum to one.
    """
    weights = _shifted_exp(x, axis, xp)[0]
    return weights / _sum(weights, axis, xp)


def cholesky(a: Any, /, *, xp: ModuleType) -> Any:
    """Lower Cholesky factor of symmetric positive definite matrices.

    Parameters
    ----------
    a : array, shape (..., n, n)
        Symmetric positive definite matrices.
    xp : module
        Namespace of ``a``.

    Returns
    -------
    array, shape (..., n, n)
        ``L`` lower triangular with ``L @ L.mT == a``. Backends that do not raise on
        failure (JAX) return NaN; callers that validate check the factor's diagonal.

    Raises
    ------
    ValidationError
        If the backend reports that a matrix is not positive definite.
    """
    if backend_name_of(xp) == "numpy":
        factor = small_cholesky(a)
        if factor is not None:
            return factor
    try:
        return xp.linalg.cholesky(a)
    except Exception as exc:  # numpy LinAlgError, torch linalg error, cupy errors
        if type(exc).__name__ not in ("LinAlgError", "_LinAlgError", "CUSOLVERError"):
            raise
        msg = f"matrix is not positive definite (Cholesky factorization failed: {exc})"
        raise ValidationError(msg) from None


def eigenvalues_known_above(matrices: Any, floor: float, /, *, xp: ModuleType) -> bool:
    """Whether the host knows, cheaply, that every eigenvalue of ``matrices`` exceeds ``floor``.

    A floor on eigenvalues (``reg_covar``, a full noise floor) changes nothing where every
    eigenvalue clears it, and telling so takes one Cholesky factorisation of ``M − floor I``
    instead of an eigendecomposition. True only when that factorisation succeeds on the host
    (NumPy; PyTorch on the CPU, outside function transforms). False where an eigenvalue is at
    or below the floor, where an entry is NaN, and wherever asking would cost a device
    synchronisation or cannot be answered (JAX, CuPy, array-api-strict, traced values):
    callers then apply the floor as usual, which gives the same result.

    Parameters
    ----------
    matrices : array, shape (..., n, n)
        Symmetric matrices.
    floor : float
        The floor.
    xp : module
        Namespace of ``matrices``.

    Returns
    -------
    bool
        True only if every eigenvalue is known to exceed ``floor``.
    """
    # Only on the host backends; and LAPACK's potrf does not always stop at a NaN pivot, so
    # non-finite entries are ruled out first
    if not _finite_on_host(matrices, xp):
        return False
    shifted = matrices - floor * identity(matrices.shape[-1], matrices, xp=xp)
    if backend_name_of(xp) == "torch":
        import torch

        return not bool(torch.linalg.cholesky_ex(shifted).info.any())
    known = small_definite(shifted)
    if known is not None:
        return known
    try:
        numpy.linalg.cholesky(shifted)
    except numpy.linalg.LinAlgError:
        return False
    return True


def solve_triangular(
    factor: Any, b: Any, /, *, lower: bool = True, transpose: bool = False, xp: ModuleType
) -> Any:
    """Solve ``T x = b`` (or ``T.mT x = b``) with ``T`` triangular.

    Parameters
    ----------
    factor : array, shape (..., n, n)
        Triangular matrices ``T``.
    b : array, shape (..., n, k)
        Right-hand sides (matrices; pass ``v[..., None]`` for vectors).
    lower : bool, optional
        Whether ``T`` is lower triangular.
    transpose : bool, optional
        Solve with ``T.mT`` instead of ``T``.
    xp : module
        Namespace of the inputs.

    Returns
    -------
    array, shape (..., n, k)
        The solutions, batch axes broadcast.
    """
    name = backend_name_of(xp)
    if name == "numpy":  # the same LAPACK solve, broadcasting, without array_api_compat
        import numpy

        solved = small_solve_triangular(factor, b, lower=lower, transpose=transpose)
        if solved is not None:
            return solved
        return numpy.linalg.solve(numpy.matrix_transpose(factor) if transpose else factor, b)
    if factor.shape[:-2] != b.shape[:-2]:
        batch = tuple(broadcast_shapes(factor.shape[:-2], b.shape[:-2]))
        factor = xp.broadcast_to(factor, (*batch, *factor.shape[-2:]))
        b = xp.broadcast_to(b, (*batch, *b.shape[-2:]))
    if name == "torch":
        import torch

        tri = factor.mT if transpose else factor
        return torch.linalg.solve_triangular(tri, b, upper=(lower == transpose))
    if name == "jax":
        from jax import lax

        return lax.linalg.triangular_solve(
            factor, b, left_side=True, lower=lower, transpose_a=transpose
        )
    tri = xp.matrix_transpose(factor) if transpose else factor
    return xp.linalg.solve(tri, b)


def cholesky_solve(factor: Any, b: Any, /, *, xp: ModuleType) -> Any:
    """Solve ``A x = b`` given the lower Cholesky factor ``L`` of ``A``.

    Parameters
    ----------
    factor : array, shape (..., n, n)
        Lower Cholesky factors.
    b : array, shape (..., n, k)
        Right-hand sides.
    xp : module
        Namespace of the inputs.

    Returns
    -------
    array, shape (..., n, k)
        ``A^{-1} b``.
    """
    half = solve_triangular(factor, b, lower=True, xp=xp)
    return solve_triangular(factor, half, lower=True, transpose=True, xp=xp)


def cholesky_inverse(factor: Any, /, *, xp: ModuleType) -> Any:
    """Inverse of ``A = L L^T`` from its lower Cholesky factor.

    Parameters
    ----------
    factor : array, shape (..., n, n)
        Lower Cholesky factors.
    xp : module
        Namespace of ``factor``.

    Returns
    -------
    array, shape (..., n, n)
        ``A^{-1}``, exactly symmetric.
    """
    n = factor.shape[-1]
    eye = identity(n, factor, xp=xp)
    inverse_factor = solve_triangular(factor, eye, lower=True, xp=xp)
    return xp.matrix_transpose(inverse_factor) @ inverse_factor


def cholesky_logdet(factor: Any, /, *, xp: ModuleType) -> Any:
    """``log det A`` from the lower Cholesky factor of ``A``.

    Parameters
    ----------
    factor : array, shape (..., n, n)
        Lower Cholesky factors.
    xp : module
        Namespace of ``factor``.

    Returns
    -------
    array, shape (...)
        ``2 * sum(log(diag(L)))``.
    """
    return 2.0 * xp.sum(xp.log(xp.linalg.diagonal(factor)), axis=-1)


def concat_broadcast(parts: list[Any], /, *, xp: ModuleType) -> Any:
    """Concatenate along the last axis after broadcasting the leading (batch) axes.

    Parameters
    ----------
    parts : list of arrays, shapes (..., n_i)
        Arrays whose leading axes broadcast together.
    xp : module
        Namespace of the arrays.

    Returns
    -------
    array, shape (..., sum(n_i))
        The concatenation.
    """
    leading = parts[0].shape[:-1]
    if all(part.shape[:-1] == leading for part in parts):  # nothing to broadcast
        return xp.concat(parts, axis=-1)
    batch = broadcast_shapes(*(part.shape[:-1] for part in parts))
    return xp.concat([xp.broadcast_to(part, (*batch, part.shape[-1])) for part in parts], axis=-1)


def constant(values: Any, like: Any, /, *, dtype: Any = None, xp: ModuleType) -> Any:
    """``xp.asarray(values, dtype=dtype)`` on ``like``'s device, made once and reused.

    Model code needs small fixed arrays (gather indices of packed storage, storage
    weights) many times per call; building each costs more than using it. They are kept
    per (values, array type, dtype, device). Arrays being traced (``jax.jit``, torch
    function transforms) get a fresh array each time, and so does anything unhashable.
    Callers never modify the result in place (the Array API discipline).

    Parameters
    ----------
    values : tuple of int or float, or float
        The entries (hashable).
    like : array
        An array of the namespace and on the device the constant is for.
    dtype : dtype, optional
        The dtype (default: ``asarray``'s choice for ``values``).
    xp : module
        Namespace of ``like``.

    Returns
    -------
    array
        The constant.
    """
    return _remembered(
        like, (values, dtype), lambda: xp.asarray(values, dtype=dtype, device=device_of(like))
    )


def take_fixed_columns(x: Any, positions: tuple[int, ...], /, *, xp: ModuleType) -> Any:
    """:func:`~hmog_xp._backend.take_columns` at fixed positions (packed storage's gathers).

    The index array is :func:`constant`'s; for a NumPy array its cache entry is read
    directly (one dictionary lookup, where the general path costs a few calls more, on each
    of the dozens of gathers of a small EM step).

    Parameters
    ----------
    x : array, shape (..., n)
        Values.
    positions : tuple of int
        Positions along the last axis.
    xp : module
        Namespace of ``x``.

    Returns
    -------
    array, shape (..., len(positions))
        ``x[..., positions[j]]`` in position ``j``.
    """
    if type(x) is numpy.ndarray:
        return numpy_take_columns(x, _numpy_positions(positions, x, xp))
    return take_columns(x, constant(positions, x, xp=xp), xp=xp)


def fixed_column_products(
    x: Any, first: tuple[int, ...], second: tuple[int, ...], /, *, xp: ModuleType
) -> Any:
    """:func:`~hmog_xp._backend.column_products` at fixed positions (packed outer products).

    Parameters
    ----------
    x : array, shape (..., n)
        Rows of values.
    first, second : tuple of int
        Column positions, paired.
    xp : module
        Namespace of ``x``.

    Returns
    -------
    array, shape (..., len(first))
        ``x[..., first[j]] * x[..., second[j]]`` in column ``j``.
    """
    if type(x) is numpy.ndarray:
        return take_fixed_columns(x, first, xp=xp) * take_fixed_columns(x, second, xp=xp)
    return column_products(x, constant(first, x, xp=xp), constant(second, x, xp=xp), xp=xp)


def _numpy_positions(positions: tuple[int, ...], like: Any, xp: ModuleType) -> Any:
    """:func:`constant` of ``positions`` for a NumPy ``like``: its cache entry read directly."""
    indices = _CONSTANTS.get((positions, None, numpy.ndarray))  # _remembered's NumPy key
    return constant(positions, like, xp=xp) if indices is None else indices


def identity(n: int, like: Any, /, *, xp: ModuleType) -> Any:
    """The ``n x n`` identity in ``like``'s dtype and on its device, made once and reused.

    The rule of :func:`constant` (fresh under tracing; never modified in place).

    Parameters
    ----------
    n : int
        Matrix dimension.
    like : array
        An array of the dtype, namespace and device wanted.
    xp : module
        Namespace of ``like``.

    Returns
    -------
    array, shape (n, n)
        The identity.
    """
    return _remembered(
        like,
        ("identity", n, like.dtype),
        lambda: xp.eye(n, dtype=like.dtype, device=device_of(like)),
    )


def _remembered(like: Any, what: tuple[Any, ...], make: Any) -> Any:
    """``make()``, kept by ``what`` and ``like``'s array type and device (see :func:`constant`).

    Arrays being traced, and anything unhashable, get a fresh ``make()`` each time.
    """
    kind = type(like)
    try:
        if kind is numpy.ndarray:  # the common case, first: one device, always concrete
            key: tuple[Any, ...] = (*what, kind)
        elif not is_concrete(like):
            return make()
        else:
            key = (*what, kind, like.device)
        return _CONSTANTS[key]
    except KeyError:
        pass
    except (TypeError, AttributeError):  # unhashable parts, no ``device`` attribute
        return make()
    array = make()
    if is_concrete(array):
        if len(_CONSTANTS) >= _MAX_CONSTANTS:
            _CONSTANTS.clear()
        _CONSTANTS[key] = array
    return array


#: The arrays :func:`constant` made, by (values, array type, dtype, device).
_CONSTANTS: dict[tuple[Any, ...], Any] = {}
_MAX_CONSTANTS = 4096


def broadcast_shapes(*shapes: tuple[int, ...]) -> tuple[int, ...]:
    """Broadcast shapes like NumPy (the standard has no ``broadcast_shapes``).

    Parameters
    ----------
    *shapes : tuple of int
        Shapes to broadcast.

    Returns
    -------
    tuple of int
        The broadcast shape.

    Raises
    ------
    ValidationError
        If the shapes are incompatible.
    """
    ndim = max(len(s) for s in shapes)
    padded = [(1,) * (ndim - len(s)) + tuple(s) for s in shapes]
    out = []
    for dims in zip(*padded, strict=True):
        sizes = {d for d in dims if d != 1}
        if len(sizes) > 1:
            msg = f"batch shapes {shapes} do not broadcast"
            raise ValidationError(msg)
        out.append(sizes.pop() if sizes else 1)
    return tuple(out)
