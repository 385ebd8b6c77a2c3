"""Analytic linear Gaussian models: full-covariance latents, exact ``to_natural`` and EM.

With a full posterior rep the LGM is an exponential family whose mean coordinates
``(E[x], E[s₂(x)], E[x yᵀ], E[y], E[y yᵀ])`` map back to natural coordinates in closed form
(the factor-analysis M-step): with ``C = E[xyᵀ] − E[x]E[y]ᵀ`` and ``S = Cov(y)``,
``A = C S⁻¹``, ``b = E[x] − A E[y]``, ``Ψ = project(Cov(x) − A Cᵀ)``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_finite
from hmog_xp.families import Normal
from hmog_xp.harmoniums.lgm import LinearGaussianModel
from hmog_xp.reps import CovarianceRep, Diagonal, PositiveDefinite, Scale


@dataclass(frozen=True, repr=False)
class AnalyticLinearGaussianModel(LinearGaussianModel):  # numpydoc ignore=PR02
    """Linear Gaussian model with a full latent covariance: closed-form EM.

    Parameters
    ----------
    obs_dim : int
        Observation dimension ``p``.
    obs_rep : CovarianceRep
        Noise structure (``Diagonal()``: factor analysis; ``Scale()``: probabilistic PCA).
    lat_dim : int
        Latent dimension ``d``.
    pst_rep : PositiveDefinite, optional
        Must be ``PositiveDefinite()`` (the default).
    """

    pst_rep: CovarianceRep = field(default_factory=PositiveDefinite)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.pst_rep != PositiveDefinite():
            msg = (
                f"AnalyticLinearGaussianModel needs pst_rep=PositiveDefinite(); got "
                f"{self.pst_rep!r} (use LinearGaussianModel for a restricted posterior)"
            )
            raise ValidationError(msg)

    # -- from the generative form -------------------------------------------------------------

    def from_generative(self, loadings: Any, bias: Any, noise: Any) -> Any:
        """Natural parameters of ``x = A y + b + ε``, ``y ~ N(0, I)``, ``ε ~ N(0, Ψ)``.

        Parameters
        ----------
        loadings : array, shape (p, d)
            ``A``.
        bias : array, shape (p,)
            ``b``.
        noise : array
            ``Ψ``: ``(p, p)`` for ``PositiveDefinite``, ``(p,)`` for ``Diagonal``, a 0-d
            array for ``Scale``.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        xp = B.array_namespace(loadings, bias)
        lkl_params = self.likelihood_from_readable(loadings, bias, noise)
        dtype, device = loadings.dtype, B.device_of(loadings)
        zero = xp.zeros((self.lat_dim,), dtype=dtype, device=device)
        eye = xp.eye(self.lat_dim, dtype=dtype, device=device)
        return self.join_conjugated(lkl_params, self.prr_man.from_moments(zero, eye))

    # -- mean → natural ----------------------------------------------------------------------

    def _mean_moments(self, means: Any) -> tuple[Any, Any, Any, Any, Any]:
        """``(E[x], Cov(x) storage, C = Cov(x, y), E[y], Cov(y) dense)`` from mean coordinates."""
        obs_means, cross, lat_means = self.split_coords(means)
        obs_mean, obs_covariance = self.obs_man.split_mean_covariance(obs_means)
        lat_mean, lat_covariance = self.pst_man.split_mean_covariance(lat_means)
        centred_cross = cross - obs_mean[..., :, None] * lat_mean[..., None, :]
        return (
            obs_mean,
            obs_covariance,
            centred_cross,
            lat_mean,
            self.pst_rep.unpack(lat_covariance, self.lat_dim),
        )

    def to_natural(self, means: Any) -> Any:
        """Natural parameters from mean coordinates (the closed-form M-step).

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates (expected joint statistics).

        Returns
        -------
        array, shape (dim,)
            Natural parameters; exact inverse of :meth:`to_mean`.
        """
        xp = self._check_params(means, "means")
        check_finite(means, "means", xp=xp)
        obs_mean, obs_covariance, cross, lat_mean, lat_covariance = self._mean_moments(means)
        lat_factor = self.prr_man.cholesky_factor(
            PositiveDefinite().pack(lat_covariance), "latent covariance"
        )
        # A = C S⁻¹ = (S⁻¹ Cᵀ)ᵀ; A Cᵀ = C S⁻¹ Cᵀ = (L⁻¹Cᵀ)ᵀ(L⁻¹Cᵀ).
        white_cross = B.solve_triangular(lat_factor, xp.matrix_transpose(cross), xp=xp)
        loadings = xp.matrix_transpose(
            B.solve_triangular(lat_factor, white_cross, transpose=True, xp=xp)
        )
        explained = self.obs_rep.statistic_to_packed(
            self.obs_rep.congruence_statistic(
                xp.matrix_transpose(white_cross),
                xp.eye(self.lat_dim, dtype=means.dtype, device=B.device_of(means)),
            ),
            self.obs_dim,
        )
        noise = obs_covariance - explained
        bias = obs_mean - (loadings @ lat_mean[..., None])[..., 0]
        lkl_params = self.likelihood_parameters(loadings, bias, noise)
        prior = self.prr_man.from_moments(lat_mean, lat_covariance)
        return self.join_conjugated(lkl_params, prior)

    def negative_entropy(self, means: Any) -> Any:
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
        params = self.to_natural(means)
        xp = B.array_namespace(means)
        return xp.sum(params * means, axis=-1) - self.log_partition_function(params)

    # -- whitening and EM -------------------------------------------------------------------

    def whiten_prior(self, means: Any) -> Any:
        """Re-parametrise the latent space so the prior is ``N(0, I)``; ``p(x)`` is unchanged.

        With latent mean ``m`` and covariance ``S = L Lᵀ``: ``E[xyᵀ] ← (E[xyᵀ] − E[x]mᵀ) L⁻ᵀ``
        and the latent statistics become those of ``N(0, I)``.

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
        obs_means = self.split_coords(means)[0]
        _, _, cross, _, lat_covariance = self._mean_moments(means)
        lat_factor = self.prr_man.cholesky_factor(
            PositiveDefinite().pack(lat_covariance), "latent covariance"
        )
        white_cross = xp.matrix_transpose(
            B.solve_triangular(lat_factor, xp.matrix_transpose(cross), xp=xp)
        )
        standard = self.pst_man.to_mean(
            self.pst_man.standard_normal(xp=xp, dtype=means.dtype, device=B.device_of(means))
        )
        return self.join_coords(obs_means, white_cross, standard)

    def expectation_maximization(self, params: Any, xs: Any) -> Any:
        """One EM step: E-step, whitening of the latent prior, closed-form M-step.

        Parameters
        ----------
        params : array, shape (dim,)
            Current natural parameters.
        xs : array, shape (N, obs_dim)
            Observations.

        Returns
        -------
        array, shape (dim,)
            Updated natural parameters (the log-likelihood never decreases).
        """
        return self.to_natural(self.whiten_prior(self.mean_posterior_statistics(params, xs)))

    def observable_distribution(self, params: Any) -> Any:
        """The exact marginal of ``x``: ``N(A m + b, A S Aᵀ + Ψ)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        array, shape (Normal(obs_dim).dim,)
            Natural parameters of ``Normal(obs_dim, PositiveDefinite())``.
        """
        xp = B.array_namespace(params)
        loadings, bias, noise, mean, covariance = self.to_generative(params)
        noise_dense = self.obs_rep.unpack(
            self.obs_rep.from_readable(noise, self.obs_dim, "noise"), self.obs_dim
        )
        marginal_mean = bias + (loadings @ mean[..., None])[..., 0]
        marginal_covariance = loadings @ covariance @ xp.matrix_transpose(loadings) + noise_dense
        return Normal(self.obs_dim).from_moments(marginal_mean, marginal_covariance)


def factor_analysis(obs_dim: int, lat_dim: int) -> AnalyticLinearGaussianModel:
    """Factor analysis: diagonal noise, full latent covariance.

    Parameters
    ----------
    obs_dim : int
        Observation dimension ``p``.
    lat_dim : int
        Number of factors ``d``.

    Returns
    -------
    AnalyticLinearGaussianModel
        ``AnalyticLinearGaussianModel(obs_dim, Diagonal(), lat_dim)``.
    """
    return AnalyticLinearGaussianModel(obs_dim, Diagonal(), lat_dim)


def principal_component_analysis(obs_dim: int, lat_dim: int) -> AnalyticLinearGaussianModel:
    """Probabilistic PCA: isotropic noise ``σ² I``, full latent covariance.

    Parameters
    ----------
    obs_dim : int
        Observation dimension ``p``.
    lat_dim : int
        Number of components ``d``.

    Returns
    -------
    AnalyticLinearGaussianModel
        ``AnalyticLinearGaussianModel(obs_dim, Scale(), lat_dim)``.
    """
    return AnalyticLinearGaussianModel(obs_dim, Scale(), lat_dim)
