"""Explicit stabilisers for EM: covariance floors and pseudo-counts, applied in mean coordinates.

The exact M-step is ``to_natural(whiten_prior(η))`` with ``η`` the mean posterior statistics.
On real data that step can reach the boundary of the parameter space: a constant column
makes a noise variance zero, a component that loses all its points has undefined moments.
:class:`Regularization` moves ``η`` into the interior first, and only where the exact step
would leave it, so a fixed point of exact EM whose variances clear the floors is a fixed
point of the stabilised EM too:

* ``min_variance`` is a floor on the noise variances the M-step will produce. From the same
  mean coordinates, ``Ψ = Cov[x] − C S⁻¹ Cᵀ`` with ``C = Cov[x, y]`` and ``S = Cov[y]`` the
  latent marginal covariance (after the ``reg_covar`` floor below); wherever a variance
  ``Ψ_j`` falls below the floor, ``max(0, min_variance − Ψ_j)`` is added to ``Cov[x]_jj``,
  which raises ``Ψ_j`` to exactly ``min_variance`` and changes nothing else (the loadings
  ``C S⁻¹`` do not depend on ``Cov[x]``). ``Scale`` noise floors its one shared variance;
  ``PositiveDefinite`` noise floors the eigenvalues of ``Ψ`` (``Ψ + V max(0, floor − λ) Vᵀ``).
* ``min_weight`` mixes a pseudo-count of the pooled latent moments into every component:
  ``π_k ← (π_k + ε) / (1 + Kε)`` and ``π_k η_k ← (π_k η_k + ε η_total) / (1 + Kε)``, so an
  emptied component falls back to the latent marginal instead of ``0 / 0``. The pooled
  moments ``η_total`` are unchanged. (It moves every fixed point by ``O(ε)``; the estimator
  uses ``ε`` = 10 machine epsilons.)
* ``reg_covar`` is a floor on the eigenvalues of every latent component covariance:
  ``Σ_k ← Σ_k + V_k max(0, reg_covar − λ_k) V_kᵀ`` (``Σ_k = V_k diag(λ_k) V_kᵀ``), so a
  component never collapses onto a lower-dimensional set, and one whose eigenvalues all
  clear the floor is left exactly as it is. (scikit-learn's ``GaussianMixture`` instead
  adds ``reg_covar`` to every covariance at every step, which shifts interior optima.)

All three are zero by default, which is exact EM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

from hmog_xp import _backend as B
from hmog_xp.harmoniums.stabilizers import (
    Regularization,
    add_pseudo_weight,
    floor_covariances,
    floor_noise_variances,
)
from hmog_xp.hmog._mean_parts import MeanParts, _MixtureCoords, split_mean_parts

if TYPE_CHECKING:
    from hmog_xp.families import Normal

__all__ = ["regularize_means", "regularized_mixture"]


class _HMoGLike(_MixtureCoords, Protocol):
    @property
    def obs_man(self) -> Normal: ...


def regularized_mixture(
    model: _MixtureCoords, parts: MeanParts, regularization: Regularization
) -> tuple[Any, Any, Any, Any, Any]:
    """Mean coordinates by part, with the pseudo-weight and covariance floor applied.

    The noise floor is left to the caller: the fused M-step applies it to the noise it
    computes (:func:`~hmog_xp.harmoniums.stabilizers.noise_floor_lift`), and
    :func:`regularize_means` to ``Cov[x]``.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        A model with a complete upper mixture (``AnalyticHMoG``).
    parts : MeanParts
        Mean posterior statistics by part.
    regularization : Regularization
        The stabilisers (see the module docstring).

    Returns
    -------
    obs_means : array, shape (obs_man.dim,)
        Mean coordinates of ``x`` (not floored).
    cross : array, shape (p, d)
        ``E[x yᵀ]``.
    total : array, shape (Normal(d).dim,)
        Mean coordinates of the latent marginal ``Σ_k π_k η_k``.
    components : array, shape (K, Normal(d).dim)
        Mean coordinates of each latent component.
    weights : array, shape (K,)
        Component weights.
    """
    xp = B.array_namespace(parts.weighted, parts.weights)
    obs_means, cross, weighted, weights = parts
    total = xp.sum(weighted, axis=-2)  # the pooled moments: a pseudo-weight keeps them
    if regularization.min_weight == 0.0 and regularization.reg_covar == 0.0:
        return obs_means, cross, total, weighted / weights[..., :, None], weights
    components, weights = add_pseudo_weight(weighted, weights, regularization.min_weight)
    if regularization.reg_covar > 0.0:
        family = model.posterior_upper.component_man
        floored = floor_covariances(family, components, regularization.reg_covar)
        if floored is not components:  # a floor may have acted: the pooled moments follow
            components = floored
            total = xp.sum(weights[..., :, None] * components, axis=-2)
    return obs_means, cross, total, components, weights


def regularize_means(model: _HMoGLike, means: Any, regularization: Regularization) -> Any:
    """Apply ``regularization`` to mean coordinates before the M-step.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        A model with a complete upper mixture (``AnalyticHMoG``).
    means : array, shape (dim,)
        Mean posterior statistics.
    regularization : Regularization
        The stabilisers (see the module docstring).

    Returns
    -------
    array, shape (dim,)
        Regularised mean coordinates (``means`` itself when every stabiliser is zero).
    """
    if regularization.is_exact:
        return means
    obs_means, cross, total, components, weights = regularized_mixture(
        model, split_mean_parts(model, means), regularization
    )
    if regularization.min_variance > 0.0:
        obs_means = floor_noise_variances(
            model.obs_man, obs_means, cross, total, regularization.min_variance
        )
    upper = model.posterior_upper
    return model.join_coords(obs_means, cross, upper.join_mean_mixture(components, weights))
