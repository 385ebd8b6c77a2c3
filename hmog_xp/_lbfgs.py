"""L-BFGS ascent with a backtracking line search that rejects invalid parameters.

Natural parameters of an HMoG are badly conditioned: plain gradient methods need thousands
of steps. The loop here is limited-memory BFGS (Nocedal & Wright 2006, Algorithm 7.4)
whose initial inverse Hessian is the inverse Fisher matrix (``preconditioner='natural'``,
:mod:`hmog_xp._natural`): its first step is a natural-gradient step, the curvature pairs then
correct it towards Newton's direction. The line search backtracks from the unit step until
the Armijo condition holds; a point whose parameters describe no distribution (a precision
that is not positive definite, a non-finite log-likelihood) scores ``−∞`` and is rejected, so
every accepted step increases the log-likelihood and the run never ends below its start.

Host synchronisations happen only where a decision needs a number: one read per trial point
of the line search (the slopes, the objective and the curvature ``sᵀy`` together, usually
one trial a step) and one per dense Fisher refresh. Value checks are off inside the loop
(``validation(False)``); the entry checks run once before it. On JAX the kernels between two
reads are compiled (:mod:`hmog_xp._gradient_kernels`) once per model and data shape, so a
second fit of the same shapes compiles nothing.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Protocol

from hmog_xp import _backend as B
from hmog_xp._em_loop import has_converged
from hmog_xp._errors import BackendError, ValidationError
from hmog_xp._gradient_kernels import (
    compiled_dense_operator,
    compiled_direction,
    compiled_push,
    compiled_trial,
    compiles,
    dense_operator,
    host_floats,
    push_pair,
    trial,
    two_loop_direction,
)
from hmog_xp._natural import DENSE_LIMIT, has_inverse_map
from hmog_xp._validation import validation
from hmog_xp.optim import GradientFit

#: Armijo constant of the sufficient-increase condition.
ARMIJO = 1e-4
PRECONDITIONERS = ("natural", "none")
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
        increase is then measured along the projected step, and a start outside the bound
        is projected first. It is static in the compiled kernels: pass a value-hashable
        object (the noise floor is a frozen dataclass) so a second fit does not recompile.
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
    compiled = compiles(model)
    autodiff = gradient == "autodiff"
    natural = _Natural(model, int(params.shape[-1]), preconditioner, cg_steps, refresh, compiled)
    empty = _empty_memory(params, memory)
    n_iter, converged = 0, False
    params, value, grad = _start(model, project, autodiff, params, xs, compiled)
    history = [value]
    with validation(False):
        search = _LineSearch(model, project, autodiff, xs, max_backtracks, compiled)
        pairs, stack = 0, empty
        while n_iter < max_iter:
            operator = natural.operator(params, n_iter)
            accepted = search(params, value, grad, natural.direction(params, grad, stack, operator))
            if accepted is _BAD_DIRECTION:  # not an ascent direction: restart from −∇ℓ
                pairs, stack = 0, empty
                plain = natural.direction(params, grad, stack, None, plain=True)
                accepted = search(params, value, grad, plain)
            elif accepted is None and pairs:  # clear the memory, one preconditioned step
                pairs, stack = 0, empty
                accepted = search(
                    params, value, grad, natural.direction(params, grad, stack, operator)
                )
            if accepted is None or accepted is _BAD_DIRECTION:
                break
            candidate, value, new_grad, curvature = accepted
            if math.isfinite(curvature) and curvature > 0:  # y = −Δg: sᵀy > 0 where concave
                push = compiled_push if compiled else push_pair
                stack = push(stack, candidate - params, grad - new_grad, curvature)
                pairs = min(pairs + 1, memory)
            params, grad = candidate, new_grad
            n_iter += 1
            history.append(value)
            if callback is not None:
                callback(n_iter, value)
            twice = n_iter >= 2 and tol is not None and has_converged(history[:-1], tol)
            if twice and tol is not None and has_converged(history, tol):
                converged = True
                break
    return GradientFit(params, history, n_iter, converged, len(history) - 1)


def _empty_memory(params: Any, memory: int) -> tuple[Any, Any, Any]:
    xp = B.array_namespace(params)
    device = B.device_of(params)
    zeros = xp.zeros((memory, int(params.shape[-1])), dtype=params.dtype, device=device)
    return zeros, zeros, xp.zeros((memory,), dtype=params.dtype, device=device)


def _start(
    model: Any,
    project: Callable[[Any], Any] | None,
    autodiff: bool,
    params: Any,
    xs: Any,
    compiled: bool,
) -> tuple[Any, float, Any]:
    """Check the inputs once; return the (projected) start, its ``ℓ`` and gradient.

    A model with ``_check_sample`` (every variant) checks shapes, backends and finite data
    there; any other model is checked by an eager evaluation of ``ℓ``. The value and the
    gradient then come from the trial kernel at a zero step (compiled once with the loop's).
    """
    check = getattr(model, "_check_sample", None)
    if check is None or not compiled:
        value = float(model.average_log_observable_density(params, xs))  # entry checks on
    else:
        check(xs, params)
        model._check_params(params)
        value = 0.0
    if math.isfinite(value):
        zeros = B.array_namespace(params).zeros_like(params)
        evaluate = compiled_trial if compiled else trial
        try:
            with validation(False):
                params, grad, stats = evaluate(
                    model, project, autodiff, params, zeros, 1.0, zeros, xs
                )
            value = host_floats(stats)[2]
        except BackendError:  # no autodiff on this backend
            raise
        except (ValidationError, ValueError, ArithmeticError):
            value = math.nan
    if not math.isfinite(value):
        msg = f"the starting parameters have a non-finite log-likelihood ({value})"
        raise ValidationError(msg)
    return params, value, grad


class _Natural:
    """``H₀`` of the two-loop recursion and, for small models, the dense Fisher refresh.

    Models of dimension at most :data:`~hmog_xp._natural.DENSE_LIMIT` form ``F`` and reuse
    its eigendecomposition for ``refresh`` accepted points (one host read per refresh: is
    ``F`` finite; if not, the previous one is kept, or none is used); larger models apply
    ``F⁻¹`` matrix-free inside the direction kernel (the closed-form mirror map where
    ``to_natural`` exists, conjugate gradients otherwise).
    """

    def __init__(
        self, model: Any, dim: int, preconditioner: str, cg_steps: int, refresh: int, compiled: bool
    ) -> None:
        self.model, self.cg_steps, self.refresh, self.compiled = model, cg_steps, refresh, compiled
        if preconditioner == "none":
            self.mode = "identity"
        elif dim <= DENSE_LIMIT:
            self.mode = "dense"
        else:
            self.mode = "exact" if has_inverse_map(model) else "cg"
        self._operator: tuple[Any, Any] | None = None
        self._built_at = -refresh

    def operator(self, params: Any, point: int) -> tuple[Any, Any] | None:
        """The dense operator at accepted point ``point`` (rebuilt every ``refresh``)."""
        if self.mode != "dense":
            return None
        if self._operator is None or point - self._built_at >= self.refresh:
            self._built_at = point  # a failed build waits for the next refresh too
            build = compiled_dense_operator if self.compiled else dense_operator
            try:
                operator, finite = build(self.model, params)
            except (ValidationError, ValueError, ArithmeticError):
                return self._operator
            if bool(finite):  # the refresh decision: one host read
                self._operator = operator
        return self._operator

    def direction(
        self,
        params: Any,
        grad: Any,
        stack: tuple[Any, Any, Any],
        operator: tuple[Any, Any] | None,
        *,
        plain: bool = False,
    ) -> Any:
        """The two-loop direction; ``plain``: the unit-length gradient (a restart)."""
        mode = "identity" if plain or (self.mode == "dense" and operator is None) else self.mode
        model = self.model if mode in ("exact", "cg") else None
        compute = compiled_direction if self.compiled else two_loop_direction
        try:
            return compute(mode, model, self.cg_steps, params, grad, stack, operator)
        except (ValidationError, ValueError, ArithmeticError):
            return compute("identity", None, self.cg_steps, params, grad, stack, None)


#: Marker of a search direction along which ``ℓ`` does not increase (``gᵀd <= 0``).
_BAD_DIRECTION: Any = object()


class _LineSearch:
    """Backtracking from ``α = 1`` until the Armijo condition holds; one host read a trial.

    Each trial point is evaluated by one kernel (value, gradient, slopes, curvature) and its
    four numbers are read together. Invalid points (non-finite ``ℓ``, or an error of the
    eager backends) are rejected like any insufficient increase. The step after a failure is
    the maximiser of the quadratic through ``ℓ(θ)``, the slope and the failed value, kept
    within ``[α/10, α/2]``.
    """

    def __init__(
        self,
        model: Any,
        project: Callable[[Any], Any] | None,
        autodiff: bool,
        xs: Any,
        max_backtracks: int,
        compiled: bool,
    ) -> None:
        self.model, self.project, self.autodiff, self.xs = model, project, autodiff, xs
        self.max_backtracks = max_backtracks
        self.evaluate = compiled_trial if compiled else trial

    def __call__(self, params: Any, value: float, grad: Any, direction: Any) -> Any:
        """``(candidate, ℓ, gradient, sᵀy)``, None (no step found) or ``_BAD_DIRECTION``."""
        alpha = 1.0
        for _ in range(self.max_backtracks + 1):
            try:
                candidate, new_grad, stats = self.evaluate(
                    self.model, self.project, self.autodiff, params, direction, alpha, grad, self.xs
                )
                raw_slope, slope, trial_value, curvature = host_floats(stats)
            except (ValidationError, ValueError, ArithmeticError):
                alpha *= 0.5
                continue
            if not raw_slope > 0 or not math.isfinite(raw_slope):
                return _BAD_DIRECTION
            if not math.isfinite(trial_value):
                alpha *= 0.5
                continue
            if trial_value >= value + ARMIJO * alpha * slope and trial_value > value:
                return candidate, trial_value, new_grad, curvature
            drop = value + alpha * slope - trial_value  # > 0 when the quadratic has a max
            shrink = 0.5 * alpha * slope / drop if drop > 0 else 0.5
            alpha *= min(max(shrink, 0.1), 0.5)
        return None
