"""Compiled kernels of the gradient loops: one call, one host read per trial point.

:func:`fit_lbfgs` and :func:`hmog_xp.fit_gradient` run their decisions (line search,
convergence, back-off) on the host, so each step reads a few numbers there. Everything
between two reads is one function of arrays here, compiled by :func:`hmog_xp._backend.jit`
on JAX (the model, the projection and the mode are static: frozen dataclasses compare by
value, so a second fit of the same shapes reuses the compiled code) and run as is elsewhere.
Inside a kernel no Python value depends on the data: the L-BFGS memory is a fixed stack of
``memory`` pairs (empty slots are zeros and drop out of the two-loop recursion).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._backend.transfer import to_numpy
from hmog_xp._natural import (
    RCOND,
    apply_inverse,
    fisher_matrix,
    inverse_fisher_product,
    inverse_operator,
    natural_direction,
)

#: ``H₀`` of the two-loop recursion: the dense inverse Fisher matrix, its matrix-free
#: versions (closed-form mirror map, conjugate gradients), or the scaled identity.
MODES = ("dense", "exact", "cg", "identity")


def compiles(model: Any) -> bool:
    """Whether the loops may compile ``model``'s methods: a frozen dataclass (every variant).

    A frozen dataclass hashes by value and its methods are pure functions of the arrays, so
    compiled code stays valid; any other object (a user's wrapper with state) runs eagerly.

    Parameters
    ----------
    model : object
        The model.

    Returns
    -------
    bool
        True for frozen dataclasses.
    """
    params = getattr(type(model), "__dataclass_params__", None)
    return dataclasses.is_dataclass(model) and bool(getattr(params, "frozen", False))


def host_floats(values: Any) -> list[float]:
    """Read a 1-d array on the host in one transfer.

    Parameters
    ----------
    values : array, shape (n,)
        Values.

    Returns
    -------
    list of float
        The values.
    """
    return [float(v) for v in to_numpy(values).tolist()]


def value_and_gradient(model: Any, autodiff: bool, theta: Any, xs: Any) -> tuple[Any, Any]:
    """The average log-likelihood and its gradient (closed form or the backend's autodiff).

    Parameters
    ----------
    model : model
        With ``average_log_observable_density`` and ``log_likelihood_gradient``.
    autodiff : bool
        Differentiate with JAX or PyTorch instead of the closed form.
    theta : array, shape (dim,)
        Natural parameters.
    xs : array, shape (N, p)
        Observations.

    Returns
    -------
    value : array, shape ()
        Average log-likelihood.
    gradient : array, shape (dim,)
        Its gradient.
    """
    if autodiff:
        return B.value_and_grad(model.average_log_observable_density)(theta, xs)
    return model.average_log_observable_density(theta, xs), model.log_likelihood_gradient(theta, xs)


def average_log_likelihood(model: Any, theta: Any, xs: Any) -> Any:
    """``model.average_log_observable_density(theta, xs)`` (a kernel of its own).

    Parameters
    ----------
    model : model
        The model (static).
    theta : array, shape (dim,)
        Natural parameters.
    xs : array, shape (N, p)
        Observations.

    Returns
    -------
    array, shape ()
        Average log-likelihood.
    """
    return model.average_log_observable_density(theta, xs)


def trial(
    model: Any,
    project: Callable[[Any], Any] | None,
    autodiff: bool,
    params: Any,
    direction: Any,
    alpha: Any,
    grad: Any,
    xs: Any,
) -> tuple[Any, Any, Any]:
    """Evaluate the trial point ``θ + α d`` (projected) of the line search.

    Parameters
    ----------
    model : model
        The model (static).
    project : callable or None
        Projection of the trial point (static).
    autodiff : bool
        Gradient by autodiff (static).
    params : array, shape (dim,)
        Current point ``θ``.
    direction : array, shape (dim,)
        Search direction ``d``.
    alpha : float or array, shape ()
        Step length.
    grad : array, shape (dim,)
        Gradient at ``θ``.
    xs : array, shape (N, p)
        Observations.

    Returns
    -------
    candidate : array, shape (dim,)
        The trial point.
    gradient : array, shape (dim,)
        The gradient there.
    stats : array, shape (4,)
        ``gᵀd``, the slope along the projected step ``gᵀ(θ' − θ) / α``, ``ℓ(θ')`` and the
        curvature ``sᵀy`` with ``s = θ' − θ`` and ``y = g − g'``: all the line search and
        the memory update read, in one transfer.
    """
    xp = B.array_namespace(params, direction, grad)
    candidate = params + alpha * direction
    if project is not None:
        candidate = project(candidate)
    step = candidate - params
    with B.ignoring_overflow(xp, invalid=True):  # a point off the domain scores non-finite
        value, new_grad = value_and_gradient(model, autodiff, candidate, xs)
    stats = xp.stack(
        [
            xp.sum(grad * direction),
            xp.sum(grad * step) / alpha,
            xp.astype(value, grad.dtype),
            xp.sum(step * (grad - new_grad)),
        ]
    )
    return candidate, new_grad, stats


def two_loop_direction(
    mode: str,
    model: Any,
    cg_steps: int,
    params: Any,
    grad: Any,
    memory: tuple[Any, Any, Any],
    operator: tuple[Any, Any] | None,
) -> Any:
    """L-BFGS direction ``H g`` by the two-loop recursion over a fixed stack of pairs.

    Parameters
    ----------
    mode : {'dense', 'exact', 'cg', 'identity'}
        ``H₀`` (static): see :data:`MODES`.
    model : model
        The model (static; for the matrix-free modes).
    cg_steps : int
        Conjugate-gradient steps of mode ``'cg'`` (static).
    params : array, shape (dim,)
        Current point.
    grad : array, shape (dim,)
        Gradient there.
    memory : tuple of arrays
        ``(steps, changes, inverses)`` of shapes ``(m, dim)``, ``(m, dim)``, ``(m,)``,
        newest last: ``s``, ``y = g_old − g_new`` and ``1 / sᵀy`` (zeros: empty slots).
    operator : tuple of arrays or None
        The dense inverse Fisher operator of :func:`~hmog_xp._natural.inverse_operator`.

    Returns
    -------
    array, shape (dim,)
        The ascent direction.
    """
    xp = B.array_namespace(params, grad)
    steps, changes, inverses = memory
    slots = steps.shape[0]
    query = grad
    alphas = []
    for i in range(slots - 1, -1, -1):
        alpha = inverses[i] * xp.sum(steps[i, :] * query)
        alphas.append(alpha)
        query = query - alpha * changes[i, :]
    if mode == "dense" and operator is not None:
        result = apply_inverse(operator, query)
    elif mode == "exact":
        result = inverse_fisher_product(model, params, query)
    elif mode == "cg":
        result = natural_direction(model, params, query, cg_steps)
    else:  # H₀ = (sᵀy / yᵀy) I from the newest pair; a unit-length step without one
        last = inverses[slots - 1]
        scale = last * xp.sum(changes[slots - 1, :] * changes[slots - 1, :])
        paired = scale > 0
        unit = query / (1.0 + xp.sqrt(xp.sum(query * query)))
        result = xp.where(paired, query / xp.where(paired, scale, xp.ones_like(scale)), unit)
    for i in range(slots):
        beta = inverses[i] * xp.sum(changes[i, :] * result)
        result = result + steps[i, :] * (alphas[slots - 1 - i] - beta)
    return result


def push_pair(memory: tuple[Any, Any, Any], step: Any, change: Any, curvature: Any) -> Any:
    """Drop the oldest pair of the stack and append ``(s, y, 1 / sᵀy)``.

    Parameters
    ----------
    memory : tuple of arrays
        ``(steps, changes, inverses)`` (see :func:`two_loop_direction`).
    step, change : array, shape (dim,)
        The new pair.
    curvature : float or array, shape ()
        ``sᵀy`` (positive).

    Returns
    -------
    tuple of arrays
        The new stack, same shapes.
    """
    steps, changes, inverses = memory
    xp = B.array_namespace(steps, step)
    inverse = xp.full((1,), 1.0 / curvature, dtype=inverses.dtype, device=B.device_of(inverses))
    return (
        xp.concat([steps[1:, :], step[None, :]], axis=0),
        xp.concat([changes[1:, :], change[None, :]], axis=0),
        xp.concat([inverses[1:], inverse], axis=0),
    )


def dense_operator(model: Any, params: Any) -> tuple[tuple[Any, Any], Any]:
    """The eigendecomposed inverse Fisher matrix at ``params`` and whether it is finite.

    Parameters
    ----------
    model : model
        The model (static).
    params : array, shape (dim,)
        Natural parameters.

    Returns
    -------
    operator : tuple of arrays
        ``(vectors, inverse_values)`` of :func:`~hmog_xp._natural.inverse_operator`.
    finite : array, shape ()
        Whether every entry of the Fisher matrix is finite (one host read per refresh).
    """
    matrix = fisher_matrix(model, params)
    xp = B.array_namespace(matrix)
    finite = xp.all(xp.isfinite(matrix))
    identity = xp.eye(matrix.shape[0], dtype=matrix.dtype, device=B.device_of(matrix))
    safe = xp.where(finite, matrix, identity)
    return inverse_operator(safe, RCOND), finite


def batch_gradient(model: Any, autodiff: bool, theta: Any, xs: Any) -> Any:
    """The gradient of the average log-likelihood (closed form or autodiff).

    Parameters
    ----------
    model : model
        The model (static).
    autodiff : bool
        Differentiate with JAX or PyTorch instead of the closed form (static).
    theta : array, shape (dim,)
        Natural parameters.
    xs : array, shape (N, p)
        Observations (a mini-batch).

    Returns
    -------
    array, shape (dim,)
        The gradient.
    """
    if autodiff:
        return B.grad(model.average_log_observable_density)(theta, xs)
    return model.log_likelihood_gradient(theta, xs)


def adam_trial(
    model: Any,
    optimizer: Any,
    params: Any,
    direction: Any,
    state: Any,
    scale: Any,
    batch: Any,
) -> tuple[Any, Any, Any, Any]:
    """One Adam step along ``direction`` and ``batch``'s average log-likelihood after it.

    Parameters
    ----------
    model : model
        The model (static).
    optimizer : Adam
        The optimiser (static).
    params : array, shape (dim,)
        Current parameters.
    direction : array, shape (dim,)
        The gradient on ``batch`` at ``params``.
    state : AdamState
        Current moments.
    scale : float or array, shape ()
        Multiplier of the learning rate (the back-off).
    batch : array, shape (B, p)
        The mini-batch (or the full data).

    Returns
    -------
    candidate : array, shape (dim,)
        The new parameters.
    first, second : array, shape (dim,)
        The new moments (the caller counts the steps on the host).
    value : array, shape ()
        ``ℓ`` of ``candidate`` on ``batch`` (the one host read of the step).
    """
    candidate, new_state = optimizer.step(params, direction, state, scale)
    value = model.average_log_observable_density(candidate, batch)
    return candidate, new_state.first, new_state.second, value


compiled_average = B.jit(average_log_likelihood, static_argnums=(0,))
compiled_trial = B.jit(trial, static_argnums=(0, 1, 2))
compiled_direction = B.jit(two_loop_direction, static_argnums=(0, 1, 2))
compiled_push = B.jit(push_pair)
compiled_dense_operator = B.jit(dense_operator, static_argnums=(0,))
compiled_gradient = B.jit(batch_gradient, static_argnums=(0, 1))
compiled_adam_trial = B.jit(adam_trial, static_argnums=(0, 1))
