"""Batched posteriors of an HMoG: every observation against every component at once.

Given ``x``, the posterior over ``(y, z)`` is the upper mixture with every component's linear
term shifted by the same ``u = Wᵀx``. Component precisions do not depend on ``x``, so their
factors ``Λ_k = L_k L_kᵀ`` are computed once per call; then for all observations together

* ``w_k(x) = L_k⁻¹ (h_k + u)`` — one triangular solve per component with ``N`` right-hand
  sides, laid out ``(K, d, N)``;
* ``ψ_k(x) = ½ |w_k(x)|² − ½ log|Λ_k|``, the log-partition of component ``k`` given ``x``;
* posterior logits ``θ_{z,k} + ψ_k(x)`` (``θ_{z,0} = 0``), whose log-sum-exp is
  ``ψ_mix(posterior(x))`` and whose softmax are the responsibilities;
* component means ``μ_k(x) = L_k⁻ᵀ w_k(x)`` and covariances ``Λ_k⁻¹``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from hmog_xp import _backend as B

if TYPE_CHECKING:
    from hmog_xp.harmoniums import Mixture


class ComponentPosteriors(NamedTuple):
    """Per-component posterior quantities for a batch of ``N`` observations.

    Attributes
    ----------
    logits : array, shape (N, K)
        ``θ_{z,k} + ψ_k(x)``; log-sum-exp over ``k`` is ``ψ_mix(posterior(x))``.
    means : array, shape (K, N, d)
        Component posterior means ``μ_k(x)``.
    covariances : array, shape (K, rep.size(d))
        Component posterior covariances (x-independent), plain storage.
    """

    logits: Any
    means: Any
    covariances: Any


def component_posteriors(upper: Mixture, upper_params: Any, shift: Any) -> ComponentPosteriors:
    """Posterior quantities of every component for linear shifts ``u`` of shape (N, d).

    Parameters
    ----------
    upper : Mixture
        The posterior upper mixture (``pst_upr_hrm``).
    upper_params : array, shape (upper.dim,)
        Its natural parameters before the shift.
    shift : array, shape (N, d)
        ``Wᵀ x`` for each observation.

    Returns
    -------
    ComponentPosteriors
        Logits, component means and covariances.
    """
    xp = B.array_namespace(upper_params, shift)
    family = upper.component_man
    lkl_dim = upper.lkl_dim
    components = upper.components_from_likelihood(upper_params[..., :lkl_dim])  # (K, dim)
    location, precision = family.split_location_precision(components)
    factors = family.cholesky_factor(precision, "posterior component precision")
    shifted = location[:, :, None] + xp.matrix_transpose(shift)[None, :, :]  # (K, d, N)
    white = family.rep.factor_solve_matrix(factors, shifted)
    logdets = family.rep.factor_logdet(factors, family.n)  # (K,)
    log_partitions = 0.5 * xp.sum(white * white, axis=-2) - 0.5 * logdets[:, None]  # (K, N)
    means = family.rep.factor_solve_matrix(factors, white, transpose=True)  # (K, d, N)
    weights = upper_params[..., lkl_dim:]
    zero = xp.zeros((1,), dtype=weights.dtype, device=B.device_of(weights))
    logits = xp.matrix_transpose(log_partitions) + xp.concat([zero, weights])
    covariances = family.rep.factor_inverse(factors, family.n)
    return ComponentPosteriors(logits, xp.matrix_transpose(means), covariances)


def responsibilities(posteriors: ComponentPosteriors) -> Any:
    """Posterior component probabilities, shape (N, K).

    Parameters
    ----------
    posteriors : ComponentPosteriors
        Output of :func:`component_posteriors`.

    Returns
    -------
    array, shape (N, K)
        ``softmax`` of the logits.
    """
    xp = B.array_namespace(posteriors.logits)
    return B.softmax(posteriors.logits, axis=-1, xp=xp)


def latent_means(posteriors: ComponentPosteriors, probs: Any) -> Any:
    """Posterior means ``E[y | x] = Σ_k p(k | x) μ_k(x)``, shape (N, d).

    Parameters
    ----------
    posteriors : ComponentPosteriors
        Output of :func:`component_posteriors`.
    probs : array, shape (N, K)
        Responsibilities.

    Returns
    -------
    array, shape (N, d)
        Factor scores.
    """
    xp = B.array_namespace(probs)
    return xp.sum(xp.matrix_transpose(probs)[:, :, None] * posteriors.means, axis=0)


def average_upper_statistics(upper: Mixture, posteriors: ComponentPosteriors, probs: Any) -> Any:
    """``mean_n E[s_upper(y, z) | x_n]``: the E-step's upper-mixture mean coordinates.

    With ``R_k = mean_n r_nk`` the weighted component statistics are
    ``(mean_n r_nk μ_nk, R_k Σ_k + mean_n r_nk μ_nk μ_nkᵀ)`` (second moments in the component
    rep's statistic storage), accumulated with one batched product per component axis.

    Parameters
    ----------
    upper : Mixture
        The posterior upper mixture.
    posteriors : ComponentPosteriors
        Output of :func:`component_posteriors`.
    probs : array, shape (N, K)
        Responsibilities.

    Returns
    -------
    array, shape (upper.dim,)
        Mean coordinates of the upper mixture.
    """
    xp = B.array_namespace(probs)
    family = upper.component_man
    n_obs = probs.shape[0]
    weights_t = xp.matrix_transpose(probs)  # (K, N)
    totals = xp.mean(weights_t, axis=-1)  # (K,)
    weighted_means = (weights_t[:, None, :] @ posteriors.means)[:, 0, :] / n_obs  # (K, d)
    weighted_outer = (
        xp.matrix_transpose(weights_t[:, :, None] * posteriors.means) @ posteriors.means
    ) / n_obs  # (K, d, d)
    second = family.rep.pack_statistic(weighted_outer) + totals[:, None] * (
        family.rep.packed_to_statistic(posteriors.covariances, family.n)
    )
    weighted = xp.concat([weighted_means, second], axis=-1)
    return upper.join_weighted_mean_mixture(weighted, totals)
