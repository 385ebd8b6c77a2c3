"""Chunked E-step sums for HMoGs (shared by the model methods and :mod:`hmog_xp.em`).

Each row chunk contributes ``Xᵀ E[y|x]``, responsibility-weighted component statistics and
``Σ ψ_mix(posterior(x))``; ``mean s_x(x)`` is computed separately (once per fit by the EM
driver). Peak extra memory is ``O(chunk · K · d)`` whatever ``N``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hmog_xp import _backend as B
from hmog_xp._backend.chunks import sum_over_chunks
from hmog_xp.hmog import _posterior as P

if TYPE_CHECKING:
    from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians

#: Target size of the per-chunk working arrays.
_CHUNK_BYTES = 32 * 2**20


def default_chunk_size(model: HierarchicalMixtureOfGaussians, n_obs: int) -> int:
    """Choose the rows per chunk so the E-step's working arrays stay near 32 MiB.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    n_obs : int
        Number of observations.

    Returns
    -------
    int
        Chunk size in ``[256, n_obs]`` (at least 1).
    """
    p, d = model.int_shape
    k = model.n_components
    row_bytes = 8 * (2 * p + k * (4 * d + 4) + d)
    return max(1, min(n_obs, max(256, _CHUNK_BYTES // row_bytes)))


def chunk_sums_for(
    model: HierarchicalMixtureOfGaussians, params: Any
) -> Callable[[Any, Any], tuple[Any, ...]]:
    """Return ``sums(chunk, weights)``, the E-step sums of one row chunk under ``params``.

    The component factorisations do not depend on the data: they are made here, once, and
    every chunk reuses them.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    params : array, shape (dim,)
        Natural parameters.

    Returns
    -------
    callable
        ``sums(chunk (m, p), weights (m,)) -> (Xᵀ E[y|x], Σ r η, Σ r, Σ ψ_mix(posterior(x)))``.
    """
    xp = B.array_namespace(params)
    _, interaction, upper = model.split_coords(params)
    terms = P.component_terms(model.posterior_upper, upper)

    def sums(chunk: Any, weights: Any) -> tuple[Any, ...]:
        posteriors = P.posteriors_at(model.posterior_upper, terms, chunk @ interaction)
        log_normalizers = B.logsumexp(posteriors.logits, axis=-1, keepdims=True, xp=xp)
        probs = xp.exp(posteriors.logits - log_normalizers) * weights[:, None]
        cross = xp.matrix_transpose(chunk) @ P.latent_means(posteriors, probs)
        weighted, totals = P.weighted_upper_sums(model.posterior_upper, posteriors, probs)
        log_partition = weights @ log_normalizers[:, 0]
        return cross, weighted, totals, log_partition

    return sums


def expectation(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    obs_statistics: Any,
    chunk_size: int,
) -> tuple[Any, Any]:
    """One chunked E-step: mean posterior statistics and the average log-likelihood.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    params : array, shape (dim,)
        Natural parameters.
    xs : array, shape (N, p)
        Observations.
    obs_statistics : array, shape (obs_man.dim,)
        ``mean_n s_x(x_n)`` (cached per fit).
    chunk_size : int
        Rows per chunk.

    Returns
    -------
    means : array, shape (dim,)
        ``mean_posterior_statistics(params, xs)``.
    log_likelihood : array, shape ()
        ``average_log_observable_density(params, xs)``.
    """
    xp = B.array_namespace(params, xs)
    sums = sum_over_chunks(chunk_sums_for(model, params), xs, chunk_size, xp=xp)
    return assemble_expectation(model, params, obs_statistics, sums, xs.shape[0])


def assemble_expectation(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    obs_statistics: Any,
    sums: tuple[Any, ...],
    n_obs: int,
) -> tuple[Any, Any]:
    """Mean posterior statistics and average log-likelihood from summed chunk statistics.

    The E-step splits exactly over data partitions: ``sums`` may add up the per-chunk
    outputs of any partition of the rows (one array in memory, Dask chunks on workers).

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    params : array, shape (dim,)
        Natural parameters the sums were computed with.
    obs_statistics : array, shape (obs_man.dim,)
        ``mean_n s_x(x_n)`` over the same rows.
    sums : tuple of arrays
        ``(Σ Xᵀ E[y|x], Σ r η, Σ r, Σ ψ_mix(posterior(x)))``: element-wise sums over chunks
        of the per-chunk E-step sums.
    n_obs : int
        Number of rows summed over.

    Returns
    -------
    means : array, shape (dim,)
        ``mean_posterior_statistics(params, xs)``.
    log_likelihood : array, shape ()
        ``average_log_observable_density(params, xs)``.
    """
    xp = B.array_namespace(params, obs_statistics)
    cross, weighted, totals, log_partition = sums
    upper = model.posterior_upper.join_weighted_mean_mixture(weighted / n_obs, totals / n_obs)
    means = model.join_coords(obs_statistics, cross / n_obs, upper)
    obs_params = params[: model.obs_man.dim]
    base = -0.5 * model.obs_man.n * math.log(2.0 * math.pi)
    log_likelihood = (
        xp.sum(obs_params * obs_statistics)
        + base
        + log_partition / n_obs
        - model.log_partition_function(params)
    )
    return means, log_likelihood


def observable_statistics(model: HierarchicalMixtureOfGaussians, xs: Any, chunk_size: int) -> Any:
    """``mean_n s_x(x_n)``, computed chunk by chunk.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    xs : array, shape (N, p)
        Observations.
    chunk_size : int
        Rows per chunk.

    Returns
    -------
    array, shape (obs_man.dim,)
        Average observable sufficient statistic.
    """
    xp = B.array_namespace(xs)
    (total,) = sum_over_chunks(
        lambda chunk, weights: (weights @ model.obs_man.sufficient_statistic(chunk),),
        xs,
        chunk_size,
        xp=xp,
    )
    return total / xs.shape[0]
