"""Explicit stabilisers for EM: covariance floors and pseudo-counts, applied in mean coordinates.

The exact M-step is ``to_natural(whiten_prior(η))`` with ``η`` the mean posterior statistics.
On real data that step can reach the boundary of the parameter space: a constant column
makes a noise variance zero, a component that loses all its points has undefined moments.
:class:`Regularization` moves ``η`` a known, documented distance into the interior first:

* ``min_variance`` is added to the diagonal of the observable covariance ``Cov[x]``. The
  M-step's noise is ``Ψ = Cov[x] − Cov[x, y] Cov[y]⁻¹ Cov[y, x]``, so every noise variance
  grows by exactly ``min_variance`` (for ``Scale`` noise, the shared variance does).
* ``min_weight`` mixes a pseudo-count of the pooled latent moments into every component:
  ``π_k ← (π_k + ε) / (1 + Kε)`` and ``π_k η_k ← (π_k η_k + ε η_total) / (1 + Kε)``, so an
  emptied component falls back to the latent marginal instead of ``0 / 0``. The pooled
  moments ``η_total`` are unchanged.
* ``reg_covar`` is added to the diagonal of every latent component covariance (the role it
  has in scikit-learn's ``GaussianMixture``).

All three are zero by default, which is exact EM.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hmog_xp import _backend as B
from hmog_xp.harmoniums.closed_form import Regularization

if TYPE_CHECKING:
    from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians

__all__ = ["regularize_means"]


def regularize_means(
    model: HierarchicalMixtureOfGaussians, means: Any, regularization: Regularization
) -> Any:
    """Apply ``regularization`` to mean coordinates before the M-step.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        A model with a complete upper mixture (``AnalyticHMoG``).
    means : array, shape (dim,)
        Mean posterior statistics.
    regularization : Regularization
        The stabilisers.

    Returns
    -------
    array, shape (dim,)
        Regularised mean coordinates (``means`` itself when every stabiliser is zero).
    """
    if regularization.is_exact:
        return means
    xp = B.array_namespace(means)
    obs_means, cross, upper_means = model.split_coords(means)
    observable = model.obs_man
    if regularization.min_variance > 0.0:
        obs_means = observable.regularize_covariance(obs_means, regularization.min_variance)
    upper = model.posterior_upper
    weighted, weights = upper.split_weighted_mean_mixture(upper_means)
    total = xp.sum(weighted, axis=-2)
    pseudo = regularization.min_weight
    scale = 1.0 + model.n_components * pseudo
    weights = (weights + pseudo) / scale
    weighted = (weighted + pseudo * total) / scale
    components = weighted / weights[:, None]
    family = upper.component_man
    if regularization.reg_covar > 0.0:
        components = family.regularize_covariance(components, regularization.reg_covar)
    return model.join_coords(obs_means, cross, upper.join_mean_mixture(components, weights))
