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
from hmog_xp.hmog._estep import (
    accumulation_dtype,
    default_chunk_size,
    expectation,
    observable_statistics,
)
from hmog_xp.hmog._regularize import Regularization, regularize_means
from hmog_xp.hmog._standardize import Standardization
from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians
from hmog_xp.reps import Scale

#: No stabilisers: the exact EM step.
EXACT = Regularization()

#: EM's convergence test compares the change of the log-likelihood over this many steps
#: with ``tol``, and over ``EM_NOISE_WINDOW`` steps with its rounding noise.
EM_WINDOW = 10
EM_NOISE_WINDOW = 60

#: Least rounding noise assumed for the average log-likelihood, in units of ``eps · |ℓ|``
#: (measured with float32 data on UCI wine, breast cancer and digits: the error of the
#: change between two iterations' log-likelihoods has a standard deviation of 0.1 to 2.3
#: ``eps · |ℓ|``); :func:`has_converged` also estimates the noise from the history.
NOISE_ULPS = 2.0

__all__ = [
    "EM_NOISE_WINDOW",
    "EM_WINDOW",
    "NOISE_ULPS",
    "EMFit",
    "Regularization",
    "accumulation_dtype",
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

    The E-step sums, the M-step and the log-likelihood run in the accumulation dtype
    (float64 for float32 data); the new parameters are cast back to ``params``'s dtype.

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
        Average log-likelihood of the *input* parameters, in float64 for float32 data (see
        :func:`hmog_xp.hmog._estep.accumulation_dtype`).
    """
    xp = B.array_namespace(params, xs)
    wide = accumulation_dtype(xp, params.dtype)
    means, log_likelihood = expectation(model, params, xs, obs_statistics, chunk_size, wide)
    return xp.astype(m_step(model, means, regularization), params.dtype, copy=False), log_likelihood


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
_compiled_expectation = B.jit(expectation, static_argnums=(0, 4, 5))


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
    standardize: bool = False,
) -> EMFit:
    """Run EM until the log-likelihood stops changing (relative ``tol``, beyond rounding).

    Units: EM itself is equivariant under ``x ↦ D x + m``, but its stopping rule (relative to
    ``|ℓ|``), the stabilisers of ``regularization`` (absolute variances) and the rounding of
    the data are not. Without ``standardize`` they act on ``xs`` as given, so data whose
    columns have very different scales or large offsets are best standardised first;
    ``standardize=True`` does it for you, as the estimator does (see
    :class:`~hmog_xp.Standardization`).

    Precision: with float32 data (and a backend with float64) the GEMMs with the data run in
    float32, but the chunk sums, the log-likelihood, the whitening and the M-step are in
    float64, and the parameters are rounded back to float32 after every step; float32 EM
    then follows the float64 iterates to within rounding and reaches the same optimum.
    JAX without ``jax_enable_x64`` stays in float32 throughout.

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
        Stop when the average log-likelihood ``ℓ`` changed by at most ``tol · |ℓ_t|`` per
        step over the last :data:`EM_WINDOW` steps, ``|ℓ_t − ℓ_{t−10}| <= 10 tol |ℓ_t|``,
        or by no more than its rounding noise over the last :data:`EM_NOISE_WINDOW` (60)
        steps: at least ``NOISE_ULPS · eps · |ℓ_t|`` with ``eps`` the data dtype's machine
        epsilon, more if the history is noisier (see :func:`has_converged`). A single step
        that rounding makes look flat cannot stop the fit, and a fit at its optimum stops
        even when ``tol`` is below what the dtype resolves (for float32, a climb of about
        ``1e-8 |ℓ|`` per step).
    chunk_size : int, optional
        Rows per chunk (default: :func:`default_chunk_size`).
    regularization : Regularization, optional
        Stabilisers of the M-step (default: none, exact EM whose log-likelihood never
        decreases). See :class:`Regularization`.
    callback : callable, optional
        Called as ``callback(iteration, log_likelihood)`` after each step with the average
        log-likelihood of the parameters that step started from.
    standardize : bool, optional
        Fit the standardised data ``(xs − mean) / std`` (one common scale for isotropic
        noise) and map the result back: ``params`` and the returned parameters are in the
        data's units, the history is the data's log-likelihood, and ``tol`` and
        ``regularization`` are unit-free (they act on the standardised data). Natural
        parameters in units with large offsets are poorly conditioned to evaluate (``h`` and
        ``Λ x`` cancel); evaluate them as the estimator does, on standardised data with
        :meth:`Standardization.params_from_data`.

    Returns
    -------
    EMFit
        Final parameters, log-likelihood history, iterations and convergence flag.
    """
    if standardize:
        return _fit_em_standardized(
            model,
            params,
            xs,
            max_iter=max_iter,
            tol=tol,
            chunk_size=chunk_size,
            regularization=regularization,
            callback=callback,
        )
    check_em_model(model)
    model._check_sample(xs, params)
    model._check_params(params)
    size = default_chunk_size(model, xs.shape[0]) if chunk_size is None else int(chunk_size)
    if size < 1:
        msg = f"chunk_size must be >= 1; got {chunk_size}"
        raise ValidationError(msg)
    regularization = as_regularization(regularization)
    model.log_partition_function(params)  # validates the starting point once
    xp = B.array_namespace(params, xs)
    wide = accumulation_dtype(xp, params.dtype)
    # Inputs are checked above; inside the loop the only host synchronisation is the
    # convergence check, which also catches a step that left the valid parameter space.
    with validation(False):
        obs_statistics = _compiled_statistics(model, xs, size)
        return run_em(
            lambda theta: _compiled_step(model, theta, xs, obs_statistics, size, regularization),
            lambda theta: _compiled_expectation(model, theta, xs, obs_statistics, size, wide)[1],
            params,
            max_iter=max_iter,
            tol=tol,
            callback=callback,
            eps=float(xp.finfo(xs.dtype).eps),
        )


def _fit_em_standardized(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    callback: Callable[[int, float], object] | None,
    **options: Any,
) -> EMFit:
    """:func:`fit_em` on the standardised data, parameters and history in the data's units."""
    check_em_model(model)
    model._check_sample(xs, params)
    standardization = Standardization.from_data(
        xs, common_scale=isinstance(model.obs_man.rep, Scale)
    )
    shift = standardization.log_density_shift()
    report = None
    if callback is not None:

        def report(iteration: int, log_likelihood: float) -> object:
            return callback(iteration, log_likelihood + shift)

    fit = fit_em(
        model,
        standardization.params_from_data(model, params),
        standardization.standardize(xs),
        callback=report,
        **options,
    )
    return EMFit(
        standardization.params_to_data(model, fit.params),
        [value + shift for value in fit.log_likelihoods],
        fit.n_iter,
        fit.converged,
    )


def run_em(
    step: Callable[[Any], tuple[Any, Any]],
    log_likelihood_of: Callable[[Any], Any],
    params: Any,
    *,
    max_iter: int,
    tol: float,
    callback: Callable[[int, float], object] | None,
    eps: float = 0.0,
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
    eps : float, optional
        Machine epsilon of the data's dtype (the noise floor of :func:`has_converged`;
        default 0). The test looks at the last :data:`EM_WINDOW` steps for ``tol`` and the
        last :data:`EM_NOISE_WINDOW` for the noise.

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
        if has_converged(history, tol, window=EM_WINDOW, eps=eps, noise_window=EM_NOISE_WINDOW):
            converged = True
            break
    history.append(finite_log_likelihood(float(log_likelihood_of(params)), n_iter + 1))
    return EMFit(params, history, n_iter, converged)


def has_converged(
    history: list[float],
    tol: float,
    *,
    window: int = 1,
    eps: float = 0.0,
    noise_window: int | None = None,
) -> bool:
    """Return whether the log-likelihood has stopped changing, beyond rounding.

    With ``ℓ`` the history, ``w = window`` and ``v = noise_window``, the fit has converged
    when ``|ℓ_t − ℓ_{t−w}| <= w · tol · |ℓ_t|`` (the average change per step over the last
    ``w`` steps is at most ``tol`` relative; this counts only when the bound exceeds
    ``NOISE_ULPS · eps · |ℓ_t|``, so rounding cannot satisfy it) *or*
    ``|ℓ_t − ℓ_{t−v}| <= ν`` (the change over the last ``v`` steps is within the rounding
    noise ``ν`` of the log-likelihood).
    Averaging over a window means one rounding-sized step (a change of 0, a tiny decrease)
    cannot end a fit that is still progressing; the noise test means a fit at its optimum
    stops even when ``tol`` is below what the dtype can resolve, and its longer window lets
    it resolve a slow climb of ``ν / v`` per step.

    The noise ``ν`` (a test only when ``eps > 0``) is the larger of ``NOISE_ULPS · eps · |ℓ_t|``
    (``eps``: machine epsilon of the data's dtype) and the noise the history itself shows,
    the median of its second differences ``|ℓ_i − 2ℓ_{i−1} + ℓ_{i−2}|`` over the last ``v``
    steps (tiny along a smooth EM path, ``≈ 1.6 σ`` for rounding noise of size ``σ``).
    ``window=1, eps=0`` is the plain relative test.

    Parameters
    ----------
    history : list of float
        Average log-likelihoods so far.
    tol : float
        Relative tolerance per step.
    window : int, optional
        Number of steps the relative change is measured over (default 1).
    eps : float, optional
        Machine epsilon of the dtype the log-likelihood's terms were computed in (default 0:
        no noise test).
    noise_window : int, optional
        Number of steps the noise test looks at (default: ``window``).

    Returns
    -------
    bool
        False with ``window`` entries or fewer.
    """
    if len(history) <= window:
        return False
    scale = abs(history[-1])
    bound = window * tol * scale
    floor = NOISE_ULPS * eps * scale
    if (eps <= 0.0 or bound > floor) and abs(history[-1] - history[-1 - window]) <= bound:
        return True
    span = window if noise_window is None else noise_window
    if eps <= 0.0 or len(history) <= span:
        return False
    recent = history[-1 - span :]
    curvature = sorted(
        abs(recent[i] - 2.0 * recent[i - 1] + recent[i - 2]) for i in range(2, len(recent))
    )
    if curvature:
        floor = max(floor, curvature[len(curvature) // 2])
    return abs(recent[-1] - recent[0]) <= floor


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
