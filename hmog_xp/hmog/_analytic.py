"""Closed-form coordinate conversions, whitening and EM for HMoGs with a complete upper mixture.

``to_natural`` is the LGM M-step on the latent *mixture* marginal's moments, the mixture's
own ``to_natural`` for the prior, and ``join_conjugated``. ``whiten_prior`` maps every
component by ``y ↦ L⁻¹(y − m)``, with ``m``, ``S = L Lᵀ`` the latent marginal's mean and
covariance (``S`` restricted to the posterior rep, so a diagonal rep is standardised per
dimension and stays diagonal), and ``E[x yᵀ]`` to ``(E[x yᵀ] − E[x] mᵀ) L⁻ᵀ``.
"""

from __future__ import annotations

import functools
from types import ModuleType
from typing import TYPE_CHECKING, Any, Protocol

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.harmoniums import AnalyticLinearGaussianModel
from hmog_xp.harmoniums.stabilizers import Regularization, noise_floor_lift
from hmog_xp.hmog._mean_parts import MeanParts, join_mean_parts, split_mean_parts
from hmog_xp.hmog._regularize import regularize_means, regularized_mixture

if TYPE_CHECKING:
    from hmog_xp.families import Normal
    from hmog_xp.harmoniums import LinearGaussianModel, Mixture
    from hmog_xp.reps import CovarianceRep


#: No stabilisers: the exact M-step.
EXACT = Regularization()


class _HMoGLike(Protocol):
    @property
    def lower_harmonium(self) -> LinearGaussianModel: ...

    @property
    def obs_man(self) -> Normal: ...

    @property
    def posterior_upper(self) -> Mixture: ...

    @property
    def prior_upper(self) -> Mixture: ...

    @property
    def lat_dim(self) -> int: ...

    @property
    def lkl_dim(self) -> int: ...

    def split_coords(self, params: Any) -> tuple[Any, Any, Any]: ...

    def join_coords(self, obs: Any, interaction: Any, lat: Any) -> Any: ...

    def join_conjugated(self, lkl_params: Any, prior: Any) -> Any: ...

    def log_partition_function(self, params: Any) -> Any: ...

    def mean_posterior_statistics(self, params: Any, xs: Any) -> Any: ...

    def mstep_regularize(self, means: Any, regularization: Regularization) -> Any: ...

    def _check_params(self, params: Any, name: str = "params") -> ModuleType: ...


@functools.lru_cache(maxsize=64)
def _analytic_lower(
    obs_dim: int, obs_rep: CovarianceRep, lat_dim: int
) -> AnalyticLinearGaussianModel:
    """The full-latent LGM whose closed-form M-step gives an HMoG's likelihood (made once)."""
    return AnalyticLinearGaussianModel(obs_dim, obs_rep, lat_dim)


def _complete_upper(model: _HMoGLike, operation: str) -> Mixture:
    upper = model.posterior_upper
    if upper.varying_rep != upper.component_man.rep:
        msg = (
            f"{operation} needs a complete upper mixture; {model!r} has components that "
            f"differ only in {upper.varying_rep!r}"
        )
        raise ValidationError(msg)
    return upper


def _whitened_parts(
    model: _HMoGLike, upper: Mixture, parts: tuple[Any, Any, Any, Any, Any], xp: ModuleType
) -> tuple[Any, Any, Any, Any, Any]:
    """``y ↦ L⁻¹(y − m)`` applied to mean coordinates, in parts.

    ``parts`` are :func:`~hmog_xp.hmog._regularize.regularized_mixture`'s: the observable
    means, ``E[xyᵀ]``, the latent marginal's mean coordinates, the components' and the
    weights. Returns the observable means, the whitened cross moments
    ``(E[xyᵀ] − E[x]mᵀ) L⁻ᵀ`` (``(p, d)``), the whitened component means and covariances
    (component rep's storage) and the weights, with ``m``, ``S = L Lᵀ`` the latent marginal's
    mean and covariance.
    """
    family = upper.component_man
    rep, d = family.rep, family.n
    obs_means, cross, total, components, weights = parts
    marginal_mean, marginal_covariance = family.split_mean_covariance(total)
    factor = family.cholesky_factor(marginal_covariance, "latent marginal covariance")
    obs_mean = obs_means[..., : model.lower_harmonium.obs_dim]
    centred_cross = cross - obs_mean[..., :, None] * marginal_mean[..., None, :]
    # L⁻¹ once (one small solve), then products instead of three more solves: multiplying by
    # a triangular inverse loses about cond(L) ulps, and in EM the latent marginal is near
    # N(0, I) at every step (cond(L) near 1)
    eye = B.identity(d, total, xp=xp)
    inverse_factor = rep.factor_solve_matrix(factor, eye)  # (..., d, d)
    inverse_t = xp.matrix_transpose(inverse_factor)
    white_cross = centred_cross @ inverse_t
    means_k, covariances_k = family.split_mean_covariance(components)
    white_means = (means_k - marginal_mean[..., None, :]) @ inverse_t
    white_covariances = rep.pack(
        inverse_factor[..., None, :, :] @ rep.unpack(covariances_k, d) @ inverse_t[..., None, :, :]
    )
    return obs_means, white_cross, white_means, white_covariances, weights


class WhitenableHMoG:
    """``whiten_prior`` in mean coordinates (complete upper mixtures)."""

    def whiten_prior(self: _HMoGLike, means: Any) -> Any:
        """Re-parametrise the latent space so its marginal has mean 0 and covariance ``I``.

        ``p(x)`` is unchanged: the LGM interaction and every mixture component move together.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates.

        Returns
        -------
        array, shape (dim,)
            Whitened mean coordinates.
        """
        xp = self._check_params(means, "means")
        upper = _complete_upper(self, "whiten_prior")
        family = upper.component_man
        obs_means, white_cross, white_means, white_covariances, weights = _whitened_parts(
            self, upper, regularized_mixture(self, split_mean_parts(self, means), EXACT), xp
        )
        white_components = family.join_mean_covariance(white_means, white_covariances)
        return self.join_coords(
            obs_means, white_cross, upper.join_mean_mixture(white_components, weights)
        )


class AnalyticConversions:
    """``to_natural``, ``negative_entropy``, ``from_generative`` and EM."""

    @property
    def has_closed_form_em(self: _HMoGLike) -> bool:
        """Whether the upper mixture is complete (then the M-step is closed form)."""
        upper = self.posterior_upper
        return bool(upper.varying_rep == upper.component_man.rep)

    def mstep_regularize(self: _HMoGLike, means: Any, regularization: Regularization) -> Any:
        """The stabilisers of :mod:`hmog_xp.hmog._regularize` (all three apply).

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.
        regularization : Regularization
            ``reg_covar`` (latent component covariances), ``min_variance`` (noise
            variances), ``min_weight`` (pseudo-weight of the pooled latent moments).

        Returns
        -------
        array, shape (dim,)
            Regularised mean coordinates.
        """
        return regularize_means(self, means, regularization)

    def mstep_frame(self: _HMoGLike, means: Any) -> Any:
        """:meth:`whiten_prior`: the latent marginal becomes ``N(0, I)``.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates.

        Returns
        -------
        array, shape (dim,)
            Whitened mean coordinates.
        """
        return WhitenableHMoG.whiten_prior(self, means)

    def mstep(self: _HMoGLike, means: Any, regularization: Regularization | None = None) -> Any:
        """The closed-form M-step ``to_natural(mstep_frame(mstep_regularize(means)))``, fused.

        In the whitened frame the latent marginal is ``N(0, I)``, so the factor-analysis
        M-step needs no factorisation of its own (``A = Cov(x, y')``, ``b = E[x]``); each
        whitened component covariance is factorised once, for its precision and its
        log-partition, and ``Ψ`` once, for the likelihood and the conjugation parameters.
        Equal to the composition up to rounding.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.
        regularization : Regularization, optional
            Stabilisers (default or None: exact).

        Returns
        -------
        array, shape (dim,)
            Natural parameters, with a whitened latent prior.
        """
        return AnalyticConversions.mstep_and_log_partition(self, means, regularization)[0]

    @property
    def mstep_gives_log_partition(self: _HMoGLike) -> bool:
        """True where the M-step is fused (the prior's mixture is the posterior's).

        Its ``ψ = χ + ψ_y(θ'_0) + log Σ_k π_k − log π_0`` takes the likelihood's ``χ`` and
        the first whitened component's log-partition, both already at hand.

        Returns
        -------
        bool
            Whether the fused M-step applies.
        """
        upper = self.posterior_upper
        return bool(upper.varying_rep == upper.component_man.rep and self.prior_upper == upper)

    def mstep_and_log_partition(
        self: _HMoGLike, means: Any, regularization: Regularization | None = None
    ) -> tuple[Any, Any]:
        """:meth:`mstep` and the log-partition function ``ψ`` of its result.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.
        regularization : Regularization, optional
            Stabilisers (default or None: exact).

        Returns
        -------
        params : array, shape (dim,)
            Natural parameters, with a whitened latent prior.
        log_partition : array, shape ()
            ``ψ(params)``.
        """
        self._check_params(means, "means")
        _complete_upper(self, "the closed-form M-step")
        return AnalyticConversions.mstep_parts_and_log_partition(
            self, split_mean_parts(self, means), regularization
        )

    def mstep_parts(
        self: _HMoGLike, parts: MeanParts, regularization: Regularization | None = None
    ) -> Any:
        """:meth:`mstep` of the mean statistics by part (as the E-step sums them).

        Parameters
        ----------
        parts : MeanParts
            Mean posterior statistics by part.
        regularization : Regularization, optional
            Stabilisers (default or None: exact).

        Returns
        -------
        array, shape (dim,)
            Natural parameters, with a whitened latent prior.
        """
        return AnalyticConversions.mstep_parts_and_log_partition(self, parts, regularization)[0]

    def mstep_parts_and_log_partition(
        self: _HMoGLike, parts: MeanParts, regularization: Regularization | None = None
    ) -> tuple[Any, Any]:
        """:meth:`mstep_and_log_partition` of the mean statistics by part.

        Parameters
        ----------
        parts : MeanParts
            Mean posterior statistics by part.
        regularization : Regularization, optional
            Stabilisers (default or None: exact).

        Returns
        -------
        params : array, shape (dim,)
            Natural parameters, with a whitened latent prior.
        log_partition : array, shape ()
            ``ψ(params)``.
        """
        regularization = EXACT if regularization is None else regularization
        xp = B.array_namespace(parts.cross, parts.weighted)
        upper = _complete_upper(self, "the closed-form M-step")
        if self.prior_upper != upper:  # restricted priors: the general path
            means = self.mstep_regularize(join_mean_parts(self, parts), regularization)
            params = AnalyticConversions.to_natural(self, WhitenableHMoG.whiten_prior(self, means))
            return params, self.log_partition_function(params)
        family = upper.component_man
        rep, d = family.rep, family.n
        given = self.lower_harmonium
        lower = _analytic_lower(given.obs_dim, given.obs_rep, given.lat_dim)
        # the pseudo-weight and covariance floor on the parts, the noise floor on the noise
        # the whitened M-step computes (what regularize_means gives, without its round trip)
        obs_means, loadings, white_means, white_covariances, weights = _whitened_parts(
            self, upper, regularized_mixture(self, parts, regularization), xp
        )
        obs_mean, obs_covariance = lower.obs_man.split_mean_covariance(obs_means)
        eye = B.identity(d, parts.cross, xp=xp)
        noise = obs_covariance - lower.obs_rep.statistic_to_packed(
            lower.obs_rep.congruence_statistic(loadings, eye), lower.obs_dim
        )
        if regularization.min_variance > 0.0:
            floor = regularization.min_variance
            noise = noise + noise_floor_lift(lower.obs_rep, noise, lower.obs_dim, floor, xp=xp)
        lkl_params, chi, rho = lower.likelihood_and_conjugation(loadings, obs_mean, noise)
        factors_k = family.cholesky_factor(white_covariances, "component covariance")
        precisions = rep.factor_inverse(factors_k, d)
        locations = rep.matvec(precisions, white_means)
        log_partitions = 0.5 * xp.sum(locations * white_means, axis=-1) + 0.5 * rep.factor_logdet(
            factors_k, d
        )
        prior = upper.join_natural_mixture_with_log_partitions(
            family.join_location_precision(locations, precisions),
            upper.pst_man.from_probs(weights),
            log_partitions,
        )
        # θ_z = prior − ρ, with ρ on the prior's leading (latent Normal) coordinates.
        lead = rho.shape[-1]
        params = B.concat_broadcast([lkl_params, prior[..., :lead] - rho, prior[..., lead:]], xp=xp)
        # ψ_mix(prior) = log Σ_k exp(log π_k − log π_0 − ψ_k + ψ_0 + ψ_k)
        total = xp.sum(weights, axis=-1)
        log_partition = chi + log_partitions[..., 0] + xp.log(total) - xp.log(weights[..., 0])
        return params, log_partition

    def to_natural(self: _HMoGLike, means: Any) -> Any:
        """Natural parameters from mean coordinates (exact inverse of ``to_mean``).

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        self._check_params(means, "means")
        upper = _complete_upper(self, "to_natural")
        given = self.lower_harmonium
        lower = _analytic_lower(given.obs_dim, given.obs_rep, given.lat_dim)
        obs_means, cross, upper_means = self.split_coords(means)
        total = upper_means[..., : upper.component_man.dim]
        lkl_params = lower.likelihood_from_means(lower.join_coords(obs_means, cross, total))[0]
        components, weights = upper.split_mean_mixture(upper_means)
        prior = upper.join_natural_mixture(
            upper.component_man.to_natural(components), upper.pst_man.from_probs(weights)
        )
        return self.join_conjugated(lkl_params, prior)

    def negative_entropy(self: _HMoGLike, means: Any) -> Any:
        """Return ``φ(η) = θ·η − ψ(θ)`` with ``θ = to_natural(η)``.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates.

        Returns
        -------
        array, shape ()
            Negative entropy relative to the base measure.
        """
        params = AnalyticConversions.to_natural(self, means)
        xp = B.array_namespace(means)
        return xp.sum(params * means, axis=-1) - self.log_partition_function(params)

    def expectation_maximization(self: _HMoGLike, params: Any, xs: Any) -> Any:
        """One EM step: E-step, whitening of the latent marginal, closed-form M-step.

        Parameters
        ----------
        params : array, shape (dim,)
            Current natural parameters.
        xs : array, shape (N, p)
            Observations.

        Returns
        -------
        array, shape (dim,)
            Updated natural parameters (the log-likelihood never decreases).
        """
        whitened = WhitenableHMoG.whiten_prior(self, self.mean_posterior_statistics(params, xs))
        return AnalyticConversions.to_natural(self, whitened)
