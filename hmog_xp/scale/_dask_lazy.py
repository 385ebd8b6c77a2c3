"""Chunk-wise, lazy predictions on Dask arrays: one ``map_blocks`` per method.

Each row chunk (NumPy or CuPy, on a worker) gets the parameters as a small host vector and
runs the model's own method; nothing is computed until the result is.
"""

from __future__ import annotations

from typing import Any

from hmog_xp._backend import _dask_support as S
from hmog_xp.scale._dask import check_dask_sample

__all__ = ["dask_predict", "dask_predict_proba", "dask_score_samples", "dask_transform"]


def _block_method(block: Any, model: Any, params: Any, method: str) -> Any:
    return getattr(model, method)(S.like_chunk(params, block), block)


def _lazy(model: Any, params: Any, xs: Any, method: str, width: int | None, dtype: Any) -> Any:
    from dask.array.utils import meta_from_array

    check_dask_sample(model, xs)
    model._check_params(params)
    if width is None:  # one value per row
        layout = {"drop_axis": 1, "chunks": (xs.chunks[0],), "ndim": 1}
    else:
        layout = {"chunks": (xs.chunks[0], (width,)), "ndim": 2}
    ndim = layout.pop("ndim")
    return xs.map_blocks(
        _block_method,
        model,
        S.to_host(params),
        method,
        dtype=dtype,
        meta=meta_from_array(xs._meta, ndim=ndim, dtype=dtype),
        **layout,
    )


def dask_predict(model: Any, params: Any, xs: Any) -> Any:
    """Return the most probable component of every row, lazily, chunk by chunk.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    params : array, shape (dim,)
        Natural parameters.
    xs : dask.array.Array, shape (N, p)
        Observations chunked along rows.

    Returns
    -------
    dask.array.Array of int64, shape (N,)
        ``argmax_k p(z = k | x)``, with ``xs``'s row chunks.
    """
    return _lazy(model, params, xs, "posterior_hard_assignment", None, "int64")


def dask_predict_proba(model: Any, params: Any, xs: Any) -> Any:
    """Return the posterior component probabilities of every row, lazily.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    params : array, shape (dim,)
        Natural parameters.
    xs : dask.array.Array, shape (N, p)
        Observations chunked along rows.

    Returns
    -------
    dask.array.Array, shape (N, K)
        ``p(z = k | x)``.
    """
    return _lazy(model, params, xs, "posterior_soft_assignments", model.n_components, xs.dtype)


def dask_transform(model: Any, params: Any, xs: Any) -> Any:
    """Return the posterior latent means (factor scores) of every row, lazily.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    params : array, shape (dim,)
        Natural parameters.
    xs : dask.array.Array, shape (N, p)
        Observations chunked along rows.

    Returns
    -------
    dask.array.Array, shape (N, d)
        ``E[y | x]``.
    """
    return _lazy(model, params, xs, "posterior_latent_mean", model.lat_dim, xs.dtype)


def dask_score_samples(model: Any, params: Any, xs: Any) -> Any:
    """Return ``log p(x)`` of every row, lazily.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    params : array, shape (dim,)
        Natural parameters.
    xs : dask.array.Array, shape (N, p)
        Observations chunked along rows.

    Returns
    -------
    dask.array.Array, shape (N,)
        Log observable densities.
    """
    return _lazy(model, params, xs, "log_observable_density", None, xs.dtype)
