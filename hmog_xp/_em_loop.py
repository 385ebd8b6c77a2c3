"""The EM loop and its stopping rule, shared by every EM driver.

:func:`run_em` iterates a step function (in memory, on Dask, compiled or not), records the
average log-likelihood of every iterate and stops by :func:`has_converged`, a relative test
over a window of steps that rounding can neither satisfy nor defeat.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from hmog_xp._errors import ValidationError

__all__ = [
    "EM_NOISE_WINDOW",
    "EM_WINDOW",
    "NOISE_ULPS",
    "EMFit",
    "finite_log_likelihood",
    "has_converged",
    "projected_gain",
    "run_em",
]

#: EM's convergence test compares the change of the log-likelihood over this many steps
#: with ``tol``, and over ``EM_NOISE_WINDOW`` steps with its rounding noise.
EM_WINDOW = 10
EM_NOISE_WINDOW = 60

#: Least rounding noise assumed for the average log-likelihood, in units of ``eps · |ℓ|``
#: (measured with float32 data on UCI wine, breast cancer and digits: the error of the
#: change between two iterations' log-likelihoods has a standard deviation of 0.1 to 2.3
#: ``eps · |ℓ|``); :func:`has_converged` also estimates the noise from the history.
NOISE_ULPS = 2.0


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
    n_extrapolated : int
        With ``accelerate``: the iterations whose SQUAREM extrapolation was kept (default
        0). Accelerated fits record one log-likelihood per accepted iterate (the start,
        then one per iteration of three EM steps) and count EM steps in ``n_iter``.
    """

    params: Any
    log_likelihoods: list[float]
    n_iter: int
    converged: bool
    n_extrapolated: int = 0


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
    ``w`` steps is at most ``tol`` relative) and the climb still to come, estimated by
    :func:`projected_gain`, is within the same bound (so a slow crawl is not mistaken for
    convergence) — both counting only when the bound exceeds ``NOISE_ULPS · eps · |ℓ_t|``,
    so rounding cannot satisfy them — *or*
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
    if (
        (eps <= 0.0 or bound > floor)
        and abs(history[-1] - history[-1 - window]) <= bound
        and projected_gain(history, window) <= bound
    ):
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


def projected_gain(history: list[float], window: int) -> float:
    """Estimate how much the log-likelihood will still climb (Aitken's extrapolation).

    EM converges linearly: near a maximum successive gains shrink by a rate ``r`` per step,
    so with ``g`` the gain over the last ``window`` steps and ``g'`` the gain over the
    ``window`` before, ``ρ = g / g'`` estimates ``r^window`` and the remaining climb,
    including the last window, is about ``g / (1 − ρ)`` (Böhning et al. 1994; McNicholas et
    al. 2010 use it to stop EM for mixtures). A slow crawl (``ρ`` near 1) has a large
    projected gain even when ``g`` is small: that is what keeps it from passing for
    convergence.

    Parameters
    ----------
    history : list of float
        Average log-likelihoods so far.
    window : int
        Steps per gain.

    Returns
    -------
    float
        ``g / (1 − ρ)``; ``|g|`` when there is no earlier window or no earlier gain to
        compare with, ``0`` when the last window did not climb, ``inf`` when the gains do not
        shrink.
    """
    gain = history[-1] - history[-1 - window]
    if gain <= 0.0:
        return 0.0
    if len(history) <= 2 * window:
        return gain
    previous = history[-1 - window] - history[-1 - 2 * window]
    if previous <= 0.0:
        return gain
    ratio = gain / previous
    return math.inf if ratio >= 1.0 else gain / (1.0 - ratio)


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
