"""Chunked E-step sums for HMoGs (shared by the model methods and :mod:`hmog_xp.em`).

Each row chunk contributes ``Xᵀ E[y|x]``, responsibility-weighted component statistics and
``Σ ψ_mix(posterior(x))``; ``mean s_x(x)`` is computed separately (once per fit by the EM
driver). Peak extra memory is ``O(chunk · K · d)`` whatever ``N``.

Precision: every chunk is computed in the data's dtype (the GEMMs with the data stay there),
but the chunk sums are added up, and assembled into mean coordinates and the
log-likelihood, in the accumulation dtype (float64 for float32 data when the backend has
float64). Summing ``N`` float32 rows in float32 loses about ``log2 N`` bits and the
log-likelihood is a small difference of large terms; in float64 the result is as accurate as
the per-row float32 values, which is what lets float32 EM reach the float64 optimum.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hmog_xp import _backend as B
from hmog_xp.harmoniums.closed_form import ChunkedEStep, harmonium_log_likelihood
from hmog_xp.hmog import _posterior as P
from hmog_xp.hmog._mean_parts import MeanParts, join_mean_parts

if TYPE_CHECKING:
    from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians


def chunk_sums_for(
    model: HierarchicalMixtureOfGaussians, params: Any
) -> Callable[[Any, Any], tuple[Any, ...]]:
    """Return ``sums(chunk, weights)``, the E-step sums of one row chunk under ``params``.

    The component factorisations do not depend on the data: they are made here, once, and
    every chunk reuses them. They are made in the accumulation dtype, and so are the
    x-independent part of every posterior logit (``½ h_k·c_k − ½ log|Λ_k| + θ_{z,k}``) and
    the per-row log-normaliser; the GEMMs with the chunk stay in its dtype (see
    :func:`hmog_xp.hmog._posterior.posteriors_at` for the decomposition).

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    params : array, shape (dim,)
        Natural parameters.

    Returns
    -------
    callable
        ``sums(chunk (m, p), weights (m,)) -> (Xᵀ E[y|x], Σ r η, Σ r, Σ ψ_mix(posterior(x)))``;
        the last sum is in the accumulation dtype, the others in ``params``'s dtype.
    """
    xp = B.array_namespace(params)
    dtype = params.dtype
    wide = B.accumulation_dtype(xp, dtype)
    _, interaction, upper = model.split_coords(params)
    if wide == dtype:  # nothing more precise exists: the plain kernel
        terms = P.component_terms(model.posterior_upper, upper)

        def plain_sums(chunk: Any, weights: Any) -> tuple[Any, ...]:
            posteriors = P.posteriors_at(model.posterior_upper, terms, chunk @ interaction)
            probs, log_normalizers = B.softmax_and_logsumexp(
                posteriors.logits, axis=-1, xp=xp, scale=weights[:, None]
            )
            return (*_statistics(model, chunk, posteriors, probs), weights @ log_normalizers[:, 0])

        return plain_sums
    return _precise_sums(model, interaction, upper, wide)


def _statistics(
    model: HierarchicalMixtureOfGaussians,
    chunk: Any,
    posteriors: Any,
    probs: Any,
    latent_means: Any = None,
) -> tuple[Any, Any, Any]:
    """``(Xᵀ E[y|x], Σ r η, Σ r)`` of one chunk from its posteriors (and ``E[y|x]``)."""
    xp = B.array_namespace(chunk, probs)
    if latent_means is None:
        latent_means = P.latent_means(posteriors, probs)
    cross = xp.matrix_transpose(chunk) @ latent_means
    weighted, totals = P.weighted_upper_sums(model.posterior_upper, posteriors, probs)
    return cross, weighted, totals


def _precise_sums(
    model: HierarchicalMixtureOfGaussians, interaction: Any, upper: Any, wide: Any
) -> Callable[[Any, Any], tuple[Any, ...]]:
    """The chunk sums of :func:`chunk_sums_for` with the log-likelihood in ``wide``."""
    xp = B.array_namespace(interaction, upper)
    dtype = upper.dtype
    rep = model.posterior_upper.component_man.rep
    precise = P.component_terms(model.posterior_upper, xp.astype(upper, wide))
    terms = P.ComponentTerms(*(xp.astype(part, dtype) for part in precise))
    offsets = (
        0.5 * B.vecdot(precise.location, precise.centers, xp=xp)
        - 0.5 * precise.logdets
        + precise.log_weights
    )  # (K,), the x-independent part of the logits
    # Σ_k = Σ̄ + Δ_k with Σ̄ the average: the large shared quadratic ½ uᵀΣ̄u (the part that
    # cancels against ½ xᵀΨ⁻¹x in log p(x)) is made in the wide dtype, only the small
    # component differences in the data's dtype.
    shared = xp.mean(precise.covariances, axis=0, keepdims=True)  # (1, size)
    deltas = xp.astype(precise.covariances - shared, dtype)
    n = model.posterior_upper.component_man.n
    n_components = model.posterior_upper.n_components
    flush_below = math.log(float(xp.finfo(dtype).smallest_normal)) + math.log(n_components)
    half_deltas_t = xp.matrix_transpose(0.5 * rep.packed_to_quadratic(deltas, n))  # (size, K)

    def sums(chunk: Any, weights: Any) -> tuple[Any, ...]:
        shift = chunk @ interaction
        wide_shift = xp.astype(shift, wide)
        common = rep.matvec_all(shared, wide_shift)[:, 0, :]  # Σ̄ u, (m, d)
        differences = rep.matvec_all(deltas, shift)  # Δ_k u, (m, K, d)
        # u·c_k + ½ uᵀΔ_k u, shape (m, K): the quadratic as one GEMM of the packed outer
        # products of u (which the second moments reuse), as in posteriors_at
        statistic = rep.outer_statistic(shift)  # (m, size)
        varying = shift @ xp.matrix_transpose(terms.centers) + statistic @ half_deltas_t
        base = 0.5 * B.vecdot(wide_shift, common, xp=xp)  # ½ uᵀΣ̄u, (m,)
        logits = offsets + xp.astype(varying, wide)
        peak = B.last_axis_max(logits, xp=xp)  # without the shared base
        relative = xp.astype(logits - peak, dtype)
        # responsibilities below K x the smallest normal number are zeros: subnormal ones would
        # add nothing but make every product with them many times slower on CPUs
        exponents = xp.where(relative < flush_below, xp.full_like(relative, -math.inf), relative)
        local = xp.log(B.last_axis_sum(xp.exp(exponents), xp=xp))
        probs = xp.exp(exponents - local) * weights[:, None]
        # spreads Σ_k u = Σ̄ u + Δ_k u; E[y|x] = Σ_k r_k (c_k + Δ_k u) + (Σ_k r_k) Σ̄ u
        posteriors = P.ComponentPosteriors(
            relative, terms.centers, differences, shift, terms.covariances, None, statistic
        )
        latent = P.latent_means(posteriors, probs) + B.last_axis_sum(probs, xp=xp) * xp.astype(
            common, dtype
        )
        log_normalizers = base + (peak + xp.astype(local, wide))[:, 0]
        return (
            *_statistics(model, chunk, posteriors, probs, latent),
            xp.astype(weights, wide) @ log_normalizers,
        )

    return sums


class HMoGEStep(ChunkedEStep):
    """The chunked E-step of every HMoG variant (:class:`ChunkedEStep` for HMoGs)."""

    def estep_sums(self, params: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        """Return :func:`chunk_sums_for` this model and ``params`` (see :class:`ChunkedEStep`).

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        callable
            ``sums(chunk, weights) -> (Xᵀ E[y|x], Σ r η, Σ r, Σ ψ_mix(posterior(x)))``.
        """
        return chunk_sums_for(self, params)  # type: ignore[arg-type]

    def estep_assemble(
        self,
        params: Any,
        obs_statistics: Any,
        sums: tuple[Any, ...],
        n_obs: int,
        log_partition: Any = None,
    ) -> tuple[Any, Any]:
        """Mean posterior statistics and average log-likelihood from summed chunk sums.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters the sums were computed with.
        obs_statistics : array, shape (obs_man.dim,)
            ``mean_n s_x(x_n)`` over the same rows.
        sums : tuple of arrays
            ``(Σ Xᵀ E[y|x], Σ r η, Σ r, Σ ψ_mix(posterior(x)))`` over the rows.
        n_obs : int
            Number of rows summed over.
        log_partition : array, shape (), optional
            ``ψ(params)`` where already known; None: computed here.

        Returns
        -------
        means : array, shape (dim,)
            ``mean_posterior_statistics(params, xs)``.
        log_likelihood : array, shape ()
            ``average_log_observable_density(params, xs)``.
        """
        parts, log_likelihood = self.estep_assemble_parts(
            params, obs_statistics, sums, n_obs, log_partition
        )
        return self.estep_join_parts(parts), log_likelihood

    def estep_join_parts(self, parts: MeanParts) -> Any:
        """Mean coordinates from the parts :meth:`estep_assemble_parts` gives.

        Parameters
        ----------
        parts : MeanParts
            Mean posterior statistics by part.

        Returns
        -------
        array, shape (dim,)
            The mean coordinates.
        """
        model: HierarchicalMixtureOfGaussians = self  # type: ignore[assignment]
        return join_mean_parts(model, parts)

    def estep_assemble_parts(
        self,
        params: Any,
        obs_statistics: Any,
        sums: tuple[Any, ...],
        n_obs: int,
        log_partition: Any = None,
    ) -> tuple[MeanParts, Any]:
        """:meth:`estep_assemble` by part: the weighted moments of every component as summed.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters the sums were computed with.
        obs_statistics : array, shape (obs_man.dim,)
            ``mean_n s_x(x_n)`` over the same rows.
        sums : tuple of arrays
            ``(Σ Xᵀ E[y|x], Σ r η, Σ r, Σ ψ_mix(posterior(x)))`` over the rows.
        n_obs : int
            Number of rows summed over.
        log_partition : array, shape (), optional
            ``ψ(params)`` where already known; None: computed here.

        Returns
        -------
        parts : MeanParts
            The mean posterior statistics by part.
        log_likelihood : array, shape ()
            ``average_log_observable_density(params, xs)``.
        """
        cross, weighted, totals, partition_sum = sums
        xp = B.array_namespace(weighted, totals)
        # the latent moments over the responsibilities' own total (n_obs up to the rounding of
        # the chunks' dtype), so that the weights sum to one as the M-step needs
        responsibility = xp.sum(totals)
        parts = MeanParts(
            obs_statistics, cross / n_obs, weighted / responsibility, totals / responsibility
        )
        log_likelihood = harmonium_log_likelihood(
            self, params, obs_statistics, partition_sum, n_obs, log_partition
        )
        return parts, log_likelihood

    def estep_row_bytes(self) -> int:
        """Working bytes per row: ``8 (2p + K (4d + 4) + d)``.

        Returns
        -------
        int
            Bytes.
        """
        model: HierarchicalMixtureOfGaussians = self  # type: ignore[assignment]
        p, d = model.int_shape
        return 8 * (2 * p + model.n_components * (4 * d + 4) + d)
