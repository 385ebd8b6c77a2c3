"""L-BFGS ascent with a backtracking line search that rejects invalid parameters.

Natural parameters of an HMoG are badly conditioned: plain gradient methods need thousands
of steps. The loop here is limited-memory BFGS (Nocedal & Wright 2006, Algorithm 7.4)
whose initial inverse Hessian is the inverse Fisher matrix (``preconditioner='natural'``,
:mod:`hmog_xp._natural`): its first step is a natural-gradient step, the curvature pairs then
correct it towards Newton's direction. The line search backtracks from the unit step until
the Armijo condition holds; a point whose parameters describe no distribution (a precision
that is not positive definite, a non-finite log-likelihood) scores ``−∞`` and is rejected, so
every accepted step increases the log-likelihood and the run never ends below its start.

Host synchronisations happen only where a decision needs a number: the objective at each
trial point, the slope ``gᵀd`` and the curvature ``sᵀy``. Value checks are off inside the
loop (``validation(False)``); the entry checks run once before it.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, Protocol

from hmog_xp import _backend as B
from hmog_xp._em_loop import has_converged
from hmog_xp._errors import ValidationError
from hmog_xp._natural import NaturalPreconditioner
from hmog_xp._validation import validation
from hmog_xp.optim import GradientFit

#: Armijo constant of the sufficient-increase condition.
ARMIJO = 1e-4
PRECONDITIONERS = ("natural", "none")
#: Marker for "no curvature pairs, no preconditioner": a unit-length gradient step.
_PLAIN: list[tuple[Any, Any, Any]] = []
#: Optimisers of the estimator's gradient-trained variants (``HMoG(solver=...)``).
SOLVERS = ("natural", "lbfgs", "adam")


class _Trainable(Protocol):
    def average_log_observable_density(self, params: Any, xs: Any) -> Any: ...

    def log_likelihood_gradient(self, params: Any, xs: Any) -> Any: ...

    def to_mean(self, params: Any) -> Any: ...


def fit_lbfgs(
    model: _Trainable,
    params: Any,
    xs: Any,
    *,
    max_iter: int = 200,
    tol: float | None = 1e-6,
    memory: int = 10,
    preconditioner: str = "natural",
    cg_steps: int = 20,
    refresh: int = 10,
    max_backtracks: int = 30,
    gradient: str = "closed-form",
    project: Callable[[Any], Any] | None = None,
    callback: Callable[[int, float], object] | None = None,
) -> GradientFit:
    """Maximise the average log-likelihood by preconditioned L-BFGS, full batch.

    Parameters
    ----------
    model : HMoG variant (or any model with the three methods used)
        The model.
    params : array, shape (model.dim,)
        Starting natural parameters.
    xs : array, shape (N, p)
        Observations.
    max_iter : int, optional
        Most accepted steps.
    tol : float or None, optional
        Stop when ``|ℓ_t − ℓ_{t−1}| <= tol · |ℓ_t|`` for two steps in a row (None: run
        ``max_iter`` steps or until no step improves).
    memory : int, optional
        Number of curvature pairs kept.
    preconditioner : {'natural', 'none'}, optional
        Initial inverse Hessian: the inverse Fisher matrix (``cg_steps`` conjugate-gradient
        steps on Fisher-vector products), or the scaled identity of plain L-BFGS.
    cg_steps : int, optional
        Conjugate-gradient steps per natural-gradient solve (models of dimension above
        2000 without a closed-form ``to_natural``).
    refresh : int, optional
        Accepted points between two dense Fisher matrices (dimension at most 2000).
    max_backtracks : int, optional
        Most halvings of the step in one line search; when none is accepted, the memory is
        cleared and a last natural-gradient (or gradient) step is tried before stopping.
    gradient : {'closed-form', 'autodiff'}, optional
        ``log_likelihood_gradient`` or the backend's autodiff (JAX, PyTorch).
    project : callable, optional
        ``project(params) -> params`` applied to every trial point (a bound such as the
        noise floor of :func:`hmog_xp._bounds.noise_floor_projection`); the sufficient
        increase is then measured along the projected step.
    callback : callable, optional
        ``callback(step, log_likelihood)`` after each accepted step.

    Returns
    -------
    GradientFit
        The last accepted parameters (each step increases ``ℓ``, so they are the best
        seen), the history of ``ℓ`` (entry 0: the start), steps taken and convergence.

    Raises
    ------
    ValidationError
        For bad arguments, or if the starting parameters have no finite log-likelihood.
    """
    if preconditioner not in PRECONDITIONERS:
        msg = f"preconditioner must be one of {PRECONDITIONERS}; got {preconditioner!r}"
        raise ValidationError(msg)
    if gradient not in ("closed-form", "autodiff"):
        msg = f"gradient must be 'closed-form' or 'autodiff'; got {gradient!r}"
        raise ValidationError(msg)
    if not isinstance(max_iter, int) or max_iter < 0:
        msg = f"max_iter must be a non-negative int; got {max_iter!r}"
        raise ValidationError(msg)
    if not isinstance(memory, int) or memory < 1:
        msg = f"memory must be a positive int; got {memory!r}"
        raise ValidationError(msg)
    xp = B.array_namespace(params, xs)
    value = float(model.average_log_observable_density(params, xs))  # entry checks on
    if not math.isfinite(value):
        msg = f"the starting parameters have a non-finite log-likelihood ({value})"
        raise ValidationError(msg)
    if gradient == "closed-form":
        grad_fn = model.log_likelihood_gradient
    else:
        grad_fn = B.grad(lambda theta, batch: model.average_log_observable_density(theta, batch))

    def objective(theta: Any) -> float:
        try:
            result = float(model.average_log_observable_density(theta, xs))
        except (ValidationError, ValueError, ArithmeticError):
            return -math.inf
        return result if math.isfinite(result) else -math.inf

    natural = (
        NaturalPreconditioner(model, int(params.shape[-1]), cg_steps, refresh)
        if preconditioner == "natural"
        else None
    )

    def initial(theta: Any, grad: Any, *, pairs: list[tuple[Any, Any, Any]]) -> Any:
        if natural is not None and pairs is not _PLAIN:
            direction = natural(theta, grad)
            if direction is not None:
                return direction
        if not pairs:  # first step of plain L-BFGS: unit length
            return grad / (1.0 + xp.sqrt(xp.sum(grad * grad)))
        _, change, inverse = pairs[-1]  # H₀ = (sᵀy / yᵀy) I
        return grad / (inverse * xp.sum(change * change))

    history = [value]
    pairs: list[tuple[Any, Any, Any]] = []  # (s, y, 1 / sᵀy) with y = g_old − g_new
    n_iter, converged = 0, False
    with validation(False):
        grad = grad_fn(params, xs)
        while n_iter < max_iter:
            direction = _two_loop(grad, pairs, functools.partial(initial, params, pairs=pairs), xp)
            slope = float(xp.sum(grad * direction))
            if not slope > 0 or not math.isfinite(slope):  # not an ascent direction: restart
                pairs.clear()
                direction = initial(params, grad, pairs=_PLAIN)
                slope = float(xp.sum(grad * direction))
                if not slope > 0 or not math.isfinite(slope):
                    break
            accepted = _backtrack(
                objective, params, direction, value, grad, max_backtracks, project
            )
            if accepted is None and pairs:
                pairs.clear()
                direction = initial(params, grad, pairs=pairs)
                accepted = _backtrack(
                    objective, params, direction, value, grad, max_backtracks, project
                )
            if accepted is None:
                break
            candidate, new_value = accepted
            new_grad = grad_fn(candidate, xs)
            step = candidate - params
            change = grad - new_grad
            curvature = float(xp.sum(step * change))
            if math.isfinite(curvature) and curvature > 0:  # y = −Δg: sᵀy > 0 where concave
                pairs.append((step, change, 1.0 / curvature))
                if len(pairs) > memory:
                    pairs.pop(0)
            params, value, grad = candidate, new_value, new_grad
            n_iter += 1
            history.append(value)
            if callback is not None:
                callback(n_iter, value)
            twice = n_iter >= 2 and tol is not None and has_converged(history[:-1], tol)
            if twice and tol is not None and has_converged(history, tol):
                converged = True
                break
    return GradientFit(params, history, n_iter, converged, len(history) - 1)


def _two_loop(
    grad: Any, pairs: list[tuple[Any, Any, Any]], initial: Callable[[Any], Any], xp: Any
) -> Any:
    """L-BFGS direction ``H g``: the two-loop recursion with ``H₀`` applied by ``initial``.

    The pairs are those of the minimiser of ``−ℓ``: ``s`` the step, ``y = g_old − g_new``
    the change of the gradient of ``−ℓ`` (``sᵀy > 0`` where ``ℓ`` is concave along ``s``).
    """
    query = grad
    alphas = []
    for step, change, inverse in reversed(pairs):
        alpha = inverse * xp.sum(step * query)
        alphas.append(alpha)
        query = query - alpha * change
    result = initial(query)
    for (step, change, inverse), alpha in zip(pairs, reversed(alphas), strict=True):
        beta = inverse * xp.sum(change * result)
        result = result + step * (alpha - beta)
    return result


def _backtrack(
    objective: Callable[[Any], float],
    params: Any,
    direction: Any,
    value: float,
    grad: Any,
    max_backtracks: int,
    project: Callable[[Any], Any] | None,
) -> tuple[Any, float] | None:
    """The first of ``α = 1, ½, ¼, …`` with ``ℓ(θ + αd) >= ℓ(θ) + c α gᵀd`` (Armijo).

    Invalid points score ``−∞`` and are rejected like any insufficient increase. The step
    after a failure is the minimiser of the quadratic through ``ℓ(θ)``, the slope and the
    failed value, kept within ``[α/10, α/2]``.
    """
    xp = B.array_namespace(params, direction)
    slope = float(xp.sum(grad * direction))
    alpha = 1.0
    for _ in range(max_backtracks + 1):
        candidate = params + alpha * direction
        if project is not None:  # the slope along the projected step
            candidate = project(candidate)
            slope = float(xp.sum(grad * (candidate - params))) / alpha
        trial = objective(candidate)
        if trial >= value + ARMIJO * alpha * slope and trial > value:
            return candidate, trial
        if math.isfinite(trial):
            drop = value + alpha * slope - trial  # > 0 when the quadratic model has a max
            shrink = 0.5 * alpha * slope / drop if drop > 0 else 0.5
            alpha *= min(max(shrink, 0.1), 0.5)
        else:
            alpha *= 0.5
    return None
