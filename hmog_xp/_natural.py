"""The Fisher metric of an exponential family, applied and inverted without forming it.

Every HMoG variant is an exponential family in its joint statistics, so its Fisher matrix in
natural coordinates is the Hessian of the log-partition function, ``F(θ) = ∂η/∂θ`` with
``η = to_mean(θ)``. A Fisher-vector product is therefore a directional derivative of
``to_mean``, here a central difference (no autodiff, every backend), and the natural-gradient
direction ``F⁻¹ g`` is solved by a fixed number of conjugate-gradient steps on those products
(no host synchronisation: the step lengths stay arrays). Neither touches the data, so a
solve costs a few dozen evaluations of ``to_mean`` (``O(K d³ + p d²)`` each).
"""

from __future__ import annotations

from typing import Any, Protocol

from hmog_xp import _backend as B

#: Largest dimension whose Fisher matrix is formed and eigendecomposed (else CG solves).
DENSE_LIMIT = 2000
#: Relative floor on the Fisher eigenvalues inverted (directions the data barely determine).
RCOND = 1e-10


class _MeanMap(Protocol):
    def to_mean(self, params: Any) -> Any: ...


def has_inverse_map(model: Any) -> bool:
    """Whether ``model.to_natural`` inverts ``to_mean`` in closed form (complete mixtures).

    Parameters
    ----------
    model : model
        The exponential family.

    Returns
    -------
    bool
        True for the analytic variant and the symmetric one with full latent components.
    """
    return bool(getattr(model, "has_closed_form_em", False)) and hasattr(model, "to_natural")


def inverse_fisher_product(model: Any, params: Any, vector: Any) -> Any:
    """``F(θ)⁻¹ v`` exactly (to rounding) for a model with a closed-form ``to_natural``.

    ``F⁻¹ = ∂θ/∂η``, so this is the central difference of ``to_natural`` at ``η(θ)`` along
    the unit vector along ``v``, ``h = ε^{1/2}`` each way (a mirror step).

    Parameters
    ----------
    model : model with ``to_mean`` and ``to_natural``
        The exponential family (:func:`has_inverse_map`).
    params : array, shape (dim,)
        Natural parameters ``θ``.
    vector : array, shape (dim,)
        Direction ``v`` (a gradient).

    Returns
    -------
    array, shape (dim,)
        The natural-gradient direction.
    """
    xp = B.array_namespace(params, vector)
    eps = float(xp.finfo(params.dtype).eps)
    means = model.to_mean(params)
    norm = xp.sqrt(xp.sum(vector * vector))
    safe = xp.where(norm > 0, norm, xp.ones_like(norm))
    step = eps**0.5
    unit = vector / safe
    difference = model.to_natural(means + step * unit) - model.to_natural(means - step * unit)
    return difference * (safe / (2.0 * step))


def fisher_vector_product(model: _MeanMap, params: Any, vector: Any) -> Any:
    """``F(θ) v`` as the central difference of ``to_mean`` along ``v``.

    Parameters
    ----------
    model : model with ``to_mean``
        The exponential family.
    params : array, shape (dim,)
        Natural parameters ``θ``.
    vector : array, shape (dim,)
        Direction ``v``.

    Returns
    -------
    array, shape (dim,)
        ``(η(θ + h u) − η(θ − h u)) ‖v‖ / (2h)`` with ``u = v / ‖v‖`` and ``h`` the square
        root of the dtype's epsilon times ``1 + ‖θ‖``.
    """
    xp = B.array_namespace(params, vector)
    eps = float(xp.finfo(params.dtype).eps)
    norm = xp.sqrt(xp.sum(vector * vector))
    safe = xp.where(norm > 0, norm, xp.ones_like(norm))
    unit = vector / safe
    step = eps**0.5 * (1.0 + xp.sqrt(xp.sum(params * params)))
    difference = model.to_mean(params + step * unit) - model.to_mean(params - step * unit)
    return difference * (safe / (2.0 * step))


def natural_direction(model: _MeanMap, params: Any, gradient: Any, n_steps: int = 20) -> Any:
    """Approximate ``F(θ)⁻¹ g`` by ``n_steps`` conjugate-gradient steps from zero.

    Conjugate gradients need only ``F v`` (:func:`fisher_vector_product`). The step lengths
    stay arrays (a zero curvature gives a zero step), so the solve runs without a host
    synchronisation; after ``k`` steps the result is the ``F``-optimal point of the Krylov
    space of ``g``, so it is an ascent direction whenever ``F`` is positive definite.

    Parameters
    ----------
    model : model with ``to_mean``
        The exponential family.
    params : array, shape (dim,)
        Natural parameters ``θ``.
    gradient : array, shape (dim,)
        Euclidean gradient ``g`` of the objective.
    n_steps : int, optional
        Conjugate-gradient steps.

    Returns
    -------
    array, shape (dim,)
        The natural-gradient direction.
    """
    xp = B.array_namespace(params, gradient)
    solution = xp.zeros_like(gradient)
    residual = gradient
    search = gradient
    residual_norm = xp.sum(residual * residual)
    tiny = float(xp.finfo(gradient.dtype).smallest_normal)
    zero, one = xp.zeros_like(residual_norm), xp.ones_like(residual_norm)
    for _ in range(n_steps):
        curved = fisher_vector_product(model, params, search)
        curvature = xp.sum(search * curved)
        good = curvature > tiny * (1.0 + residual_norm)
        length = xp.where(good, residual_norm / xp.where(good, curvature, one), zero)
        solution = solution + length * search
        residual = residual - length * curved
        new_norm = xp.sum(residual * residual)
        moving = residual_norm > tiny
        ratio = xp.where(moving, new_norm / xp.where(moving, residual_norm, one), zero)
        search = residual + ratio * search
        residual_norm = new_norm
    return solution


def fisher_matrix(model: _MeanMap, params: Any) -> Any:
    """The Fisher matrix ``F(θ) = ∂η/∂θ``: central differences of ``to_mean``, one batch.

    Coordinate ``i`` moves by ``h_i = ε^{1/2} (1 + |θ_i|)`` each way (``ε`` the dtype's
    epsilon): small enough to stay inside the domain near its edge, and the rounding error
    (about ``ε^{1/2}`` relative) is harmless for a preconditioner.

    ``to_mean`` evaluates all ``2 · dim`` shifted parameter vectors in one batched call, so
    this costs about as much as a few single calls for small models.

    Parameters
    ----------
    model : model with a batched ``to_mean``
        The exponential family.
    params : array, shape (dim,)
        Natural parameters ``θ``.

    Returns
    -------
    array, shape (dim, dim)
        The symmetrised Fisher matrix.
    """
    xp = B.array_namespace(params)
    dim = params.shape[-1]
    eps = float(xp.finfo(params.dtype).eps)
    step = eps**0.5 * (1.0 + xp.abs(params))
    shifts = step[:, None] * xp.eye(dim, dtype=params.dtype, device=B.device_of(params))
    means = model.to_mean(xp.concat([params + shifts, params - shifts], axis=0))
    matrix = (means[:dim, :] - means[dim:, :]) / (2.0 * step[:, None])
    return 0.5 * (matrix + xp.matrix_transpose(matrix))


def inverse_operator(matrix: Any, rcond: float = 1e-10) -> tuple[Any, Any]:
    """Decompose a symmetric matrix for ``F⁻¹ v``: eigenvectors, clipped inverse eigenvalues.

    Eigenvalues below ``rcond`` times the largest (rounding, or directions the data do not
    determine) are raised to that floor, so the inverse is positive definite and bounded.

    Parameters
    ----------
    matrix : array, shape (dim, dim)
        Symmetric positive semi-definite matrix.
    rcond : float, optional
        Relative eigenvalue floor.

    Returns
    -------
    vectors : array, shape (dim, dim)
        Orthonormal eigenvectors (columns).
    inverse_values : array, shape (dim,)
        ``1 / max(λ_i, rcond · λ_max)``.
    """
    xp = B.array_namespace(matrix)
    values, vectors = xp.linalg.eigh(matrix)
    floor = rcond * xp.max(xp.abs(values))
    floor = xp.where(floor > 0, floor, xp.ones_like(floor))
    return vectors, 1.0 / xp.maximum(values, floor)


def apply_inverse(operator: tuple[Any, Any], vector: Any) -> Any:
    """``Q diag(1/λ) Qᵀ v`` for the output of :func:`inverse_operator`.

    Parameters
    ----------
    operator : tuple of arrays
        ``(vectors, inverse_values)``.
    vector : array, shape (dim,)
        Vector.

    Returns
    -------
    array, shape (dim,)
        The product.
    """
    vectors, inverse_values = operator
    xp = B.array_namespace(vectors, vector)
    return xp.matmul(vectors, inverse_values * xp.matmul(xp.matrix_transpose(vectors), vector))
