"""Batched posteriors of an HMoG: every observation against every component at once.

Given ``x``, the posterior over ``(y, z)`` is the upper mixture with every component's linear
term shifted by the same ``u = Wᵀx``. Component precisions ``Λ_k`` do not depend on ``x``;
their inverses ``Σ_k`` and log-determinants are computed once per call (``K`` small
factorisations). Then, for all observations together,

* component means ``μ_k(x) = Σ_k (h_k + u) = Σ_k h_k + Σ_k u`` — the second term for every
  ``(x, k)`` pair is one ``(N, d) x (d, K d)`` GEMM;
* ``ψ_k(x) = ½ (h_k + u)ᵀ μ_k(x) − ½ log|Λ_k|``, the log-partition of component ``k`` given
  ``x`` (elementwise);
* posterior logits ``θ_{z,k} + ψ_k(x)`` (``θ_{z,0} = 0``), whose log-sum-exp is
  ``ψ_mix(posterior(x))`` and whose softmax are the responsibilities.

No per-observation factorisation or triangular solve: the per-observation work is GEMMs and
elementwise operations, ``O(N K d²)`` in all.
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
    means : array, shape (N, K, d)
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
    rep, lkl_dim = family.rep, upper.lkl_dim
    components = upper.components_from_likelihood(upper_params[..., :lkl_dim])  # (K, dim)
    location, precision = family.split_location_precision(components)  # (K, d), (K, size)
    factors = family.cholesky_factor(precision, "posterior component precision")
    covariances = rep.factor_inverse(factors, family.n)
    logdets = rep.factor_logdet(factors, family.n)  # (K,)
    means = rep.matvec(covariances, location)[None, :, :] + rep.matvec_all(covariances, shift)
    # (h_k + u)ᵀ μ_k, shape (N, K); vecdot and a batched product beat sum(a * b, axis=-1)
    quadratic = xp.vecdot(location[None, :, :], means) + (means @ shift[:, :, None])[..., 0]
    weights = upper_params[..., lkl_dim:]
    zero = xp.zeros((1,), dtype=weights.dtype, device=B.device_of(weights))
    logits = 0.5 * quadratic - 0.5 * logdets[None, :] + xp.concat([zero, weights])
    return ComponentPosteriors(logits, means, covariances)


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
    return (probs[:, None, :] @ posteriors.means)[:, 0, :]


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
    n_obs = probs.shape[0]
    weighted, totals = weighted_upper_sums(upper, posteriors, probs)
    return upper.join_weighted_mean_mixture(weighted / n_obs, totals / n_obs)


def weighted_upper_sums(
    upper: Mixture, posteriors: ComponentPosteriors, probs: Any
) -> tuple[Any, Any]:
    """Responsibility-weighted sums of component statistics over a batch.

    Parameters
    ----------
    upper : Mixture
        The posterior upper mixture.
    posteriors : ComponentPosteriors
        Output of :func:`component_posteriors`.
    probs : array, shape (N, K)
        Responsibilities (already multiplied by any row weights).

    Returns
    -------
    weighted : array, shape (K, component_man.dim)
        ``Σ_n r_nk (μ_nk, s₂(μ_nk) + stat(Σ_k))``.
    totals : array, shape (K,)
        ``Σ_n r_nk``.
    """
    xp = B.array_namespace(probs)
    family = upper.component_man
    totals = xp.sum(probs, axis=0)  # (K,)
    weighted_means = xp.sum(probs[:, :, None] * posteriors.means, axis=0)  # (K, d)
    second = family.rep.weighted_outer_statistic(probs, posteriors.means) + totals[:, None] * (
        family.rep.packed_to_statistic(posteriors.covariances, family.n)
    )
    return xp.concat([weighted_means, second], axis=-1), totals
