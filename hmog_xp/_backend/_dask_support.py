"""Host (NumPy) helpers for the Dask drivers in :mod:`hmog_xp.scale`.

Chunks on Dask workers may be NumPy or CuPy arrays; what travels between workers and the
client are small statistic vectors. These helpers move such vectors to the host as NumPy
``float64`` (the reduction dtype), pack tuples of per-chunk sums into one row, and move
host vectors back into the namespace and device of a chunk or of the client's parameters.
Nothing here imports Dask.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from hmog_xp._backend._arrays import device_of
from hmog_xp._backend._registry import array_namespace
from hmog_xp._backend.transfer import to_numpy

__all__ = ["from_host", "host_meta", "host_zeros", "like_chunk", "pack_row", "to_host"]


def to_host(x: Any) -> np.ndarray:
    """Copy an array (NumPy, CuPy, PyTorch, JAX, array-api-strict) to a NumPy ``float64``.

    Parameters
    ----------
    x : array
        Any supported array.

    Returns
    -------
    numpy.ndarray
        A NumPy copy of ``x`` in ``float64``.
    """
    return np.array(to_numpy(x), dtype=np.float64)


def from_host(values: np.ndarray, reference: Any) -> Any:
    """Move a host vector into the namespace, device and dtype of ``reference``.

    Parameters
    ----------
    values : numpy.ndarray
        Host values.
    reference : array
        Array whose namespace, device and floating dtype the result takes.

    Returns
    -------
    array
        ``values`` as an array like ``reference``.
    """
    if isinstance(reference, np.ndarray):
        return np.asarray(values, dtype=reference.dtype)
    xp = array_namespace(reference)
    return xp.asarray(values, dtype=reference.dtype, device=device_of(reference))


def like_chunk(values: np.ndarray, chunk: Any) -> Any:
    """Move host parameters to a data chunk's namespace and device, in the chunk's dtype.

    Parameters
    ----------
    values : numpy.ndarray
        Host values (e.g. natural parameters).
    chunk : array
        A data chunk (NumPy or CuPy on Dask workers).

    Returns
    -------
    array
        ``values`` in the chunk's namespace, on its device, with its dtype.
    """
    return from_host(values, chunk)


def pack_row(parts: tuple[Any, ...]) -> np.ndarray:
    """Flatten a tuple of arrays into one host row of shape ``(1, total size)``.

    Parameters
    ----------
    parts : tuple of arrays
        Per-chunk sums (any supported array type).

    Returns
    -------
    numpy.ndarray, shape (1, L)
        The concatenated flattened parts in ``float64``.
    """
    flat = [np.reshape(to_host(part), (-1,)) for part in parts]
    return np.concatenate(flat)[None, :]


def host_zeros(shape: tuple[int, ...]) -> np.ndarray:
    """Return host ``float64`` zeros of ``shape``.

    Parameters
    ----------
    shape : tuple of int
        Shape.

    Returns
    -------
    numpy.ndarray
        Zeros.
    """
    return np.zeros(shape, dtype=np.float64)


def host_meta(ndim: int, dtype: Any = None) -> np.ndarray:
    """Return an empty NumPy array of ``ndim`` dimensions, for Dask ``meta`` arguments.

    Parameters
    ----------
    ndim : int
        Number of dimensions.
    dtype : dtype, optional
        Dtype (default ``float64``).

    Returns
    -------
    numpy.ndarray
        An array of shape ``(0,) * ndim``.
    """
    return np.empty((0,) * ndim, dtype=np.float64 if dtype is None else dtype)
