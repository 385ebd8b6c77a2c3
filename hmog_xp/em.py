"""Expectation-maximisation at scale: cached data statistics, chunked E-steps, jitted steps.

:func:`fit_em` runs closed-form EM for the models that have it (``AnalyticHMoG``, a
``SymmetricHMoG`` with a complete upper mixture). Per iteration the data are visited once:
each row chunk contributes

* ``Xᵀ E[y|x]`` (one GEMM) and ``X W`` (one GEMM),
* responsibility-weighted component statistics (batched products over components), and
* ``log Σ_k exp(logit_k)``, so the log-likelihood of the current parameters comes out of
  the same pass;

``mean s_x(x)`` never changes during a fit and is computed once. Peak extra memory is
``O(chunk · K · d)``, whatever ``N``. On JAX the whole step (a ``lax.scan`` over chunks and the
M-step) is one compiled function, compiled once per fit.
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._backend.chunks import repeat, sum_over_chunks
from hmog_xp._errors import ValidationError
from hmog_xp.hmog import _posterior as P
from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians

#: Target size of the per-chunk working arrays.
_CHUNK_BYTES = 32 * 2**20


class EMFit(NamedTuple):
    """Result of :func:`fit_em`.

    Attributes
    ----------
    params : array
        Final natural parameters.
    log_likelihoods : list of float
        Average log-likelihood before each step, then of the final parameters.
    n_iter : int
        Number of EM steps taken.
    converged : bool
        Whether the relative change fell below ``tol`` before ``max_iter``.
    """

    params: Any
    log_likelihoods: list[float]
    n_iter: int
    converged: bool


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


def _chunk_sums(
    model: HierarchicalMixtureOfGaussians, params: Any, chunk: Any, weights: Any
) -> tuple[Any, ...]:
    """E-step sums of one chunk: ``(Xᵀ E[y|x], Σ r η, Σ r, Σ ψ_mix(posterior(x)))``."""
    xp = B.array_namespace(params, chunk)
    _, interaction, upper = model.split_coords(params)
    posteriors = P.component_posteriors(model.posterior_upper, upper, chunk @ interaction)
    log_normalizers = B.logsumexp(posteriors.logits, axis=-1, keepdims=True, xp=xp)
    probs = xp.exp(posteriors.logits - log_normalizers) * weights[:, None]
    cross = xp.matrix_transpose(chunk) @ P.latent_means(posteriors, probs)
    weighted, totals = P.weighted_upper_sums(model.posterior_upper, posteriors, probs)
    log_partition = weights @ log_normalizers[:, 0]
    return cross, weighted, totals, log_partition


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
    n_obs = xs.shape[0]
    cross, weighted, totals, log_partition = sum_over_chunks(
        lambda chunk, weights: _chunk_sums(model, params, chunk, weights), xs, chunk_size, xp=xp
    )
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


def em_step(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    obs_statistics: Any,
    chunk_size: int,
) -> tuple[Any, Any]:
    """One EM step from cached statistics: ``(new params, log-likelihood of params)``.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        A model with ``whiten_prior`` and ``to_natural`` (``AnalyticHMoG``).
    params : array, shape (dim,)
        Current natural parameters.
    xs : array, shape (N, p)
        Observations.
    obs_statistics : array, shape (obs_man.dim,)
        Cached ``mean s_x(x)``.
    chunk_size : int
        Rows per chunk.

    Returns
    -------
    params : array, shape (dim,)
        Updated parameters.
    log_likelihood : array, shape ()
        Average log-likelihood of the *input* parameters.
    """
    means, log_likelihood = expectation(model, params, xs, obs_statistics, chunk_size)
    return model.to_natural(model.whiten_prior(means)), log_likelihood  # type: ignore[attr-defined]


def em_steps(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    n_steps: int,
    chunk_size: int | None = None,
) -> Any:
    """Run exactly ``n_steps`` EM steps with no host synchronisation in between.

    On JAX the whole loop (``lax.fori_loop`` over steps, ``lax.scan`` over chunks) is one
    compiled function; elsewhere it is a plain loop of :func:`em_step`.

    Parameters
    ----------
    model : AnalyticHMoG
        The model.
    params : array, shape (dim,)
        Starting natural parameters.
    xs : array, shape (N, p)
        Observations.
    n_steps : int
        Number of steps.
    chunk_size : int, optional
        Rows per chunk (default: :func:`default_chunk_size`).

    Returns
    -------
    array, shape (dim,)
        Parameters after ``n_steps`` steps.
    """
    size = default_chunk_size(model, xs.shape[0]) if chunk_size is None else int(chunk_size)
    statistics = _compiled_statistics(model, xs, size)
    return _compiled_steps(model, params, xs, statistics, size, int(n_steps))


def _repeat_steps(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    obs_statistics: Any,
    chunk_size: int,
    n_steps: int,
) -> Any:
    return repeat(
        lambda value: em_step(model, value, xs, obs_statistics, chunk_size)[0], n_steps, params
    )


_compiled_step = B.jit(em_step, static_argnums=(0, 4))
_compiled_steps = B.jit(_repeat_steps, static_argnums=(0, 4, 5))
_compiled_statistics = B.jit(observable_statistics, static_argnums=(0, 2))
_compiled_expectation = B.jit(expectation, static_argnums=(0, 4))


def fit_em(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    *,
    max_iter: int = 100,
    tol: float = 1e-8,
    chunk_size: int | None = None,
) -> EMFit:
    """Run EM until the relative log-likelihood change is below ``tol``.

    Parameters
    ----------
    model : AnalyticHMoG (or SymmetricHMoG with a complete upper mixture)
        The model.
    params : array, shape (dim,)
        Starting natural parameters.
    xs : array, shape (N, p)
        Observations.
    max_iter : int, optional
        Maximum number of EM steps.
    tol : float, optional
        Stop when ``|ℓ_t − ℓ_{t−1}| <= tol · |ℓ_t|`` (average log-likelihood ``ℓ``).
    chunk_size : int, optional
        Rows per chunk (default: :func:`default_chunk_size`).

    Returns
    -------
    EMFit
        Final parameters, log-likelihood history, iterations and convergence flag.
    """
    if not hasattr(model, "expectation_maximization"):
        msg = f"{model!r} has no closed-form EM; train it with fit_gradient"
        raise ValidationError(msg)
    model._check_sample(xs)
    model._check_params(params)
    size = default_chunk_size(model, xs.shape[0]) if chunk_size is None else int(chunk_size)
    if size < 1:
        msg = f"chunk_size must be >= 1; got {chunk_size}"
        raise ValidationError(msg)
    obs_statistics = _compiled_statistics(model, xs, size)
    history: list[float] = []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (reported after the loop)
        new_params, log_likelihood = _compiled_step(model, params, xs, obs_statistics, size)
        history.append(float(log_likelihood))
        params = new_params
        if len(history) > 1 and abs(history[-1] - history[-2]) <= tol * abs(history[-1]):
            converged = True
            break
    final = _compiled_expectation(model, params, xs, obs_statistics, size)[1]
    history.append(float(final))
    return EMFit(params, history, n_iter, converged)
