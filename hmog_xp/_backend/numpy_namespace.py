"""The NumPy namespace hmog_xp hands out: ``array_api_compat.numpy`` with leaner hot functions.

A small EM step makes a few hundred array calls on arrays of a few dozen entries, so what
a call costs before NumPy's C code runs is most of its time. ``numpy.sum``, ``numpy.max``
and ``numpy.reshape`` go through NumPy's Python dispatch layer (about 1 us, 1 us and
0.5 us), and ``array_api_compat``'s ``matrix_transpose``, ``permute_dims``, ``astype``,
``zeros`` and ``zeros_like`` wrap NumPy in a device check (0.3 to 0.6 us). For a plain
``numpy.ndarray`` the functions below call the ufunc or the array method those layers end
in, so the results are the same; anything else (NumPy scalars, subclasses, array-likes,
arguments outside the fast case) goes to ``array_api_compat.numpy`` unchanged.

Every other name is ``array_api_compat.numpy``'s own object.
"""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as _compat_module
import numpy as _np

_compat: Any = _compat_module
globals().update({key: value for key, value in vars(_compat).items() if key[:2] != "__"})

__array_api_version__ = _compat.__array_api_version__

_ndarray = _np.ndarray
_add_reduce: Any = _np.add.reduce
_maximum_reduce: Any = _np.maximum.reduce
_compat_sum = _compat.sum
_compat_max = _compat.max
_compat_reshape = _compat.reshape
_compat_matrix_transpose = _compat.matrix_transpose
_compat_permute_dims = _compat.permute_dims
_compat_astype = _compat.astype
_compat_zeros = _compat.zeros
_compat_zeros_like = _compat.zeros_like
_INEXACT = frozenset("fc")


def sum(x: Any, /, *, axis: Any = None, dtype: Any = None, keepdims: bool = False) -> Any:
    """``numpy.sum``; ``add.reduce`` for float and complex arrays (nothing to upcast).

    Parameters
    ----------
    x : array
        Values.
    axis : int or tuple of int, optional
        Axes to sum over (default: all).
    dtype : dtype, optional
        Result dtype (default: the Array API's choice).
    keepdims : bool, optional
        Keep the summed axes with length one.

    Returns
    -------
    array
        The sums.
    """
    if type(x) is _ndarray and dtype is None and x.dtype.kind in _INEXACT:
        return _add_reduce(x, axis=axis, keepdims=keepdims)
    return _compat_sum(x, axis=axis, dtype=dtype, keepdims=keepdims)


def max(x: Any, /, *, axis: Any = None, keepdims: bool = False) -> Any:
    """``numpy.max``; ``maximum.reduce`` for non-empty float arrays.

    Parameters
    ----------
    x : array
        Values.
    axis : int or tuple of int, optional
        Axes to reduce (default: all).
    keepdims : bool, optional
        Keep the reduced axes with length one.

    Returns
    -------
    array
        The maxima.
    """
    if type(x) is _ndarray and x.size and x.dtype.kind == "f":
        return _maximum_reduce(x, axis=axis, keepdims=keepdims)
    return _compat_max(x, axis=axis, keepdims=keepdims)


def reshape(x: Any, /, shape: Any, *, copy: bool | None = None) -> Any:
    """``numpy.reshape``; the array's method where ``copy`` is not given.

    Parameters
    ----------
    x : array
        Values.
    shape : tuple of int
        New shape.
    copy : bool, optional
        True: always copy; False: never copy (raise instead); None: copy only if needed.

    Returns
    -------
    array
        The reshaped array.
    """
    if type(x) is _ndarray and copy is None:
        return x.reshape(shape)
    return _compat_reshape(x, shape, copy=copy)


def matrix_transpose(x: Any, /) -> Any:
    """Swap the last two axes (a view).

    Parameters
    ----------
    x : array, shape (..., m, n)
        Matrices.

    Returns
    -------
    array, shape (..., n, m)
        Their transposes.
    """
    if type(x) is _ndarray and x.ndim >= 2:
        return x.swapaxes(-1, -2)
    return _compat_matrix_transpose(x)


def permute_dims(x: Any, /, axes: Any) -> Any:
    """Permute the axes (a view).

    Parameters
    ----------
    x : array
        Values.
    axes : tuple of int
        The new order of the axes.

    Returns
    -------
    array
        The permuted array.
    """
    if type(x) is _ndarray:
        return x.transpose(axes)
    return _compat_permute_dims(x, axes)


def astype(x: Any, dtype: Any, /, *, copy: bool = True, device: Any = None) -> Any:
    """Cast to ``dtype``.

    Parameters
    ----------
    x : array
        Values.
    dtype : dtype
        Target dtype.
    copy : bool, optional
        False: ``x`` itself where it already has ``dtype``.
    device : device, optional
        Target device (NumPy has only the CPU).

    Returns
    -------
    array
        The cast array.
    """
    if type(x) is _ndarray and device is None:
        return x.astype(dtype, copy=copy)
    return _compat_astype(x, dtype, copy=copy, device=device)


def zeros(shape: Any, *, dtype: Any = None, device: Any = None) -> Any:
    """``numpy.zeros``.

    Parameters
    ----------
    shape : int or tuple of int
        Shape.
    dtype : dtype, optional
        Dtype (default: float64).
    device : device, optional
        ``"cpu"`` or None (NumPy has only the CPU).

    Returns
    -------
    array
        Zeros.
    """
    if device is None or device == "cpu":
        return _np.zeros(shape, dtype=dtype)
    return _compat_zeros(shape, dtype=dtype, device=device)


def zeros_like(x: Any, /, *, dtype: Any = None, device: Any = None) -> Any:
    """``numpy.zeros_like``.

    Parameters
    ----------
    x : array
        Template.
    dtype : dtype, optional
        Dtype (default: ``x``'s).
    device : device, optional
        ``"cpu"`` or None (NumPy has only the CPU).

    Returns
    -------
    array
        Zeros of ``x``'s shape.
    """
    if type(x) is _ndarray and (device is None or device == "cpu"):
        return _np.zeros_like(x, dtype=dtype)
    return _compat_zeros_like(x, dtype=dtype, device=device)
