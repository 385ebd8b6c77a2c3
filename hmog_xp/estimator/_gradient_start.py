"""Warm start of the restricted HMoG families: a closed-form EM fit projected into them.

The differentiable variant (restricted posteriors, e.g. diagonal) and the symmetric one
whose components differ only in a restricted ``lat_rep`` have no closed-form M-step, and
the preconditioned L-BFGS climbs slowly from the k-means start on hard data.
:func:`em_warm_start` instead

1. fits the **analytic** HMoG of the same shapes by closed-form EM (SQUAREM, the
   estimator's stabilisers, ``max_iter`` and ``tol``) from the analytic model's usual
   start;
2. **projects** that fit into the model's family (:func:`project_to_family`);
3. keeps the projection if it is more likely than the model's usual (cold) start;
   L-BFGS then runs from the kept start (its own ``max_iter`` steps).

The projection. The analytic fit has prior components ``N(μ_k, Σ_k)`` and likelihood
``x | y ~ N(A y + b, Ψ)``. The differentiable family needs posterior precisions
``Σ_k⁻¹ + AᵀΨ⁻¹A = D_k`` of the posterior rep (diagonal, isotropic); the symmetric family
needs prior precisions that differ across components only in that rep. Both hold for
``Σ_k⁻¹ = D_k − G``, ``G = AᵀΨ⁻¹A``, with ``D_k`` in the rep, which is what the projection
builds. ``p(x)`` is unchanged by a change of latent basis ``y ↦ V⁻¹ y`` (``A ↦ A V``,
``Σ_k ↦ V⁻¹ Σ_k V⁻ᵀ``), so a basis is chosen first: the given one or the **pooled** one,
in which ``G`` and the pooled prior precision ``M = Σ_k π_k Σ_k⁻¹`` are both diagonal
(``VᵀMV = I``; a generalised eigenproblem), so only the components' deviations from ``M``
are off-diagonal. In that basis each ``D_k`` minimises ``KL(N(μ_k, Σ_k) ‖ N(μ_k,
(D_k − G)⁻¹))`` (convex in ``D_k``; at the minimum the diagonal of ``(D_k − G)⁻¹`` is that
of ``Σ_k``, or its trace for the isotropic rep), solved by damped Newton steps; weights,
means, loadings, bias and noise are kept. Of the two bases the one with the smaller
``Σ_k π_k KL`` is kept, so a point of the differentiable family (``KL = 0`` in its own
basis) is mapped to itself.

Measured on raw digits (``K = 10``, ``d = 10``, NumPy, ``OMP_NUM_THREADS=1``, EM's
200-step fit at −34.21 standardised; scripts ``/work/measure/h14_*.py`` of issue 14), the
differentiable model after L-BFGS from the projection: pooled basis −36.75 (projection
−37.31, ``Σ π KL`` 10.7), eigenvectors of ``G`` −37.74 (11.3), EM's own basis −442
(1.5e6), a joint approximate diagonalisation of the posterior precisions (log-det
criterion) −2533; keeping ``diag(Σ_k⁻¹ + G)`` as ``D_k`` instead of the KL choice:
−95545. The cold start ends at −43.22 (200 steps) and −41.77 (496 steps, converged). On
wine every basis ends within 0.002 nats of the others.

Every step is Array API arithmetic on the backend of the data (one eigendecomposition with
a fixed sign convention, Cholesky factors, ``K`` small Newton problems with a fixed number
of iterations), so the start is deterministic per seed and the same on every backend up
to rounding.
"""

from __future__ import annotations

from typing import Any, TypeGuard

from hmog_xp import _backend as B
from hmog_xp._backend.chunks import repeat
from hmog_xp._gradient_kernels import compiled_average
from hmog_xp.em import fit_em
from hmog_xp.estimator._init import starting_point
from hmog_xp.families import Normal
from hmog_xp.harmoniums.stabilizers import Regularization
from hmog_xp.hmog import (
    DifferentiableHMoG,
    HierarchicalMixtureOfGaussians,
    SymmetricHMoG,
    analytic_hmog,
)
from hmog_xp.reps import PositiveDefinite, Scale

#: The models warm-started here.
Restricted = DifferentiableHMoG | SymmetricHMoG
#: Damped Newton iterations of the KL projection (quadratic convergence: a handful suffice).
NEWTON_STEPS = 30
#: Step sizes tried at once in each Newton iteration: ``1, 1/2, …, 2^-(STEP_SIZES-1)``.
STEP_SIZES = 30
#: Armijo constant of the Newton line search.
ARMIJO = 1e-4
#: Relative margin by which the pooled basis must beat the given one (ties: the given one).
TIE = 1e-9


def has_warm_start(model: HierarchicalMixtureOfGaussians) -> TypeGuard[Restricted]:
    """Whether :func:`em_warm_start` applies: a restricted family without closed-form EM.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.

    Returns
    -------
    bool
        True for :class:`~hmog_xp.DifferentiableHMoG` (any posterior rep) and for
        :class:`~hmog_xp.SymmetricHMoG` whose components differ in a restricted
        ``lat_rep`` (with full latent components it runs EM itself).
    """
    if isinstance(model, DifferentiableHMoG):
        return True
    return isinstance(model, SymmetricHMoG) and model.upr_hrm.varying_rep != PositiveDefinite()


def pooled_basis(gram: Any, precisions: Any, weights: Any) -> Any:
    """Latent basis ``V`` with ``VᵀMV = I`` and ``VᵀGV`` diagonal (ascending).

    Parameters
    ----------
    gram : array, shape (d, d)
        ``G = AᵀΨ⁻¹A``.
    precisions : array, shape (K, d, d)
        Prior component precisions ``Σ_k⁻¹``.
    weights : array, shape (K,)
        ``π``.

    Returns
    -------
    array, shape (d, d)
        ``V`` (columns: the new basis vectors in old coordinates); each column's cube sum
        is positive (a sign convention independent of the eigensolver).
    """
    xp = B.array_namespace(gram, precisions, weights)
    pooled = xp.sum(weights[:, None, None] * precisions, axis=0)
    factor = B.cholesky(pooled, xp=xp)  # M = L Lᵀ
    eye = xp.eye(gram.shape[-1], dtype=gram.dtype, device=B.device_of(gram))
    inverse = B.solve_triangular(factor, eye, lower=True, xp=xp)  # L⁻¹
    whitened = inverse @ gram @ xp.matrix_transpose(inverse)
    whitened = 0.5 * (whitened + xp.matrix_transpose(whitened))
    _, vectors = xp.linalg.eigh(whitened)
    signs = 1.0 - 2.0 * xp.astype(xp.sum(vectors**3, axis=0) < 0, vectors.dtype)
    return xp.matrix_transpose(inverse) @ (vectors * signs)


def _rep_parts(rep: Any, matrices: Any) -> Any:
    """The rep's coordinates of the gradient of ``⟨D, ·⟩``: diagonal, or trace."""
    xp = B.array_namespace(matrices)
    diagonal = xp.linalg.diagonal(matrices)
    return xp.sum(diagonal, axis=-1, keepdims=True) if rep == Scale() else diagonal


def _objective(values: Any, gram: Any, targets: Any) -> Any:
    """``2 KL + const``: ``Σ_i D_i t_i − log det(D − G')``; ``+inf`` off the domain."""
    xp = B.array_namespace(values, gram, targets)
    eye = xp.eye(gram.shape[-1], dtype=gram.dtype, device=B.device_of(gram))
    eigenvalues = xp.linalg.eigvalsh(values[..., None] * eye - gram)
    valid = xp.min(eigenvalues, axis=-1) > 0
    logdet = xp.sum(xp.log(xp.where(eigenvalues > 0, eigenvalues, 1.0)), axis=-1)
    linear = xp.sum(values * targets, axis=-1)
    return xp.where(valid, linear - logdet, xp.inf)


def kl_posterior_precisions(rep: Any, gram: Any, covariances: Any) -> Any:
    """Posterior precisions ``D_k`` (in ``rep``) closest to the prior covariances ``Σ_k``.

    Minimises ``KL(N(0, Σ_k) ‖ N(0, (D_k − G)⁻¹))`` over ``D_k`` with ``D_k − G`` positive
    definite, for each ``k``: damped Newton from a diagonally dominant start, every step
    size of a halving ladder tried at once, :data:`NEWTON_STEPS` iterations.

    Parameters
    ----------
    rep : Diagonal or Scale
        Posterior rep.
    gram : array, shape (d, d)
        ``G`` (symmetric positive semi-definite).
    covariances : array, shape (K, d, d)
        ``Σ_k`` (symmetric positive definite).

    Returns
    -------
    array, shape (K, d)
        The diagonal of each ``D_k`` (all entries equal for ``Scale``).
    """
    xp = B.array_namespace(gram, covariances)
    d = gram.shape[-1]
    eye = xp.eye(d, dtype=gram.dtype, device=B.device_of(gram))
    targets = xp.linalg.diagonal(covariances)  # (K, d): ∂/∂D of ⟨D, Σ⟩
    dominance = xp.sum(xp.abs(gram), axis=-1)  # Gershgorin: D ≥ this keeps D − G ⪰ 0
    values = dominance + 1.0 / targets
    if rep == Scale():
        targets = xp.broadcast_to(xp.mean(targets, axis=-1, keepdims=True), targets.shape)
        values = xp.broadcast_to(xp.max(values, axis=-1, keepdims=True), values.shape)
    current = _objective(values, gram, targets)
    ladder = xp.asarray(
        [0.5**i for i in range(STEP_SIZES)], dtype=gram.dtype, device=B.device_of(gram)
    )

    def newton(state: tuple[Any, Any]) -> tuple[Any, Any]:
        values, current = state
        inverse = xp.linalg.inv(values[..., None] * eye - gram)
        gradient = targets - xp.linalg.diagonal(inverse)  # (K, d)
        hessian = inverse * inverse  # ∂² of the objective: (Q⁻¹ ∘ Q⁻¹)
        if rep == Scale():
            slope_parts = xp.sum(gradient, axis=-1, keepdims=True)
            curvature = xp.sum(hessian, axis=(-2, -1))[..., None]
            step = xp.broadcast_to(-slope_parts / curvature, gradient.shape)
        else:
            step = -xp.linalg.solve(hessian, gradient[..., None])[..., 0]
        slope = xp.sum(gradient * step, axis=-1)  # (K,) ≤ 0
        trials = values[:, None, :] + ladder[None, :, None] * step[:, None, :]  # (K, S, d)
        scores = _objective(trials, gram, targets[:, None, :])  # (K, S)
        good = scores <= current[:, None] + ARMIJO * ladder[None, :] * slope[:, None]
        # The largest accepted step size (the first in the ladder); none: stay.
        first = xp.argmax(xp.astype(good, xp.int32), axis=-1)
        chosen = xp.take(ladder, first)
        accepted = xp.any(good, axis=-1)
        chosen = xp.where(accepted, chosen, 0.0)
        values = values + chosen[:, None] * step
        return values, xp.where(accepted, _objective(values, gram, targets), current)

    # A fixed number of steps: one lax.fori_loop on JAX, not 30 copies in the trace.
    values, _ = repeat(newton, NEWTON_STEPS, (values, current))
    return values


def _gram(model: Restricted, lkl_params: Any) -> Any:
    """``G = WᵀΛ_x⁻¹W = AᵀΨ⁻¹A`` as the model computes it (minus ``ρ``'s precision)."""
    d = model.lat_dim
    rho = model.lower_harmonium.conjugation_parameters(lkl_params)[1]
    precision = Normal(d, PositiveDefinite()).split_location_precision(rho)[1]
    return -PositiveDefinite().unpack(precision, d)


def _rebased(
    model: Restricted, lkl_params: Any, means: Any, covariances: Any, basis: Any
) -> tuple[Any, Any, Any]:
    """Likelihood, means and covariances in the latent basis ``V`` (``y ↦ V⁻¹ y``)."""
    xp = B.array_namespace(lkl_params, basis)
    lower = model.lower_harmonium
    n_obs = lower.obs_man.dim
    interaction = xp.reshape(lkl_params[n_obs:], (lower.obs_dim, model.lat_dim)) @ basis
    lkl_params = xp.concat([lkl_params[:n_obs], xp.reshape(interaction, (-1,))])
    rebase = xp.linalg.inv(basis)
    means = means @ xp.matrix_transpose(rebase)
    covariances = rebase @ covariances @ xp.matrix_transpose(rebase)
    return lkl_params, means, 0.5 * (covariances + xp.matrix_transpose(covariances))


def _component_precisions(rep: Any, gram: Any, covariances: Any) -> tuple[Any, Any]:
    """Prior precisions ``Q_k = D_k − G`` of the projection and each ``KL(Σ_k ‖ Q_k⁻¹)``."""
    xp = B.array_namespace(gram, covariances)
    d = gram.shape[-1]
    eye = xp.eye(d, dtype=gram.dtype, device=B.device_of(gram))
    values = kl_posterior_precisions(rep, gram, covariances)
    precisions = values[..., None] * eye - gram
    precisions = 0.5 * (precisions + xp.matrix_transpose(precisions))
    _, logdet_q = xp.linalg.slogdet(precisions)
    _, logdet_s = xp.linalg.slogdet(covariances)
    trace = xp.sum(precisions * covariances, axis=(-2, -1))
    return precisions, 0.5 * (trace - d - logdet_q - logdet_s)


def project_to_family(model: Restricted, lkl_params: Any, generative: Any) -> Any:
    """Natural parameters of ``model`` closest to a full-latent HMoG (module docstring).

    Two latent bases are tried, the given one and the pooled one (:func:`pooled_basis`);
    the projection whose latent prior components are closer to the given ones (the smaller
    ``Σ_k π_k KL``, by more than a relative :data:`TIE`) is kept. A point of the family has
    ``KL = 0`` in its own basis, so it is mapped to itself.

    Parameters
    ----------
    model : DifferentiableHMoG or SymmetricHMoG
        Target model.
    lkl_params : array, shape (model.lkl_dim,)
        Likelihood parameters ``(θ_x, W)`` of the full-latent fit (the same obs rep).
    generative : HMoGParameters
        Its prior mixture: weights ``(K,)``, means ``(K, d)``, covariances ``(K, d, d)``.

    Returns
    -------
    array, shape (model.dim,)
        Natural parameters (in the kept latent basis).
    """
    xp = B.array_namespace(lkl_params)
    full = Normal(model.lat_dim, PositiveDefinite())
    weights, means, covariances = generative.weights, generative.means, generative.covariances
    covariances = 0.5 * (covariances + xp.matrix_transpose(covariances))
    rep = model.prior_upper.varying_rep
    if rep == PositiveDefinite():  # the family is complete: exact
        precisions = xp.linalg.inv(covariances)
        precisions = 0.5 * (precisions + xp.matrix_transpose(precisions))
    else:
        gram = _gram(model, lkl_params)
        precisions, losses = _component_precisions(rep, gram, covariances)
        inverse = xp.linalg.inv(covariances)
        basis = pooled_basis(gram, 0.5 * (inverse + xp.matrix_transpose(inverse)), weights)
        pooled = _rebased(model, lkl_params, means, covariances, basis)
        pooled_precisions, pooled_losses = _component_precisions(
            rep, _gram(model, pooled[0]), pooled[2]
        )
        given = xp.sum(weights * losses)
        # Chosen on the device (no host read), so the projection compiles as one function.
        better = xp.sum(weights * pooled_losses) < given - TIE * (1.0 + given)
        lkl_params = xp.where(better, pooled[0], lkl_params)
        means = xp.where(better, pooled[1], means)
        precisions = xp.where(better, pooled_precisions, precisions)
    locations = (precisions @ means[..., None])[..., 0]
    components = full.join_location_precision(locations, PositiveDefinite().pack(precisions))
    prior_upper = model.prior_upper
    prior = prior_upper.join_natural_mixture(components, prior_upper.pst_man.from_probs(weights))
    return model._join_exact_prior(lkl_params, prior)


def em_warm_start(
    model: Restricted,
    xs: Any,
    sample: Any,
    seed: int,
    cold: Any,
    settings: Any,
    regularization: Regularization,
) -> Any:
    """Start for gradient training: the more likely of ``cold`` and the projected EM fit.

    Parameters
    ----------
    model : DifferentiableHMoG or SymmetricHMoG
        The model to train (see :func:`has_warm_start`).
    xs : array, shape (N, p)
        Training data (standardised).
    sample : array, shape (n, p)
        Rows the starts are computed from.
    seed : int
        Seed of this restart.
    cold : array, shape (model.dim,)
        The usual start of ``model``.
    settings : HMoG
        The estimator's hyper-parameters (``init``, ``reg_covar``, ``noise_floor``,
        ``max_iter``, ``tol``, ``accelerate``).
    regularization : Regularization
        EM stabilisers.

    Returns
    -------
    array, shape (model.dim,)
        Natural parameters of ``model``.
    """
    lower = model.lower_harmonium
    analytic = analytic_hmog(lower.obs_dim, lower.obs_rep, model.lat_dim, model.n_components)
    start = starting_point(
        analytic, sample, settings.init, seed, settings.reg_covar, settings.noise_floor
    )
    fit = fit_em(
        analytic,
        start,
        xs,
        max_iter=settings.max_iter,
        tol=settings.tol,
        regularization=regularization,
        accelerate=settings.accelerate,
    )
    try:
        warm = _compiled_projection(model, analytic, fit.params)
        warm_score = float(compiled_average(model, warm, xs))
    except (ValueError, ArithmeticError):  # ValidationError is a ValueError
        return cold
    cold_score = float(compiled_average(model, cold, xs))
    # A projection that failed under jit (no value checks there) scores NaN: never kept.
    return warm if warm_score > cold_score else cold


def _projection(model: Restricted, analytic: Any, params: Any) -> Any:
    lkl_params, _ = analytic.split_conjugated(params)
    return project_to_family(model, lkl_params, analytic.to_generative(params))


#: One compiled function on JAX (hundreds of small operations, each compiled on first use,
#: otherwise).
_compiled_projection = B.jit(_projection, static_argnums=(0, 1))


__all__ = [
    "em_warm_start",
    "has_warm_start",
    "kl_posterior_precisions",
    "pooled_basis",
    "project_to_family",
]
