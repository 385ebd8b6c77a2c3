"""SQUAREM: EM accelerated by squared extrapolation (Varadhan & Roland 2008).

EM is a fixed-point map. From an accepted iterate, two EM steps give the first and second
differences ``r = F(u) − u`` and ``v = F(F(u)) − 2 F(u) + u``; with
``α = min(−‖r‖ / ‖v‖, −1)`` the extrapolated point is ``u' = u − 2α r + α² v`` (``α = −1``
gives ``F(F(u))``), and one more EM step from it stabilises the result. The extrapolation is
kept only when it is a valid distribution whose log-likelihood is at least that of the
plain two-step path; otherwise the plain path is taken. Every accepted iterate is therefore
at least as likely as the one before (for exact EM, which never decreases the
log-likelihood), and each iteration costs three E-steps and three M-steps.

Two coordinate systems ``u`` are offered:

* ``"mean"`` (the default): the E-step's mean posterior statistics ``η``, with the EM map
  ``η ↦ E(M(η))``. The iterate is ``θ = M(η)``, and the E-step at the extrapolated ``θ'``
  gives its log-likelihood and the next state at once. Where the M-step of ``η'`` fails
  (a covariance that is not positive definite, a negative weight), the step length is
  halved towards ``−1`` up to :data:`BACKTRACKS` times before the plain path is taken.
* ``"natural"``: the natural parameters ``θ`` themselves, ``θ ↦ M(E(θ))``.

Only the log-likelihood comparisons synchronise with the host; the extrapolation is a few
array operations, one compiled function on JAX.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import partial
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._em_loop import (
    EM_NOISE_WINDOW,
    EM_WINDOW,
    EMFit,
    finite_log_likelihood,
    has_converged,
)

__all__ = ["BACKTRACKS", "SPACES", "extrapolate", "run_squarem"]

#: Coordinates SQUAREM can extrapolate in.
SPACES = ("mean", "natural")

#: Times the mean-coordinate step length is halved towards ``−1`` while the M-step of the
#: extrapolated point fails (each try costs one M-step, no E-step).
BACKTRACKS = 4

#: Errors an invalid extrapolated point can raise in the M-step or E-step (a failed Cholesky
#: factorisation raises a ``ValueError`` subclass on NumPy, a ``RuntimeError`` on PyTorch).
_INVALID_POINT_ERRORS = (ValueError, RuntimeError, ArithmeticError)


def extrapolate(start: Any, once: Any, twice: Any, halvings: int = 0) -> Any:
    """Return the SQUAREM point ``u − 2α r + α² v`` from ``u``, ``F(u)`` and ``F(F(u))``.

    With ``r = F(u) − u`` and ``v = F(F(u)) − 2 F(u) + u``, the step length is
    ``α = −‖r‖ / ‖v‖`` clamped to ``α <= −1`` (``α = −1`` returns ``F(F(u))``; a zero ``v``
    gives ``α = −1`` too), then moved ``halvings`` times half-way towards ``−1`` (the
    backtracking after an invalid point). Runs on the device, no host synchronisation.

    Parameters
    ----------
    start : array, shape (dim,)
        ``u``.
    once : array, shape (dim,)
        ``F(u)``.
    twice : array, shape (dim,)
        ``F(F(u))``.
    halvings : int, optional
        Backtracking steps: ``α ← (α − 1) / 2`` this many times (default 0).

    Returns
    -------
    array, shape (dim,)
        The extrapolated point.
    """
    xp = B.array_namespace(start, once, twice)
    r = once - start
    v = twice - 2.0 * once + start
    r_norm = xp.sqrt(xp.sum(r * r))
    v_norm = xp.sqrt(xp.sum(v * v))
    tiny = xp.asarray(
        xp.finfo(start.dtype).smallest_normal, dtype=start.dtype, device=B.device_of(start)
    )
    alpha = xp.minimum(-r_norm / xp.maximum(v_norm, tiny), -xp.ones_like(r_norm))
    alpha = (alpha + 1.0) * 0.5**halvings - 1.0  # halvings may be traced: one compilation
    return start - 2.0 * alpha * r + alpha * alpha * v


#: One compiled function on JAX (its dozen operations would otherwise each compile on first use).
_compiled_extrapolate = B.jit(extrapolate)


def _finite(value: Any) -> float:
    number = float(value)
    return number if math.isfinite(number) else -math.inf


def run_squarem(
    expect: Callable[[Any], tuple[Any, Any]],
    maximize: Callable[[Any], Any],
    params: Any,
    *,
    max_iter: int,
    tol: float,
    callback: Callable[[int, float], object] | None,
    eps: float = 0.0,
    space: str = "mean",
) -> EMFit:
    """Iterate SQUAREM-accelerated EM until :func:`has_converged` on the accepted iterates.

    Parameters
    ----------
    expect : callable
        ``expect(params) -> (means, log-likelihood of params)``: the E-step.
    maximize : callable
        ``maximize(means) -> params``: the M-step (with its stabilisers).
    params : array, shape (dim,)
        Starting natural parameters (valid).
    max_iter : int
        Most EM steps (E-step and M-step pairs) to take: each iteration takes three; the
        last one or two steps, when ``max_iter`` is not a multiple of three, are plain EM
        steps.
    tol : float
        Relative tolerance of :func:`has_converged`, applied to the accepted iterates'
        log-likelihoods with windows of :data:`EM_WINDOW` and :data:`EM_NOISE_WINDOW`
        iterates (each iterate is at least two EM steps, so the test is stricter per EM
        step than plain EM's).
    callback : callable or None
        ``callback(n_iter, log_likelihood)`` after each iteration, with the EM steps so far
        and the log-likelihood of the accepted iterate.
    eps : float, optional
        Machine epsilon of the data's dtype (the noise floor of :func:`has_converged`).
    space : {'mean', 'natural'}, optional
        Coordinates of the extrapolation (see the module docstring).

    Returns
    -------
    EMFit
        ``log_likelihoods`` has one entry per accepted iterate (the start first, the
        returned parameters last), ``n_iter`` counts EM steps (three per iteration, as
        plain EM's ``n_iter`` counts its steps) and ``n_extrapolated`` the
        iterations whose extrapolation was kept.
    """
    if space not in SPACES:
        msg = f"space must be one of {SPACES}; got {space!r}"
        raise ValueError(msg)
    advance = _mean_iteration if space == "mean" else _natural_iteration
    means, log_likelihood = expect(params)
    history = [finite_log_likelihood(float(log_likelihood), 0)]
    n_iter = n_extrapolated = 0
    converged = False
    ahead = None  # M(means) where an iteration already computed it (its validity check)
    while n_iter + 3 <= max_iter:
        params, means, value, kept, ahead = advance(
            expect, maximize, params, means, n_iter + 1, ahead
        )
        n_iter += 3
        n_extrapolated += int(kept)
        history.append(value)
        if callback is not None:
            callback(n_iter, value)
        if has_converged(history, tol, window=EM_WINDOW, eps=eps, noise_window=EM_NOISE_WINDOW):
            converged = True
            break
    while not converged and n_iter < max_iter:  # fewer than three steps left: plain EM
        n_iter += 1
        params = _plain_m_step(maximize, means, n_iter) if ahead is None else ahead
        ahead = None
        means, log_likelihood = expect(params)
        history.append(finite_log_likelihood(float(log_likelihood), n_iter))
        if callback is not None:
            callback(n_iter, history[-1])
    return EMFit(params, history, n_iter, converged, n_extrapolated)


def _mean_iteration(
    expect: Callable[[Any], tuple[Any, Any]],
    maximize: Callable[[Any], Any],
    params: Any,
    means: Any,
    iteration: int,
    ahead: Any = None,
) -> tuple[Any, Any, float, bool, Any]:
    """One SQUAREM iteration in mean coordinates; ``means = E(params)`` on entry and exit.

    An extrapolation is kept only if the next M-step from it is valid too, so the plain
    step that starts the next iteration never fails because of an extrapolation. That
    M-step is returned last (None on the plain path), and ``ahead`` is the one the previous
    iteration returned: ``M(means)``, not computed twice.
    """
    first = _plain_m_step(maximize, means, iteration) if ahead is None else ahead
    once = expect(first)[0]
    twice_params = maximize(once)
    twice, twice_ll = expect(twice_params)
    fallback = (twice_params, twice, finite_log_likelihood(float(twice_ll), iteration))
    # Backtrack (halve the step towards the plain path) while the extrapolation is invalid
    # or less likely than the plain path: near a stabiliser's floor a full step overshoots.
    for halvings in range(BACKTRACKS + 1):
        point = _valid_point(partial(_extrapolated_m_step, maximize, means, once, twice, halvings))
        trial = None if point is None else _try(partial(_evaluate, expect, point))
        if trial is not None and trial[2] >= fallback[2]:
            next_step = _valid_point(partial(maximize, trial[1]))
            if next_step is not None:
                return (*trial, True, next_step)
    return (*fallback, False, None)


def _plain_m_step(maximize: Callable[[Any], Any], means: Any, iteration: int) -> Any:
    """The plain M-step, with the EM loop's error when it leaves the parameter space."""
    try:
        return maximize(means)
    except _INVALID_POINT_ERRORS:
        return finite_log_likelihood(math.nan, iteration)  # raises, naming the step


def _natural_iteration(
    expect: Callable[[Any], tuple[Any, Any]],
    maximize: Callable[[Any], Any],
    params: Any,
    means: Any,
    iteration: int,
    ahead: Any = None,
) -> tuple[Any, Any, float, bool, Any]:
    """One SQUAREM iteration in natural coordinates; ``means = E(params)`` on entry and exit.

    ``ahead`` and the last result are :func:`_mean_iteration`'s (always None here: no
    M-step of the returned means is computed).
    """
    once = maximize(means) if ahead is None else ahead
    once_means, once_ll = expect(once)
    twice = maximize(once_means)
    trial = _try(lambda: _evaluate(expect, _compiled_extrapolate(params, once, twice, 0)))
    kept = trial is not None and trial[2] >= finite_log_likelihood(float(once_ll), iteration)
    # One EM step from the kept extrapolation, or from ``F(F(θ))`` (the plain path).
    start = maximize(trial[1]) if trial is not None and kept else twice
    new_params, new_means, new_ll = _evaluate(expect, start)
    return new_params, new_means, finite_log_likelihood(float(new_ll), iteration), kept, None


def _evaluate(expect: Callable[[Any], tuple[Any, Any]], params: Any) -> tuple[Any, Any, float]:
    means, log_likelihood = expect(params)
    return params, means, _finite(log_likelihood)


def _extrapolated_m_step(
    maximize: Callable[[Any], Any], means: Any, once: Any, twice: Any, halvings: int
) -> Any:
    return maximize(_compiled_extrapolate(means, once, twice, halvings))


def _valid_point(make: Callable[[], Any]) -> Any:
    """``make()`` unless it raises or has non-finite entries (one host synchronisation)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            point = make()
            xp = B.array_namespace(point)
            total = float(xp.sum(point))
    except _INVALID_POINT_ERRORS:
        return None
    return point if math.isfinite(total) else None


def _try(trial: Callable[[], tuple[Any, Any, float]]) -> tuple[Any, Any, float] | None:
    """``trial()`` unless the point is invalid (an error, a non-finite log-likelihood)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = trial()
    except _INVALID_POINT_ERRORS:
        return None
    return result if math.isfinite(result[2]) else None
