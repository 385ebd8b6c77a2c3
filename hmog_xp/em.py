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
from collections.abc import Callable
from typing import Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._backend.chunks import repeat
from hmog_xp._errors import ValidationError
from hmog_xp._validation import validation
from hmog_xp.hmog._estep import default_chunk_size, expectation, observable_statistics
from hmog_xp.hmog._regularize import Regularization, regularize_means
from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians

#: No stabilisers: the exact EM step.
EXACT = Regularization()

__all__ = [
    "EMFit",
    "Regularization",
    "as_regularization",
    "check_em_model",
    "default_chunk_size",
    "em_step",
    "em_steps",
    "expectation",
    "finite_log_likelihood",
    "fit_em",
    "has_converged",
    "m_step",
    "observable_statistics",
    "run_em",
]


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


def em_step(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    obs_statistics: Any,
    chunk_size: int,
    regularization: Regularization = EXACT,
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
    regularization : Regularization, optional
        Stabilisers applied to the mean statistics before the M-step (default: none, exact).

    Returns
    -------
    params : array, shape (dim,)
        Updated parameters.
    log_likelihood : array, shape ()
        Average log-likelihood of the *input* parameters.
    """
    means, log_likelihood = expectation(model, params, xs, obs_statistics, chunk_size)
    return m_step(model, means, regularization), log_likelihood


def m_step(
    model: HierarchicalMixtureOfGaussians, means: Any, regularization: Regularization | None = None
) -> Any:
    """Return ``to_natural(whiten_prior(regularize(means)))``: the closed-form M-step.

    Shared by :func:`em_step` and the Dask and online drivers of :mod:`hmog_xp.scale`.

    Parameters
    ----------
    model : AnalyticHMoG
        The model.
    means : array, shape (dim,)
        Mean posterior statistics.
    regularization : Regularization, optional
        Stabilisers (default or None: exact).

    Returns
    -------
    array, shape (dim,)
        Natural parameters with a whitened latent prior.
    """
    regularized = regularize_means(model, means, as_regularization(regularization))
    return model.to_natural(model.whiten_prior(regularized))  # type: ignore[attr-defined]


def check_em_model(model: Any) -> None:
    """Raise unless ``model`` has closed-form EM (``AnalyticHMoG`` and the like).

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.

    Raises
    ------
    ValidationError
        If the model has no ``expectation_maximization``.
    """
    if not hasattr(model, "expectation_maximization"):
        msg = f"{model!r} has no closed-form EM; train it with fit_gradient"
        raise ValidationError(msg)


def em_steps(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    n_steps: int,
    chunk_size: int | None = None,
    regularization: Regularization = EXACT,
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
    regularization : Regularization, optional
        Stabilisers of the M-step (default: none, exact EM).

    Returns
    -------
    array, shape (dim,)
        Parameters after ``n_steps`` steps.
    """
    size = default_chunk_size(model, xs.shape[0]) if chunk_size is None else int(chunk_size)
    regularization = as_regularization(regularization)
    statistics = _compiled_statistics(model, xs, size)
    return _compiled_steps(model, params, xs, statistics, size, int(n_steps), regularization)


def _repeat_steps(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    obs_statistics: Any,
    chunk_size: int,
    n_steps: int,
    regularization: Regularization,
) -> Any:
    return repeat(
        lambda value: em_step(model, value, xs, obs_statistics, chunk_size, regularization)[0],
        n_steps,
        params,
    )


_compiled_step = B.jit(em_step, static_argnums=(0, 4, 5))
_compiled_steps = B.jit(_repeat_steps, static_argnums=(0, 4, 5, 6))
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
    regularization: Regularization | None = None,
    callback: Callable[[int, float], object] | None = None,
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
    regularization : Regularization, optional
        Stabilisers of the M-step (default: none, exact EM whose log-likelihood never
        decreases). See :class:`Regularization`.
    callback : callable, optional
        Called as ``callback(iteration, log_likelihood)`` after each step with the average
        log-likelihood of the parameters that step started from.

    Returns
    -------
    EMFit
        Final parameters, log-likelihood history, iterations and convergence flag.
    """
    check_em_model(model)
    model._check_sample(xs, params)
    model._check_params(params)
    size = default_chunk_size(model, xs.shape[0]) if chunk_size is None else int(chunk_size)
    if size < 1:
        msg = f"chunk_size must be >= 1; got {chunk_size}"
        raise ValidationError(msg)
    regularization = as_regularization(regularization)
    model.log_partition_function(params)  # validates the starting point once
    # Inputs are checked above; inside the loop the only host synchronisation is the
    # convergence check, which also catches a step that left the valid parameter space.
    with validation(False):
        obs_statistics = _compiled_statistics(model, xs, size)
        return run_em(
            lambda theta: _compiled_step(model, theta, xs, obs_statistics, size, regularization),
            lambda theta: _compiled_expectation(model, theta, xs, obs_statistics, size)[1],
            params,
            max_iter=max_iter,
            tol=tol,
            callback=callback,
        )


def run_em(
    step: Callable[[Any], tuple[Any, Any]],
    log_likelihood_of: Callable[[Any], Any],
    params: Any,
    *,
    max_iter: int,
    tol: float,
    callback: Callable[[int, float], object] | None,
) -> EMFit:
    """Iterate an EM step until convergence: the loop shared by every EM driver.

    Parameters
    ----------
    step : callable
        ``step(params) -> (new params, log-likelihood of params)``.
    log_likelihood_of : callable
        ``log_likelihood_of(params)``, for the final parameters.
    params : array, shape (dim,)
        Starting natural parameters.
    max_iter : int
        Maximum number of steps.
    tol : float
        Relative tolerance of :func:`has_converged`.
    callback : callable or None
        ``callback(iteration, log_likelihood)`` after each step.

    Returns
    -------
    EMFit
        Final parameters, log-likelihood history, iterations and convergence flag.
    """
    history: list[float] = []
    converged = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        params, log_likelihood = step(params)
        history.append(finite_log_likelihood(float(log_likelihood), n_iter))
        if callback is not None:
            callback(n_iter, history[-1])
        if has_converged(history, tol):
            converged = True
            break
    history.append(finite_log_likelihood(float(log_likelihood_of(params)), n_iter + 1))
    return EMFit(params, history, n_iter, converged)


def has_converged(history: list[float], tol: float) -> bool:
    """Return whether the last relative change ``|ℓ_t − ℓ_{t−1}| <= tol · |ℓ_t|``.

    Parameters
    ----------
    history : list of float
        Average log-likelihoods so far.
    tol : float
        Relative tolerance.

    Returns
    -------
    bool
        False with fewer than two entries.
    """
    return len(history) > 1 and abs(history[-1] - history[-2]) <= tol * abs(history[-1])


def as_regularization(value: Regularization | tuple[float, ...] | None) -> Regularization:
    """Return checked stabilisers (None: exact EM).

    Parameters
    ----------
    value : Regularization, tuple or None
        ``(reg_covar, min_variance, min_weight)``.

    Returns
    -------
    Regularization
        Validated values as floats.
    """
    return EXACT if value is None else Regularization(*value).check()


def finite_log_likelihood(log_likelihood: float, iteration: int) -> float:
    """Return ``log_likelihood`` if it is finite, else raise naming the iteration.

    Shared by :func:`fit_em` and :func:`hmog_xp.scale.fit_em_dask`.

    Parameters
    ----------
    log_likelihood : float
        Average log-likelihood of one iteration.
    iteration : int
        Its number.

    Returns
    -------
    float
        ``log_likelihood``.

    Raises
    ------
    ValidationError
        If it is NaN or infinite (degenerate parameters).
    """
    if not math.isfinite(log_likelihood):
        msg = (
            f"EM produced a non-finite log-likelihood at iteration {iteration} (degenerate "
            f"parameters, e.g. a collapsed component); start from other parameters"
        )
        raise ValidationError(msg)
    return log_likelihood
