"""Chunked E-step sums for HMoGs (shared by the model methods and :mod:`hmog_xp.em`).

Each row chunk contributes ``Xᵀ E[y|x]``, responsibility-weighted component statistics and
``Σ ψ_mix(posterior(x))``; ``mean s_x(x)`` is computed separately (once per fit by the EM
driver). Peak extra memory is ``O(chunk · K · d)`` whatever ``N``.

Precision: every chunk is computed in the data's dtype (the GEMMs with the data stay there),
but the chunk sums are added up, and assembled into mean coordinates and the
log-likelihood, in :func:`accumulation_dtype` (float64 for float32 data when the backend
has float64). Summing ``N`` float32 rows in float32 loses about ``log2 N`` bits and the
log-likelihood is a small difference of large terms; in float64 the result is as accurate as
the per-row float32 values, which is what lets float32 EM reach the float64 optimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
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


def accumulation_dtype(xp: ModuleType, dtype: Any) -> Any:
    """The dtype E-step sums are accumulated in: float64 if ``dtype`` is less precise.

    JAX without ``jax_enable_x64`` has no float64: then ``dtype`` itself (no warning).

    Parameters
    ----------
    xp : module
        Namespace.
    dtype : dtype
        Floating dtype of the data and parameters.

    Returns
    -------
    dtype
        ``xp.float64`` when it exists and is more precise than ``dtype``, else ``dtype``.
    """
    wide = B.default_float_dtype(xp)
    if wide == dtype or xp.finfo(wide).eps >= xp.finfo(dtype).eps:
        return dtype
    return wide


def chunk_sums_for(
    model: HierarchicalMixtureOfGaussians, params: Any
) -> Callable[[Any, Any], tuple[Any, ...]]:
    """Return ``sums(chunk, weights)``, the E-step sums of one row chunk under ``params``.

    The component factorisations do not depend on the data: they are made here, once, and
    every chunk reuses them. They are made in :func:`accumulation_dtype`, and so are the
    x-independent part of every posterior logit (``½ h_k·c_k − ½ log|Λ_k| + θ_{z,k}``) and
    the per-row log-normaliser; the GEMMs with the chunk stay in its dtype (see
    :func:`hmog_xp.hmog._posterior.posteriors_at` for the decomposition).

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    params : array, shape (dim,)
        Natural parameters.

    Returns
    -------
    callable
        ``sums(chunk (m, p), weights (m,)) -> (Xᵀ E[y|x], Σ r η, Σ r, Σ ψ_mix(posterior(x)))``;
        the last sum is in the accumulation dtype, the others in ``params``'s dtype.
    """
    xp = B.array_namespace(params)
    dtype = params.dtype
    wide = accumulation_dtype(xp, dtype)
    _, interaction, upper = model.split_coords(params)
    if wide == dtype:  # nothing more precise exists: the plain kernel
        terms = P.component_terms(model.posterior_upper, upper)

        def plain_sums(chunk: Any, weights: Any) -> tuple[Any, ...]:
            posteriors = P.posteriors_at(model.posterior_upper, terms, chunk @ interaction)
            log_normalizers = B.logsumexp(posteriors.logits, axis=-1, keepdims=True, xp=xp)
            probs = xp.exp(posteriors.logits - log_normalizers) * weights[:, None]
            return (*_statistics(model, chunk, posteriors, probs), weights @ log_normalizers[:, 0])

        return plain_sums
    return _precise_sums(model, interaction, upper, wide)


def _statistics(
    model: HierarchicalMixtureOfGaussians,
    chunk: Any,
    posteriors: Any,
    probs: Any,
    latent_means: Any = None,
) -> tuple[Any, Any, Any]:
    """``(Xᵀ E[y|x], Σ r η, Σ r)`` of one chunk from its posteriors (and ``E[y|x]``)."""
    xp = B.array_namespace(chunk, probs)
    if latent_means is None:
        latent_means = P.latent_means(posteriors, probs)
    cross = xp.matrix_transpose(chunk) @ latent_means
    weighted, totals = P.weighted_upper_sums(model.posterior_upper, posteriors, probs)
    return cross, weighted, totals


def _precise_sums(
    model: HierarchicalMixtureOfGaussians, interaction: Any, upper: Any, wide: Any
) -> Callable[[Any, Any], tuple[Any, ...]]:
    """The chunk sums of :func:`chunk_sums_for` with the log-likelihood in ``wide``."""
    xp = B.array_namespace(interaction, upper)
    dtype = upper.dtype
    rep = model.posterior_upper.component_man.rep
    precise = P.component_terms(model.posterior_upper, xp.astype(upper, wide))
    terms = P.ComponentTerms(*(xp.astype(part, dtype) for part in precise))
    offsets = (
        0.5 * xp.vecdot(precise.location, precise.centers)
        - 0.5 * precise.logdets
        + precise.log_weights
    )  # (K,), the x-independent part of the logits
    # Σ_k = Σ̄ + Δ_k with Σ̄ the average: the large shared quadratic ½ uᵀΣ̄u (the part that
    # cancels against ½ xᵀΨ⁻¹x in log p(x)) is made in the wide dtype, only the small
    # component differences in the data's dtype.
    shared = xp.mean(precise.covariances, axis=0, keepdims=True)  # (1, size)
    deltas = xp.astype(precise.covariances - shared, dtype)

    def sums(chunk: Any, weights: Any) -> tuple[Any, ...]:
        shift = chunk @ interaction
        wide_shift = xp.astype(shift, wide)
        common = rep.matvec_all(shared, wide_shift)[:, 0, :]  # Σ̄ u, (m, d)
        differences = rep.matvec_all(deltas, shift)  # Δ_k u, (m, K, d)
        varying = shift @ xp.matrix_transpose(terms.centers) + 0.5 * xp.vecdot(
            shift[:, None, :], differences
        )  # u·c_k + ½ uᵀΔ_k u, shape (m, K)
        base = 0.5 * xp.vecdot(wide_shift, common)  # ½ uᵀΣ̄u, (m,)
        logits = offsets + xp.astype(varying, wide)
        peak = xp.max(logits, axis=-1, keepdims=True)  # without the shared base
        relative = xp.astype(logits - peak, dtype)
        local = xp.log(xp.sum(xp.exp(relative), axis=-1, keepdims=True))
        probs = xp.exp(relative - local) * weights[:, None]
        # spreads Σ_k u = Σ̄ u + Δ_k u; E[y|x] = Σ_k r_k (c_k + Δ_k u) + (Σ_k r_k) Σ̄ u
        posteriors = P.ComponentPosteriors(
            relative, terms.centers, differences, shift, terms.covariances
        )
        latent = P.latent_means(posteriors, probs) + xp.sum(
            probs, axis=-1, keepdims=True
        ) * xp.astype(common, dtype)
        log_normalizers = base + (peak + xp.astype(local, wide))[:, 0]
        return (
            *_statistics(model, chunk, posteriors, probs, latent),
            xp.astype(weights, wide) @ log_normalizers,
        )

    return sums


def expectation(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    obs_statistics: Any,
    chunk_size: int,
    dtype: Any = None,
) -> tuple[Any, Any]:
    """One chunked E-step: mean posterior statistics and the average log-likelihood.

    Chunks are computed in the data's dtype and summed in :func:`accumulation_dtype`.

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
    dtype : dtype, optional
        The dtype of the results (default: ``params``'s). The EM driver asks for the
        accumulation dtype, so that the M-step runs in it too.

    Returns
    -------
    means : array, shape (dim,)
        ``mean_posterior_statistics(params, xs)``.
    log_likelihood : array, shape ()
        ``average_log_observable_density(params, xs)``.
    """
    xp = B.array_namespace(params, xs)
    wide = accumulation_dtype(xp, params.dtype)
    sums = sum_over_chunks(_widened(chunk_sums_for(model, params), wide, xp), xs, chunk_size, xp=xp)
    means, log_likelihood = assemble_expectation(
        model,
        xp.astype(params, wide, copy=False),
        xp.astype(obs_statistics, wide, copy=False),
        sums,
        xs.shape[0],
    )
    dtype = params.dtype if dtype is None else dtype
    return xp.astype(means, dtype, copy=False), xp.astype(log_likelihood, dtype, copy=False)


def _widened(
    sums: Callable[[Any, Any], tuple[Any, ...]], dtype: Any, xp: ModuleType
) -> Callable[[Any, Any], tuple[Any, ...]]:
    """``sums`` with every output cast to ``dtype`` (so the chunks add up in it)."""
    return lambda chunk, weights: tuple(
        xp.astype(part, dtype, copy=False) for part in sums(chunk, weights)
    )


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
        Average observable sufficient statistic, in :func:`accumulation_dtype` of ``xs``
        (float64 for float32 data where the backend has it).
    """
    xp = B.array_namespace(xs)
    wide = accumulation_dtype(xp, xs.dtype)
    (total,) = sum_over_chunks(
        _widened(
            lambda chunk, weights: (weights @ model.obs_man.sufficient_statistic(chunk),), wide, xp
        ),
        xs,
        chunk_size,
        xp=xp,
    )
    return total / xs.shape[0]
