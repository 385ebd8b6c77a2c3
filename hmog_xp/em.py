"""Expectation-maximisation at scale: cached data statistics, chunked E-steps, jitted steps.

One engine serves every model with closed-form EM, i.e. every
:class:`~hmog_xp.harmoniums.closed_form.ClosedFormEM`: factor analysis and PPCA
(``AnalyticLinearGaussianModel``), complete Gaussian mixtures (``AnalyticMixture``),
``AnalyticHMoG``, and ``SymmetricHMoG`` with a complete upper mixture. Per iteration the data
are visited once: each row chunk contributes the model's GEMM-shaped sums (for an HMoG
``X W``, ``Xᵀ E[y|x]`` and responsibility-weighted component statistics) and
``Σ ψ(posterior(x))``, so the log-likelihood of the current parameters comes out of the same
pass; ``mean s_x(x)`` never changes during a fit and is computed once. Peak extra memory is
``O(chunk · K · d)``, whatever ``N``. On JAX the whole step (a ``lax.scan`` over chunks and the
M-step) is one compiled function, compiled once per fit. Any other model gets a
:class:`~hmog_xp.harmoniums.closed_form.NoClosedFormEMError` (a ``TypeError``) naming the
models that have EM.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._backend.chunks import repeat
from hmog_xp._em_engine import (
    EXACT,
    accumulation_dtype,
    as_regularization,
    check_em_model,
    compiled_statistics,
    default_chunk_size,
    em_step,
    expectation,
    m_step,
    observable_statistics,
)
from hmog_xp._em_loop import (
    EM_NOISE_WINDOW,
    EM_WINDOW,
    NOISE_ULPS,
    EMFit,
    finite_log_likelihood,
    has_converged,
    run_em,
)
from hmog_xp._em_steps import FitSteps, fit_steps
from hmog_xp._errors import ValidationError
from hmog_xp._squarem import run_squarem
from hmog_xp._validation import validation
from hmog_xp.harmoniums.closed_form import ClosedFormEM, NoClosedFormEMError
from hmog_xp.harmoniums.stabilizers import Regularization
from hmog_xp.hmog import Standardization
from hmog_xp.reps import Scale

__all__ = [
    "EM_NOISE_WINDOW",
    "EM_WINDOW",
    "NOISE_ULPS",
    "ClosedFormEM",
    "EMFit",
    "FitSteps",
    "NoClosedFormEMError",
    "Regularization",
    "accumulation_dtype",
    "as_regularization",
    "check_acceleration",
    "check_em_model",
    "default_chunk_size",
    "em_step",
    "em_steps",
    "expectation",
    "finite_log_likelihood",
    "fit_em",
    "fit_steps",
    "has_converged",
    "iterate_em",
    "m_step",
    "observable_statistics",
    "run_em",
]


def em_steps(
    model: ClosedFormEM,
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
    model : ClosedFormEM
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
    statistics = compiled_statistics(model, xs, size)
    return _compiled_steps(model, params, xs, statistics, size, int(n_steps), regularization)


def _repeat_steps(
    model: ClosedFormEM,
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


_compiled_steps = B.jit(_repeat_steps, static_argnums=(0, 4, 5, 6))

_ACCELERATIONS = {False: None, True: "mean", "squarem": "mean", "squarem-natural": "natural"}
"""``fit_em``'s ``accelerate`` values and the coordinates SQUAREM extrapolates in."""


def fit_em(
    model: ClosedFormEM,
    params: Any,
    xs: Any,
    *,
    max_iter: int = 100,
    tol: float = 1e-8,
    chunk_size: int | None = None,
    regularization: Regularization | None = None,
    callback: Callable[[int, float], object] | None = None,
    standardize: bool = False,
    accelerate: bool | str = False,
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
    model : ClosedFormEM
        Factor analysis or PPCA, a complete Gaussian mixture, an ``AnalyticHMoG`` or a
        ``SymmetricHMoG`` with a complete upper mixture.
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
    accelerate : bool or {'squarem', 'squarem-natural'}, optional
        SQUAREM (:mod:`hmog_xp._squarem`), extrapolating in mean coordinates (True,
        ``'squarem'``) or natural ones; an extrapolation is kept only if valid and at least
        as likely as the plain path. The history has one entry per accepted iterate (three
        EM steps each), to which ``tol`` and ``callback`` apply; ``n_iter`` counts EM steps.

    Returns
    -------
    EMFit
        Final parameters, log-likelihood history, iterations and convergence flag.
    """
    check_acceleration(accelerate)
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
            accelerate=accelerate,
        )
    check_em_model(model).check_estep_inputs(params, xs)
    size = default_chunk_size(model, xs.shape[0]) if chunk_size is None else int(chunk_size)
    if size < 1:
        msg = f"chunk_size must be >= 1; got {chunk_size}"
        raise ValidationError(msg)
    regularization = as_regularization(regularization)
    xp = B.array_namespace(params, xs)
    # Inputs are checked above; inside the loop the only host synchronisation is the
    # convergence check, which also catches a step that left the valid parameter space.
    with validation(False):
        obs_statistics = compiled_statistics(model, xs, size)
        steps = fit_steps(model, params, xs, obs_statistics, size, regularization)
        if _ACCELERATIONS[accelerate] is not None:
            return iterate_em(
                steps.expect,
                lambda means: xp.astype(steps.maximize(means), params.dtype, copy=False),
                params,
                max_iter=max_iter,
                tol=tol,
                callback=callback,
                eps=float(xp.finfo(xs.dtype).eps),
                accelerate=accelerate,
            )
        # Plain EM: the E-step and the M-step in one compiled function.
        return run_em(
            steps.step,
            steps.log_likelihood,
            params,
            max_iter=max_iter,
            tol=tol,
            callback=callback,
            eps=float(xp.finfo(xs.dtype).eps),
        )


def check_acceleration(accelerate: object) -> str | None:
    """Return the coordinates SQUAREM extrapolates in for ``accelerate`` (None: plain EM).

    Parameters
    ----------
    accelerate : bool or {'squarem', 'squarem-natural'}
        :func:`fit_em`'s ``accelerate``.

    Returns
    -------
    {'mean', 'natural'} or None
        The extrapolation's coordinates.

    Raises
    ------
    ValidationError
        For any other value.
    """
    if not isinstance(accelerate, (bool, str)) or accelerate not in _ACCELERATIONS:
        msg = f"accelerate must be a bool, 'squarem' or 'squarem-natural'; got {accelerate!r}"
        raise ValidationError(msg)
    return _ACCELERATIONS[accelerate]


def iterate_em(
    expect: Callable[[Any], tuple[Any, Any]],
    maximize: Callable[[Any], Any],
    params: Any,
    *,
    max_iter: int,
    tol: float,
    callback: Callable[[int, float], object] | None,
    eps: float,
    accelerate: bool | str = False,
) -> EMFit:
    """Plain or SQUAREM-accelerated EM from an E-step and an M-step (for other drivers).

    Parameters
    ----------
    expect : callable
        ``expect(params) -> (means, log-likelihood of params)``.
    maximize : callable
        ``maximize(means) -> params`` (with its stabilisers).
    params : array, shape (dim,)
        Starting natural parameters.
    max_iter : int
        Most EM steps.
    tol : float
        Relative tolerance (see :func:`fit_em`).
    callback : callable or None
        ``callback(iteration, log_likelihood)`` after each (accepted) iterate.
    eps : float
        Machine epsilon of the data's dtype.
    accelerate : bool or {'squarem', 'squarem-natural'}, optional
        As in :func:`fit_em`.

    Returns
    -------
    EMFit
        The fit.
    """
    space = check_acceleration(accelerate)
    if space is not None:
        return run_squarem(
            expect,
            maximize,
            params,
            max_iter=max_iter,
            tol=tol,
            callback=callback,
            eps=eps,
            space=space,
        )

    def step(theta: Any) -> tuple[Any, Any]:
        means, log_likelihood = expect(theta)
        return maximize(means), log_likelihood

    return run_em(
        step,
        lambda theta: expect(theta)[1],
        params,
        max_iter=max_iter,
        tol=tol,
        callback=callback,
        eps=eps,
    )


def _fit_em_standardized(
    model: ClosedFormEM,
    params: Any,
    xs: Any,
    callback: Callable[[int, float], object] | None,
    **options: Any,
) -> EMFit:
    """:func:`fit_em` on the standardised data, parameters and history in the data's units."""
    check_em_model(model).check_estep_inputs(params, xs)
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
        fit.n_extrapolated,
    )
