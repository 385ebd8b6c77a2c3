"""Exact marginal densities of rows with missing entries (diagonal or isotropic noise).

Under an HMoG the observed entries ``x_O`` of a row are a Gaussian mixture,
``Σ_k π_k N(A_O μ_k + b_O, A_O Σ_k A_Oᵀ + Ψ_O)``. With diagonal noise the ``|O| × |O|``
covariance never has to be formed: writing ``ω_j = 1/ψ_j`` for an observed entry and ``0`` for
a missing one, ``G = Aᵀ diag(ω) A`` (``d × d``), ``s = Aᵀ (ω ∘ (x − b))`` and
``q = Σ ω (x − b)²``, the matrix determinant lemma and Woodbury's identity give, with
``M_k = Σ_k⁻¹ + G`` and ``u_k = s − G μ_k``,

* ``log |C_k| = Σ_O log ψ_j + log |Σ_k| + log |M_k|``,
* ``e_kᵀ C_k⁻¹ e_k = q − 2 μ_k·s + μ_kᵀ G μ_k − u_kᵀ M_k⁻¹ u_k``,

so a row costs ``O(p d² + K d³)`` whatever its pattern of missing entries. A row with no
missing entry gives the complete-data density. The same quantities give the posterior:
``y | x_O, z = k`` has precision ``M_k`` and mean ``μ_k + M_k⁻¹ u_k``, the responsibilities
are the normalised component terms, and ``E[x_M | x_O] = Σ_k r_k (A_M E[y | x_O, k] + b_M)``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.hmog._missing_rows import (
    batched_posteriors,
    grid_posteriors,
    grid_sums,
    lower_pairs,
    observable_sums,
)
from hmog_xp.reps import PositiveDefinite

if TYPE_CHECKING:
    from hmog_xp.hmog._missing_patterns import PatternTerms
    from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians

__all__ = [
    "ComponentTerms",
    "ObservedPosteriors",
    "assemble_statistics",
    "chunk_sums",
    "component_terms",
    "expected_statistics",
    "impute_conditional_mean",
    "observed_posteriors",
    "row_sums",
    "split_missing",
]

#: Latent dimensions up to which the per-row systems are factorised entry by entry.
SMALL_DIM = 12


class ObservedPosteriors(NamedTuple):
    """What the observed entries of each row say about its component and factors.

    Attributes
    ----------
    logits : array, shape (N, K)
        ``log π_k + log N(x_O; A_O μ_k + b_O, C_k)``: their log-sum-exp is ``log p(x_O)``.
    latent_means : array, shape (N, K, d)
        ``E[y | x_O, z = k]``.
    latent_covariances : array, shape (N, K, d, d)
        ``Cov[y | x_O, z = k] = M_k⁻¹``.
    loadings : array, shape (p, d)
        ``A``.
    bias : array, shape (p,)
        ``b``.
    noise : array, shape (p,)
        The noise variances ``ψ_j``.
    """

    logits: Any
    latent_means: Any
    latent_covariances: Any
    loadings: Any
    bias: Any
    noise: Any

    def log_density(self) -> Any:
        """Return ``log p(x_O)`` of every row, shape (N,)."""
        return B.logsumexp(self.logits, axis=-1, xp=B.array_namespace(self.logits))

    def responsibilities(self) -> Any:
        """Return ``p(z = k | x_O)``, shape (N, K)."""
        return B.softmax(self.logits, axis=-1, xp=B.array_namespace(self.logits))


def impute_conditional_mean(posteriors: ObservedPosteriors, xs: Any, observed: Any) -> Any:
    """Replace every missing entry by ``E[x_j | x_O]`` (observed entries untouched).

    Parameters
    ----------
    posteriors : ObservedPosteriors
        From :func:`observed_posteriors` of the same rows.
    xs : array, shape (N, p)
        Observations.
    observed : array of bool, shape (N, p)
        Which entries are observed.

    Returns
    -------
    array, shape (N, p)
        The completed rows.
    """
    xp = B.array_namespace(xs)
    probs = posteriors.responsibilities()
    latent = xp.sum(probs[:, :, None] * posteriors.latent_means, axis=-2)  # E[y | x_O]
    predicted = latent @ xp.matrix_transpose(posteriors.loadings) + posteriors.bias
    return xp.where(observed, xs, predicted)


def split_missing(chunk: Any) -> tuple[Any, Any]:
    """Split rows with NaN holes into finite values and the observed-entry mask.

    Parameters
    ----------
    chunk : array, shape (m, p)
        Observations (NaN: missing).

    Returns
    -------
    filled : array, shape (m, p)
        ``chunk`` with every NaN replaced by 0 (a 0-d fill: no ``(m, p)`` zeros).
    observed : array of bool, shape (m, p)
        Which entries are observed.
    """
    xp = B.array_namespace(chunk)
    observed = xp.logical_not(xp.isnan(chunk))
    zero = xp.zeros((), dtype=chunk.dtype, device=B.device_of(chunk))
    return xp.where(observed, chunk, zero), observed


class ComponentTerms(NamedTuple):
    """The row-independent part of :func:`observed_posteriors` (one per parameter vector).

    Attributes
    ----------
    weights : array, shape (K,)
        ``π_k``.
    means : array, shape (K, d)
        ``μ_k``.
    inverse_covariances : array, shape (K, d, d)
        ``Σ_k⁻¹``.
    covariance_logdets : array, shape (K,)
        ``log |Σ_k|``.
    loadings : array, shape (p, d)
        ``A``.
    bias : array, shape (p,)
        ``b``.
    noise : array, shape (p,)
        The noise variances ``ψ_j``.
    """

    weights: Any
    means: Any
    inverse_covariances: Any
    covariance_logdets: Any
    loadings: Any
    bias: Any
    noise: Any


def component_terms(model: HierarchicalMixtureOfGaussians, params: Any) -> ComponentTerms:
    """The generative parameters and the component factorisations, computed once.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model (diagonal or isotropic noise).
    params : array, shape (dim,)
        Natural parameters.

    Returns
    -------
    ComponentTerms
        What every row chunk reuses.

    Raises
    ------
    ValidationError
        For full noise.
    """
    if model.lower_harmonium.obs_rep == PositiveDefinite():
        msg = (
            "marginalising missing entries needs diagonal or isotropic noise; the model has "
            "full noise (PositiveDefinite)"
        )
        raise ValidationError(msg)
    xp = B.array_namespace(params)
    weights, means, covariances, loadings, bias, noise = model.to_generative(params)
    p = loadings.shape[0]
    factor = B.cholesky(covariances, xp=xp)  # (K, d, d)
    identity = xp.eye(covariances.shape[-1], dtype=params.dtype, device=B.device_of(params))
    inverse = B.cholesky_solve(factor, xp.broadcast_to(identity, covariances.shape), xp=xp)
    variances = xp.broadcast_to(xp.reshape(noise, (-1,)), (p,))
    return ComponentTerms(
        weights, means, inverse, B.cholesky_logdet(factor, xp=xp), loadings, bias, variances
    )


def observed_posteriors(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    observed: Any,
    terms: ComponentTerms | None = None,
) -> ObservedPosteriors:
    """Component terms and latent posterior means of every row given its observed entries.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model (diagonal or isotropic noise).
    params : array, shape (dim,)
        Natural parameters.
    xs : array, shape (N, p)
        Observations; entries where ``observed`` is False are ignored (any finite value).
    observed : array of bool, shape (N, p)
        Which entries are observed.
    terms : ComponentTerms, optional
        :func:`component_terms` of ``params`` (computed here if not given; chunked callers
        compute them once).

    Returns
    -------
    ObservedPosteriors
        ``log_density()`` is ``log p(x_O)`` of every row, marginalising its missing entries
        exactly.

    Raises
    ------
    ValidationError
        For full noise (not supported) or mismatched shapes.
    """
    B.array_namespace(params, xs)  # one namespace for both
    if tuple(observed.shape) != tuple(xs.shape):
        msg = f"observed must have the shape of xs {tuple(xs.shape)}; got {tuple(observed.shape)}"
        raise ValidationError(msg)
    terms = component_terms(model, params) if terms is None else terms
    small = terms.means.shape[-1] <= SMALL_DIM
    posteriors = (grid_posteriors if small else batched_posteriors)(terms, xs, observed)
    return ObservedPosteriors(*posteriors, terms.loadings, terms.bias, terms.noise)


def expected_statistics(
    model: HierarchicalMixtureOfGaussians, posteriors: ObservedPosteriors, xs: Any, observed: Any
) -> Any:
    """The E-step with missing entries: mean coordinates of the expected complete-data statistics.

    A missing entry contributes its conditional moments given the row's factors,
    ``E[x_j | y] = a_jᵀ y + b_j`` and ``Var[x_j | y] = ψ_j``, averaged over
    ``y | x_O, z`` (Ghahramani & Jordan's EM for factor analysers with missing data); an
    observed entry contributes itself. ``model.mstep`` of the result is one EM step, which
    never decreases the observed-data log-likelihood.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model (a complete upper mixture).
    posteriors : ObservedPosteriors
        :func:`observed_posteriors` of these rows under the current parameters.
    xs : array, shape (N, p)
        Observations.
    observed : array of bool, shape (N, p)
        Which entries are observed.

    Returns
    -------
    array, shape (dim,)
        ``(E[s_x(x)], E[x yᵀ], E[s_upper(y, z)])`` averaged over the rows.
    """
    xp = B.array_namespace(xs)
    ones = xp.ones((xs.shape[0],), dtype=xs.dtype, device=B.device_of(xs))
    return assemble_statistics(model, row_sums(posteriors, xs, observed, ones), xs.shape[0])


def row_sums(
    posteriors: ObservedPosteriors, xs: Any, observed: Any, weights: Any
) -> tuple[Any, ...]:
    """Weighted sums over rows of the expected complete-data statistics (any row partition).

    Parameters
    ----------
    posteriors : ObservedPosteriors
        :func:`observed_posteriors` of the rows.
    xs : array, shape (m, p)
        Observations.
    observed : array of bool, shape (m, p)
        Which entries are observed.
    weights : array, shape (m,)
        Row weights (1 for real rows, 0 for padding).

    Returns
    -------
    tuple of arrays
        ``(Σ E[x], Σ E[x²], Σ E[x yᵀ], Σ r, Σ r E[y|k], Σ r E[yyᵀ|k])``, shapes ``(p,)``,
        ``(p,)``, ``(p, d)``, ``(K,)``, ``(K, d)``, ``(K, d, d)``.
    """
    xp = B.array_namespace(xs)
    m, d = xs.shape[0], posteriors.loadings.shape[-1]
    probs = posteriors.responsibilities() * weights[:, None]  # (m, K)
    means = posteriors.latent_means  # E[y | x_O, k], (m, K, d)
    second = posteriors.latent_covariances + means[..., :, None] * means[..., None, :]
    weighted_means = probs[:, :, None] * means  # (m, K, d)
    weighted_second = probs[:, :, None] * xp.reshape(second, (m, -1, d * d))  # (m, K, d²)
    generative = posteriors.loadings, posteriors.bias, posteriors.noise
    mask = xp.astype(observed, xs.dtype)
    pack = [i * d + j for i, j in lower_pairs(d)]
    pack_index = xp.asarray(pack, dtype=xp.int64, device=B.device_of(xs))
    latent = xp.sum(weighted_means, axis=1)
    latent_second = xp.take(xp.sum(weighted_second, axis=1), pack_index, axis=-1)
    return (
        *observable_sums(generative, xs, mask, weights, latent, latent_second),
        xp.sum(probs, axis=0),
        xp.sum(weighted_means, axis=0),
        xp.reshape(xp.sum(weighted_second, axis=0), (-1, d, d)),
    )


def chunk_sums(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    xs: Any,
    observed: Any,
    weights: Any,
    terms: ComponentTerms | None = None,
    grouped: PatternTerms | None = None,
) -> tuple[Any, ...]:
    """:func:`row_sums` of :func:`observed_posteriors`, and ``Σ w log p(x_O)``, in one pass.

    For small ``d`` (at most :data:`SMALL_DIM`) the posteriors stay one ``(K, m)`` array an
    entry and are reduced as they are, with no ``(m, K, d, d)`` array
    (:func:`~._missing_rows.grid_sums`).

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model (diagonal or isotropic noise).
    params : array, shape (dim,)
        Natural parameters.
    xs : array, shape (m, p)
        Observations; entries where ``observed`` is False are ignored (any finite value).
    observed : array of bool, shape (m, p)
        Which entries are observed.
    weights : array, shape (m,)
        Row weights (1 for real rows, 0 for padding).
    terms : ComponentTerms, optional
        :func:`component_terms` of ``params``.
    grouped : PatternTerms, optional
        :func:`~._missing_patterns.pattern_terms` of the rows' missingness patterns (used
        for small ``d``): the rows gather their patterns' factorised systems.

    Returns
    -------
    tuple of arrays
        The six totals of :func:`row_sums`, then ``Σ w log p(x_O)`` (shape ``()``).
    """
    terms = component_terms(model, params) if terms is None else terms
    if terms.means.shape[-1] <= SMALL_DIM:
        return grid_sums(terms, xs, observed, weights, grouped)
    posteriors = observed_posteriors(model, params, xs, observed, terms)
    return (*row_sums(posteriors, xs, observed, weights), weights @ posteriors.log_density())


def assemble_statistics(
    model: HierarchicalMixtureOfGaussians, sums: tuple[Any, ...], n_obs: int
) -> Any:
    """Mean coordinates from the totals of :func:`row_sums` over ``n_obs`` rows.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    sums : tuple of arrays
        The first six totals of :func:`row_sums`.
    n_obs : int
        Number of rows.

    Returns
    -------
    array, shape (dim,)
        The expected complete-data statistics, averaged.
    """
    values, squares, cross, totals, first, moments = sums[:6]
    xp = B.array_namespace(values)
    observable = model.obs_man
    rep, p = observable.rep, observable.n
    eye = xp.eye(p, dtype=values.dtype, device=B.device_of(values))
    obs_second = rep.packed_to_statistic(rep.pack((squares / n_obs) * eye), p)
    obs_means = xp.concat([values / n_obs, xp.reshape(obs_second, (-1,))])
    family = model.posterior_upper.component_man
    weighted = xp.concat(
        [first, family.rep.packed_to_statistic(family.rep.pack(moments), family.n)], axis=-1
    )
    upper = model.posterior_upper.join_weighted_mean_mixture(weighted / n_obs, totals / n_obs)
    return model.join_coords(obs_means, cross / n_obs, upper)
