"""Products, gathers and reductions whose fastest memory layout depends on the backend.

The E-step's per-row work on ``(N, d)`` and ``(N, K)`` blocks is a few element-wise
products, gathers of columns, reductions along the short last axis and GEMMs; which way
runs them fastest differs between libraries (measured with one thread on the row blocks of
``benchmarks/bench_em.py``'s cases S and L). The results are the same on every backend (up
to the order of a sum's terms); only the way there differs.

NumPy reduces along a short last axis slowly: ``max`` over the 8 columns of a
``(14122, 8)`` block takes 0.63 ms, a maximum taken column by column 0.05 ms; ``sum``
takes 0.21 ms, the product with a vector of ones 0.02 ms. Its ``take`` along the last axis
costs 0.23 ms where indexing the same columns costs 0.09 ms (and 0.8 µs where the array
method costs 0.2 µs on the tiny arrays of small fits). Its ``einsum`` weights and sums the
``K`` vectors of each row (``(14122, 8, 5)`` blocks) in 0.37 ms where the batched GEMM of
``(N, 1, K)`` by ``(N, K, d)`` takes 0.51 ms (3 µs against 5 µs on a small fit's rows).
PyTorch's namespace ``take`` maps negative indices first, two more operations of a few
microseconds each, and its ``vecdot`` broadcasts and moves axes (17 µs on ``(3, 6)`` rows
against 2.5 µs for the product and sum).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from hmog_xp._backend._registry import backend_name_of

__all__ = [
    "column_products",
    "last_axis_max",
    "last_axis_sum",
    "row_weighted_sums",
    "take_columns",
    "vecdot",
]

#: Below this many entries NumPy's fixed per-call costs dominate and the array method wins.
_NUMPY_LARGE = 4096
#: Rows from which PyTorch gathers column pairs from the transposed block.
_TORCH_ROW_GATHER = 512
#: Longest last axis reduced column by column (longer ones reduce fast enough in NumPy).
_NUMPY_SHORT_AXIS = 64


def take_columns(x: Any, indices: Any, /, *, xp: ModuleType) -> Any:
    """Gather entries along the last axis: ``xp.take(x, indices, axis=-1)``.

    Parameters
    ----------
    x : array, shape (..., n)
        Values.
    indices : array of int, shape (m,)
        Positions along the last axis.
    xp : module
        Namespace of the inputs.

    Returns
    -------
    array, shape (..., m)
        ``x[..., indices[j]]`` in position ``j``.
    """
    name = backend_name_of(xp)
    if name == "numpy":
        return numpy_take_columns(x, indices)
    if name == "torch":  # the namespace's take also maps negative indices (two more ops)
        return x.index_select(-1, indices)
    return xp.take(x, indices, axis=-1)


def numpy_take_columns(x: Any, indices: Any, /) -> Any:
    """:func:`take_columns` of a NumPy array: indexing on large arrays, ``take`` on small ones.

    Parameters
    ----------
    x : numpy.ndarray, shape (..., n)
        Values.
    indices : numpy.ndarray of int, shape (m,)
        Positions along the last axis.

    Returns
    -------
    numpy.ndarray, shape (..., m)
        ``x[..., indices[j]]`` in position ``j``.
    """
    return x[..., indices] if x.size > _NUMPY_LARGE else x.take(indices, axis=-1)


def column_products(x: Any, first: Any, second: Any, /, *, xp: ModuleType) -> Any:
    """Multiply pairs of columns: ``x[..., first] * x[..., second]``.

    PyTorch gathers whole rows much faster than columns (0.37 ms against 0.84 ms for the 55
    pairs of 10 columns of a 3847-row block): a 2-D ``x`` is gathered from its transposed
    copy, and the result is that product's transposed view (GEMMs take it as it is); blocks of
    fewer than 512 rows are gathered directly (two operations fewer).

    Parameters
    ----------
    x : array, shape (..., n)
        Rows of values.
    first, second : array of int, shape (m,)
        Column indices, paired.
    xp : module
        Namespace of the inputs.

    Returns
    -------
    array, shape (..., m)
        ``x[..., first[j]] * x[..., second[j]]`` in column ``j``.
    """
    if x.ndim == 2 and x.shape[0] >= _TORCH_ROW_GATHER and backend_name_of(xp) == "torch":
        rows = x.mT.contiguous()
        return (rows.index_select(0, first) * rows.index_select(0, second)).mT
    return take_columns(x, first, xp=xp) * take_columns(x, second, xp=xp)


def _short_numpy_rows(x: Any, xp: ModuleType) -> bool:
    """Whether ``x`` is a large NumPy array of rows with a short last axis."""
    return (
        backend_name_of(xp) == "numpy"
        and x.ndim >= 2
        and 1 < x.shape[-1] <= _NUMPY_SHORT_AXIS
        and x.size > _NUMPY_LARGE
    )


def last_axis_max(x: Any, /, *, xp: ModuleType) -> Any:
    """``xp.max(x, axis=-1, keepdims=True)``.

    Parameters
    ----------
    x : array, shape (..., n)
        Real values (``±inf`` allowed), ``n >= 1``.
    xp : module
        Namespace of ``x``.

    Returns
    -------
    array, shape (..., 1)
        The largest entry of each row.
    """
    if not _short_numpy_rows(x, xp):
        return xp.max(x, axis=-1, keepdims=True)
    import numpy

    peak = numpy.array(x[..., 0])
    for column in range(1, x.shape[-1]):
        numpy.maximum(peak, x[..., column], out=peak)
    return peak[..., None]


def last_axis_sum(x: Any, /, *, xp: ModuleType) -> Any:
    """``xp.sum(x, axis=-1, keepdims=True)`` of real floating-point values.

    Parameters
    ----------
    x : array, shape (..., n)
        Real floating-point values.
    xp : module
        Namespace of ``x``.

    Returns
    -------
    array, shape (..., 1)
        The sum of each row (on NumPy, large arrays: a product with a vector of ones, whose
        terms are added in another order).
    """
    if not _short_numpy_rows(x, xp):
        return xp.sum(x, axis=-1, keepdims=True)
    import numpy

    return (x @ numpy.ones(x.shape[-1], dtype=x.dtype))[..., None]


def row_weighted_sums(weights: Any, vectors: Any, /, *, xp: ModuleType) -> Any:
    """``Σ_k w_nk v_nk`` for every row: the weighted sum of each row's ``K`` vectors.

    Parameters
    ----------
    weights : array, shape (N, K)
        Weights of each row's vectors.
    vectors : array, shape (N, K, d)
        ``K`` vectors per row.
    xp : module
        Namespace of the inputs.

    Returns
    -------
    array, shape (N, d)
        The weighted sums (a batched GEMM; on NumPy, ``einsum``).
    """
    if backend_name_of(xp) == "numpy":
        import numpy

        return numpy.einsum("nk,nkd->nd", weights, vectors)
    return (weights[:, None, :] @ vectors)[:, 0, :]


def vecdot(a: Any, b: Any, /, *, xp: ModuleType) -> Any:
    """``xp.vecdot(a, b)`` of real arrays: ``Σ_i a_i b_i`` along the last axis.

    Parameters
    ----------
    a, b : array, shapes broadcasting to (..., n)
        Real vectors.
    xp : module
        Namespace of the inputs.

    Returns
    -------
    array, shape (...)
        The dot products (on PyTorch, the elementwise product summed).
    """
    if backend_name_of(xp) == "torch":
        return (a * b).sum(-1)
    return xp.vecdot(a, b)
