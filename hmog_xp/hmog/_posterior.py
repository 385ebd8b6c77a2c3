"""Batched posteriors of an HMoG: every observation against every component at once.

Given ``x``, the posterior over ``(y, z)`` is the upper mixture with every component's linear
term shifted by the same ``u = Wᵀx``. Component precisions ``Λ_k`` do not depend on ``x``;
their inverses ``Σ_k``, log-determinants and *centres* ``c_k = Σ_k h_k`` are computed once per
parameter vector (:func:`component_terms`, ``K`` small factorisations) and reused for every
chunk of observations. Each component mean is the centre plus a *spread*,
``μ_k(x) = c_k + Σ_k u``, and

* the spreads ``Σ_k u`` for every ``(x, k)`` pair are one ``(N, d) x (d, K d)`` GEMM;
* ``ψ_k(x) = ½ (h_k + u)ᵀ Σ_k (h_k + u) − ½ log|Λ_k|
  = ½ (h_k·c_k + 2 u·c_k + u·Σ_k u) − ½ log|Λ_k|``: a ``(N, d) x (d, K)`` GEMM and one
  pass over the spreads;
* posterior logits ``θ_{z,k} + ψ_k(x)`` (``θ_{z,0} = 0``), whose log-sum-exp is
  ``ψ_mix(posterior(x))`` and whose softmax are the responsibilities ``r``;
* the E-step sums need only ``rᵀ U`` and ``Σ_n r_nk u_n u_nᵀ`` (GEMMs): with
  ``a_k = Σ_k Σ_n r_nk u_n``, ``Σ_n r_nk μ_nk = R_k c_k + a_k`` and
  ``Σ_n r_nk μ_nk μ_nkᵀ = R_k c_k c_kᵀ + c_k a_kᵀ + a_k c_kᵀ + Σ_k (Σ_n r_nk u_n u_nᵀ) Σ_k``.

No per-observation factorisation or solve: ``O(N K d²)`` work in GEMMs and a few passes.

Rows far from the data: :mod:`hmog_xp.hmog._far_rows` (``rows`` of the posteriors).
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
    centers : array, shape (K, d)
        ``c_k = Σ_k h_k``, the component means at ``u = 0``.
    spreads : array, shape (N, K, d)
        ``Σ_k u`` for every observation and component.
    shift : array, shape (N, d)
        ``u = Wᵀ x``.
    covariances : array, shape (K, rep.size(d))
        Component posterior covariances ``Σ_k`` (x-independent), plain storage.
    rows : RowLogits, optional
        The logits of far rows, at scale (see :class:`RowLogits`).
    shift_statistic : array, shape (N, rep.size(d)), optional
        ``rep.outer_statistic(u)``, where the logits were made from it (the M-step's second
        moments reuse it).
    """

    logits: Any
    centers: Any
    spreads: Any
    shift: Any
    covariances: Any
    rows: RowLogits | None = None
    shift_statistic: Any = None


class RowLogits(NamedTuple):
    """Logits of every row and component as ``L_k = s (s G_k + H_k) + C_k`` (see the module).

    Attributes
    ----------
    quadratic : array, shape (N, K)
        ``G_k``: the degree-2 part at ``x / s``.
    linear : array, shape (N, K)
        ``H_k``: the degree-1 part at ``x / s``.
    constant : array, shape (K,)
        ``C_k``.
    scale : array, shape (N, 1)
        Row scales ``s >= 1``.
    peak : array, shape (N,)
        ``max_k L_k`` (``±inf`` where it is not representable).
    """

    quadratic: Any
    linear: Any
    constant: Any
    scale: Any
    peak: Any


class ComponentTerms(NamedTuple):
    """The x-independent part of the posteriors: one factorisation per component.

    Attributes
    ----------
    location : array, shape (K, d)
        Component linear terms ``h_k`` before the shift.
    centers : array, shape (K, d)
        ``c_k = Σ_k h_k``.
    covariances : array, shape (K, rep.size(d))
        ``Σ_k = Λ_k⁻¹``, plain storage.
    logdets : array, shape (K,)
        ``log |Λ_k|``.
    log_weights : array, shape (K,)
        Categorical natural parameters with the leading zero, ``(0, θ_z)``.
    """

    location: Any
    centers: Any
    covariances: Any
    logdets: Any
    log_weights: Any


def component_terms(upper: Mixture, upper_params: Any) -> ComponentTerms:
    """Factorise every component precision once (reused for every chunk of observations).

    Parameters
    ----------
    upper : Mixture
        The posterior upper mixture (``pst_upr_hrm``).
    upper_params : array, shape (upper.dim,)
        Its natural parameters before the shift.

    Returns
    -------
    ComponentTerms
        Locations, centres, covariances, log-determinants and log-weights.
    """
    xp = B.array_namespace(upper_params)
    family = upper.component_man
    rep, lkl_dim = family.rep, upper.lkl_dim
    components = upper.components_from_likelihood(upper_params[..., :lkl_dim])  # (K, dim)
    location, precision = family.split_location_precision(components)  # (K, d), (K, size)
    factors = family.cholesky_factor(precision, "posterior component precision")
    covariances = rep.factor_inverse(factors, family.n)
    logdets = rep.factor_logdet(factors, family.n)  # (K,)
    centers = rep.matvec(covariances, location)  # (K, d)
    weights = upper_params[..., lkl_dim:]
    zero = xp.zeros((1,), dtype=weights.dtype, device=B.device_of(weights))
    return ComponentTerms(location, centers, covariances, logdets, xp.concat([zero, weights]))


def posteriors_at(upper: Mixture, terms: ComponentTerms, shift: Any) -> ComponentPosteriors:
    """Posterior quantities of every component for linear shifts ``u`` of shape (N, d).

    Parameters
    ----------
    upper : Mixture
        The posterior upper mixture (gives the covariance rep).
    terms : ComponentTerms
        Output of :func:`component_terms`.
    shift : array, shape (N, d)
        ``Wᵀ x`` for each observation.

    Returns
    -------
    ComponentPosteriors
        Logits, centres, spreads, shifts, covariances and the shifts' outer statistics.
    """
    xp = B.array_namespace(terms.centers, shift)
    centers, covariances = terms.centers, terms.covariances
    family = upper.component_man
    rep = family.rep
    spreads = rep.matvec_all(covariances, shift)  # (N, K, d)
    # uᵀΣ_k u for every (x, k) as one GEMM of the packed outer products of u with the packed
    # Σ_k (no pass over the (N, K, d) spreads); the second moments reuse those products.
    statistic = rep.outer_statistic(shift)  # (N, size)
    # ½ (h_k + u)ᵀ Σ_k (h_k + u) − ½ log|Λ_k| + θ_{z,k}: the x-independent part is (K,)
    offsets = 0.5 * (B.vecdot(terms.location, centers, xp=xp) - terms.logdets) + terms.log_weights
    half_quadratic = 0.5 * rep.packed_to_quadratic(covariances, family.n)  # (K, size)
    logits = (
        shift @ xp.matrix_transpose(centers)
        + statistic @ xp.matrix_transpose(half_quadratic)
        + offsets
    )  # (N, K)
    return ComponentPosteriors(
        logits, centers, spreads, shift, covariances, shift_statistic=statistic
    )


def component_means(posteriors: ComponentPosteriors) -> Any:
    """Component posterior means ``μ_k(x) = c_k + Σ_k u``, shape (N, K, d).

    Parameters
    ----------
    posteriors : ComponentPosteriors
        Output of :func:`posteriors_at`.

    Returns
    -------
    array, shape (N, K, d)
        Means for every observation and component.
    """
    spreads = posteriors.spreads
    if posteriors.rows is not None:  # spreads at scale
        spreads = posteriors.rows.scale[:, :, None] * spreads
    return posteriors.centers[None, :, :] + spreads


def responsibilities(posteriors: ComponentPosteriors) -> Any:
    """Posterior component probabilities, shape (N, K).

    Parameters
    ----------
    posteriors : ComponentPosteriors
        Output of :func:`posteriors_at`.

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
        Output of :func:`posteriors_at`.
    probs : array, shape (N, K)
        Responsibilities.

    Returns
    -------
    array, shape (N, d)
        Factor scores.
    """
    xp = B.array_namespace(probs)
    if posteriors.rows is None:
        return probs @ posteriors.centers + B.row_weighted_sums(probs, posteriors.spreads, xp=xp)
    spread = B.row_weighted_sums(probs, posteriors.spreads, xp=xp)  # at scale
    return probs @ posteriors.centers + posteriors.rows.scale * spread


def weighted_upper_sums(
    upper: Mixture, posteriors: ComponentPosteriors, probs: Any
) -> tuple[Any, Any]:
    """Responsibility-weighted sums of component statistics over a batch.

    Parameters
    ----------
    upper : Mixture
        The posterior upper mixture.
    posteriors : ComponentPosteriors
        Output of :func:`posteriors_at`.
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
    rep, centers = family.rep, posteriors.centers
    totals = xp.sum(probs, axis=0)  # R_k
    spread_sums = rep.matvec(
        posteriors.covariances, xp.matrix_transpose(probs) @ posteriors.shift
    )  # a_k = Σ_k Σ_n r_nk u_n
    weighted_means = totals[:, None] * centers + spread_sums
    center_outers = rep.outer_statistic(centers)
    cross_terms = (
        rep.outer_statistic(centers + spread_sums)
        - center_outers
        - rep.outer_statistic(spread_sums)
    )  # stat(c aᵀ + a cᵀ)
    second = (
        totals[:, None]
        * (center_outers + rep.packed_to_statistic(posteriors.covariances, family.n))
        + cross_terms
        + rep.sandwich_statistic(
            posteriors.covariances, probs, posteriors.shift, posteriors.shift_statistic
        )
    )
    return xp.concat([weighted_means, second], axis=-1), totals
