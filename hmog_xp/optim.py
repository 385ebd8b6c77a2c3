"""Gradient training on every backend: Adam written against the Array API, and a fit loop.

The log-likelihood gradient of every HMoG variant is available in closed form
(``log_likelihood_gradient``), so training needs no autodiff; on JAX and PyTorch the loop can
equally use the backend's autodiff of ``average_log_observable_density``
(``gradient="autodiff"``). A step that would leave the space of valid parameters (a precision
that is no longer positive definite) is retried with half the step size, so the loop never
returns an invalid model. The loop returns the best parameters it has seen (by the scores it
tracks), so a run that diverges (too large a learning rate) never returns a model worse than
its start on the full batch.

Each step scores the batch it stepped on: the average log-likelihood of that batch at the
new parameters, computed with the step in one kernel (compiled once per model and batch
shape on JAX) and read on the host once; value checks are off inside the loop. Without
mini-batches that is the full-data log-likelihood; with them it is a noisy estimate, and
the full data is scored only at the start.

Adam is for mini-batches and end-to-end use; to reach the maximum likelihood of a full batch,
:func:`hmog_xp.fit_lbfgs` (L-BFGS preconditioned by the inverse Fisher matrix) gets there
without tuning and is what :class:`hmog_xp.HMoG` uses by default.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from hmog_xp import _backend as B
from hmog_xp._em_loop import has_converged
from hmog_xp._errors import BackendError, ValidationError
from hmog_xp._gradient_kernels import (
    adam_trial,
    batch_gradient,
    compiled_adam_trial,
    compiled_average,
    compiled_gradient,
    compiles,
)
from hmog_xp._validation import validation


class AdamState(NamedTuple):
    """Running moments of Adam.

    Attributes
    ----------
    first : array
        Exponential average of gradients.
    second : array
        Exponential average of squared gradients.
    step : int
        Number of updates taken.
    """

    first: Any
    second: Any
    step: int


@dataclass(frozen=True)
class Adam:  # numpydoc ignore=PR02
    """Adam (Kingma & Ba, 2015) for gradient *ascent* on flat parameter arrays.

    Parameters
    ----------
    learning_rate : float, optional
        Step size.
    beta1, beta2 : float, optional
        Decay rates of the first and second moment averages.
    eps : float, optional
        Denominator floor.
    """

    learning_rate: float = 1e-2
    beta1: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    def __post_init__(self) -> None:
        if not self.learning_rate > 0 or not 0 <= self.beta1 < 1 or not 0 <= self.beta2 < 1:
            msg = (
                f"Adam needs learning_rate > 0 and 0 <= beta1, beta2 < 1; got "
                f"learning_rate={self.learning_rate}, beta1={self.beta1}, beta2={self.beta2}"
            )
            raise ValidationError(msg)

    def init(self, params: Any) -> AdamState:
        """Return the initial (zero) state for parameters like ``params``.

        Parameters
        ----------
        params : array
            Parameters.

        Returns
        -------
        AdamState
            Zero moments, step 0.
        """
        xp = B.array_namespace(params)
        return AdamState(xp.zeros_like(params), xp.zeros_like(params), 0)

    def step(
        self, params: Any, gradient: Any, state: AdamState, scale: float = 1.0
    ) -> tuple[Any, AdamState]:
        """Take one ascent step along ``gradient``.

        Parameters
        ----------
        params : array
            Current parameters.
        gradient : array, shape of ``params``
            Gradient of the objective to maximise.
        state : AdamState
            Current state.
        scale : float, optional
            Multiplier of the learning rate for this step (used to back off).

        Returns
        -------
        params : array
            Updated parameters.
        state : AdamState
            Updated state.
        """
        xp = B.array_namespace(params, gradient)
        step = state.step + 1
        first = self.beta1 * state.first + (1.0 - self.beta1) * gradient
        second = self.beta2 * state.second + (1.0 - self.beta2) * gradient * gradient
        corrected_first = first / (1.0 - self.beta1**step)
        corrected_second = second / (1.0 - self.beta2**step)
        update = corrected_first / (xp.sqrt(corrected_second) + self.eps)
        return params + scale * self.learning_rate * update, AdamState(first, second, step)


class _Trainable(Protocol):
    def average_log_observable_density(self, params: Any, xs: Any) -> Any: ...

    def log_likelihood_gradient(self, params: Any, xs: Any) -> Any: ...


class GradientFit(NamedTuple):
    """Result of :func:`fit_gradient`.

    Attributes
    ----------
    params : array
        The best natural parameters seen: those of ``log_likelihoods[best_iter]``, the
        largest entry (the last iterate unless the run went downhill, e.g. diverged).
    log_likelihoods : list of float
        Average log-likelihood after each step (the first entry: the starting point, on the
        full data): the whole history, not only up to ``best_iter``. :func:`fit_gradient`
        scores each step on the batch it stepped on (the full data without mini-batches).
    n_iter : int
        Number of optimiser steps taken.
    converged : bool
        Whether the relative change fell below ``tol`` before ``n_steps`` (always False
        without ``tol``).
    best_iter : int
        Step after which ``params`` were reached (0: the starting point was never beaten).
    """

    params: Any
    log_likelihoods: list[float]
    n_iter: int = 0
    converged: bool = False
    best_iter: int = 0


def fit_gradient(
    model: _Trainable,
    params: Any,
    xs: Any,
    *,
    n_steps: int = 100,
    optimizer: Adam | None = None,
    batch_size: int | None = None,
    rng: Any = None,
    gradient: str = "closed-form",
    max_backoff: int = 20,
    tol: float | None = None,
    callback: Callable[[int, float], object] | None = None,
) -> GradientFit:
    """Maximise the average log-likelihood by Adam, full batch or mini-batches.

    Parameters
    ----------
    model : HMoG variant (or any model with the two methods used)
        The model.
    params : array, shape (model.dim,)
        Starting natural parameters.
    xs : array, shape (N, p)
        Observations.
    n_steps : int, optional
        Number of optimiser steps.
    optimizer : Adam, optional
        The optimiser (default ``Adam(1e-2)``).
    batch_size : int, optional
        Mini-batch size (default: the full data). Batches are drawn without replacement
        within each pass over the data.
    rng : int, generator or JAX key, optional
        Randomness for the mini-batches.
    gradient : {'closed-form', 'autodiff'}, optional
        ``log_likelihood_gradient`` (every backend) or the backend's autodiff of
        ``average_log_observable_density`` (JAX, PyTorch).
    max_backoff : int, optional
        How many times a step that leaves the valid parameter space is halved before the
        loop stops there (returning the best parameters so far, see Returns).
    tol : float, optional
        Stop early when ``|ℓ_t − ℓ_{t−1}| <= tol · |ℓ_t|`` for the scores ``ℓ`` of the
        history (the batches' with mini-batches; default: run all ``n_steps``).
    callback : callable, optional
        Called as ``callback(step, log_likelihood)`` after each step.

    Returns
    -------
    GradientFit
        The best parameters seen by the history's scores (never worse than the start
        ``log_likelihoods[0]`` by them), the step that reached them and the history: entry
        ``t`` is the average log-likelihood of step ``t``'s batch after step ``t``. The
        loop stops early when no step size down to ``2**-max_backoff`` times the learning
        rate gives valid parameters with a finite log-likelihood (for example after a
        non-finite gradient);
        ``n_iter`` then says how many steps were taken.

    Raises
    ------
    ValidationError
        For bad arguments, or if the starting parameters have no finite log-likelihood.
    """
    if gradient not in ("closed-form", "autodiff"):
        msg = f"gradient must be 'closed-form' or 'autodiff'; got {gradient!r}"
        raise ValidationError(msg)
    if not isinstance(n_steps, int) or n_steps < 0:
        msg = f"n_steps must be a non-negative int; got {n_steps!r}"
        raise ValidationError(msg)
    xp = B.array_namespace(params, xs)
    n_obs = xs.shape[0]
    size = n_obs if batch_size is None else int(batch_size)
    if not 1 <= size <= n_obs:
        msg = f"batch_size must be between 1 and N={n_obs}; got {batch_size!r}"
        raise ValidationError(msg)
    optimizer = Adam() if optimizer is None else optimizer
    compiled = compiles(model)
    autodiff = gradient == "autodiff"
    source = B.random_source(rng, xp, B.device_of(xs))
    state = optimizer.init(params)
    history = [_start_value(model, params, xs, compiled)]
    if not math.isfinite(history[0]):
        msg = f"the starting parameters have a non-finite log-likelihood ({history[0]})"
        raise ValidationError(msg)
    best, best_iter = params, 0
    order = xp.arange(n_obs, device=B.device_of(xs))
    position = n_obs  # forces a shuffle before the first mini-batch
    n_iter, converged = 0, False
    kernel = compiled_adam_trial if compiled else adam_trial
    grad_fn = compiled_gradient if compiled else batch_gradient
    with validation(False):
        for n_iter in range(1, n_steps + 1):
            if size < n_obs:
                if position + size > n_obs:
                    order = xp.argsort(source.uniform((n_obs,), dtype=xs.dtype))
                    position = 0
                batch = xp.take(xs, order[position : position + size], axis=0)
                position += size
            else:
                batch = xs
            direction = grad_fn(model, autodiff, params, batch)
            step = _safe_step(
                kernel, model, optimizer, params, direction, state, batch, max_backoff
            )
            if step is None:  # no valid step: stop with the best parameters so far
                n_iter -= 1
                break
            params, state, value = step
            history.append(value)
            if value > history[best_iter]:
                best, best_iter = params, n_iter
            if callback is not None:
                callback(n_iter, value)
            if tol is not None and has_converged(history, tol):
                converged = True
                break
    return GradientFit(best, history, n_iter, converged, best_iter)


def _start_value(model: Any, params: Any, xs: Any, compiled: bool) -> float:
    """``ℓ`` of the start on the full data, the inputs checked once (as :func:`fit_lbfgs`)."""
    check = getattr(model, "_check_sample", None)
    if check is None or not compiled:
        return float(model.average_log_observable_density(params, xs))  # entry checks on
    check(xs, params)
    model._check_params(params)
    with validation(False):
        return float(compiled_average(model, params, xs))


def _safe_step(
    kernel: Callable[..., Any],
    model: _Trainable,
    optimizer: Adam,
    params: Any,
    direction: Any,
    state: AdamState,
    batch: Any,
    max_backoff: int,
) -> tuple[Any, AdamState, float] | None:
    """One Adam step, halved until the new parameters are valid (finite ``ℓ`` on the batch).

    Each try is one kernel call (the update and the batch's ``ℓ`` after it) and one host
    read; the gradient is computed once before. None when no step size down to
    ``2**-max_backoff`` works (or the direction is not finite, which no step size cures).
    """
    scale = 1.0
    for _ in range(max_backoff + 1):
        try:
            candidate, first, second, value = kernel(
                model, optimizer, params, direction, state, scale, batch
            )
            score = float(value)
        except BackendError:  # no autodiff on this backend: not a bad step
            raise
        except (ValidationError, ValueError, ArithmeticError):
            score = math.nan
        if math.isfinite(score):
            return candidate, AdamState(first, second, state.step + 1), score
        scale *= 0.5
    return None
