"""Analytic linear Gaussian models: full-covariance latents, exact ``to_natural`` and EM.

With a full posterior rep the LGM is an exponential family whose mean coordinates
``(E[x], E[s₂(x)], E[x yᵀ], E[y], E[y yᵀ])`` map back to natural coordinates in closed form
(the factor-analysis M-step): with ``C = E[xyᵀ] − E[x]E[y]ᵀ`` and ``S = Cov(y)``,
``A = C S⁻¹``, ``b = E[x] − A E[y]``, ``Ψ = project(Cov(x) − A Cᵀ)``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_finite
from hmog_xp.families import Normal
from hmog_xp.harmoniums.closed_form import ClosedFormEM, harmonium_log_likelihood
from hmog_xp.harmoniums.lgm import LinearGaussianModel
from hmog_xp.harmoniums.stabilizers import Regularization, floor_noise_variances
from hmog_xp.reps import CovarianceRep, Diagonal, PositiveDefinite, Scale


@dataclass(frozen=True, repr=False)
class AnalyticLinearGaussianModel(LinearGaussianModel, ClosedFormEM):  # numpydoc ignore=PR02
    """Linear Gaussian model with a full latent covariance: closed-form EM.

    Its EM runs through the shared engine (:class:`~hmog_xp.harmoniums.closed_form.ClosedFormEM`):
    every posterior ``y | x`` has the same covariance ``Σ``, so a chunk ``X`` contributes
    ``Xᵀ M``, ``Σ_n μ_n`` and ``Mᵀ M`` (``M`` the posterior means, one GEMM ``X W`` away).

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
        lkl_params, lat_mean, lat_covariance = self.likelihood_from_means(means)
        prior = self.prr_man.from_moments(lat_mean, lat_covariance)
        return self.join_conjugated(lkl_params, prior)

    def likelihood_from_means(self, means: Any) -> tuple[Any, Any, Any]:
        """The likelihood part of :meth:`to_natural` and the latent moments it used.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates (expected joint statistics).

        Returns
        -------
        lkl_params : array, shape (lkl_dim,)
            ``concat(θ_x, W.reshape(-1))`` of the M-step.
        lat_mean : array, shape (lat_dim,)
            ``E[y]``.
        lat_covariance : array, shape (lat_dim, lat_dim)
            Dense ``Cov(y)``.
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
        return self.likelihood_parameters(loadings, bias, noise), lat_mean, lat_covariance

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

    # -- the closed-form EM capability --------------------------------------------------------

    def _posterior_covariance(self, params: Any) -> tuple[Any, Any, Any]:
        """``(h_y, dense Σ, ψ_y(θ_y))`` of the posterior's shared part (``θ_y`` the latent)."""
        lat = self.split_coords(params)[2]
        location, precision = self.pst_man.split_location_precision(lat)
        factor = self.pst_man.cholesky_factor(precision, "posterior precision")
        covariance = self.pst_rep.unpack(
            self.pst_rep.factor_inverse(factor, self.lat_dim), self.lat_dim
        )
        return location, covariance, self.pst_man.log_partition_function(lat)

    def estep_sums(self, params: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        """Return ``sums(chunk, weights) -> (Xᵀ M, Σ μ, Mᵀ M, Σ ψ_y(posterior(x)))``.

        With ``h(x) = h_y + Wᵀ x`` the posterior location and ``μ(x) = Σ h(x)``,
        ``ψ_y(posterior(x)) = ψ_y(θ_y) + ½ (h(x)·μ(x) − h_y·Σ h_y)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        callable
            The weighted chunk sums (see :class:`~hmog_xp.harmoniums.closed_form.ChunkedEStep`).
        """
        xp = B.array_namespace(params)
        interaction = self.split_coords(params)[1]
        location, covariance, partition = self._posterior_covariance(params)
        offset = partition - 0.5 * xp.sum(location * (covariance @ location[:, None])[:, 0])

        def _sums(chunk: Any, weights: Any) -> tuple[Any, ...]:
            locations = location + chunk @ interaction  # (m, d)
            means = locations @ covariance  # Σ symmetric
            weighted = weights[:, None] * means
            partitions = offset + 0.5 * xp.sum(locations * means, axis=-1)
            return (
                xp.matrix_transpose(chunk) @ weighted,
                xp.sum(weighted, axis=0),
                xp.matrix_transpose(means) @ weighted,
                weights @ partitions,
            )

        return _sums

    def estep_assemble(
        self,
        params: Any,
        obs_statistics: Any,
        sums: tuple[Any, ...],
        n_obs: int,
        log_partition: Any = None,
    ) -> tuple[Any, Any]:
        """Mean coordinates ``(mean s_x, mean x μᵀ, E[y], E[yyᵀ])`` and the log-likelihood.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters the sums were computed with.
        obs_statistics : array, shape (obs_man.dim,)
            ``mean_n s_x(x_n)``.
        sums : tuple of arrays
            Totals of :meth:`estep_sums` over the rows.
        n_obs : int
            Number of rows.
        log_partition : array, shape (), optional
            ``ψ(params)`` where already known; None: computed here.

        Returns
        -------
        means : array, shape (dim,)
            Mean posterior statistics.
        log_likelihood : array, shape ()
            Average log-likelihood of ``params``.
        """
        cross, first, second, partition = sums
        covariance = self._posterior_covariance(params)[1]
        mean = first / n_obs
        spread = covariance + second / n_obs - mean[:, None] * mean[None, :]
        lat_means = self.pst_man.join_mean_covariance(mean, self.pst_rep.pack(spread))
        means = self.join_coords(obs_statistics, cross / n_obs, lat_means)
        return means, harmonium_log_likelihood(
            self, params, obs_statistics, partition, n_obs, log_partition
        )

    def estep_row_bytes(self) -> int:
        """Working bytes per row: ``8 (2p + 3d)``.

        Returns
        -------
        int
            Bytes.
        """
        return 8 * (2 * self.obs_dim + 3 * self.lat_dim)

    def mstep_regularize(self, means: Any, regularization: Regularization) -> Any:
        """Floor the noise variances at ``min_variance`` (``reg_covar``, ``min_weight``: no effect).

        Only where the M-step's noise ``Cov[x] − C S⁻¹ Cᵀ`` would fall below the floor
        (:func:`~hmog_xp.harmoniums.stabilizers.floor_noise_variances`). The latent prior is
        whitened to ``N(0, I)`` and there are no components, so the other two stabilisers
        have nothing to act on.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.
        regularization : Regularization
            The stabilisers.

        Returns
        -------
        array, shape (dim,)
            Regularised mean coordinates.
        """
        if regularization.min_variance <= 0.0:
            return means
        obs_means, cross, lat_means = self.split_coords(means)
        obs_means = floor_noise_variances(
            self.obs_man, obs_means, cross, lat_means, regularization.min_variance
        )
        return self.join_coords(obs_means, cross, lat_means)

    def mstep_frame(self, means: Any) -> Any:
        """:meth:`whiten_prior` (the latent prior becomes ``N(0, I)``).

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates.

        Returns
        -------
        array, shape (dim,)
            Whitened mean coordinates.
        """
        return self.whiten_prior(means)

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
