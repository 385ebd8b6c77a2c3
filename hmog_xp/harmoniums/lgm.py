"""Linear Gaussian models (factor analysis, probabilistic PCA) as harmoniums.

``LinearGaussianModel(obs_dim, obs_rep, lat_dim, pst_rep)`` is the harmonium of
``Normal(p, obs_rep)`` observations and ``Normal(d, pst_rep)`` latents coupled by a dense
``p x d`` matrix ``W`` through ``xᵀ W y``. With ``θ_x = (h_x, Λ_x)``:

* posterior ``y | x``: precision ``Λ_y`` (x-independent, in ``pst_rep``), linear term
  ``h_y + Wᵀ x``;
* conjugation: ``χ = ψ_x(θ_x)``, ``ρ = (Wᵀ Λ_x⁻¹ h_x, precision −Wᵀ Λ_x⁻¹ W)``, so the prior
  precision ``Λ_y − Wᵀ Λ_x⁻¹ W`` is a full matrix whatever ``pst_rep`` is: the prior lives in
  ``Normal(d, PositiveDefinite())``;
* generative form ``y ~ N(m, S)``, ``x | y ~ N(A y + b, Ψ)``: ``Λ_x = Ψ⁻¹``, ``h_x = Ψ⁻¹ b``,
  ``W = Ψ⁻¹ A``.

Everything that does not depend on ``x`` (factorisations of ``Λ_x`` and ``Λ_y``) is computed
once per call; the per-observation work is matrix products over all observations at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_finite
from hmog_xp.harmoniums._lgm_init import random_params, sample_params
from hmog_xp.harmoniums._lgm_structure import LinearGaussianStructure
from hmog_xp.reps import PositiveDefinite


class LinearGaussianParameters(NamedTuple):
    """Generative form ``y ~ N(latent_mean, latent_covariance)``, ``x = A y + b + ε``.

    Attributes
    ----------
    loadings : array, shape (p, d)
        ``A``.
    bias : array, shape (p,)
        ``b``.
    noise : array
        ``Ψ = Cov(ε)`` in the observable rep's form: ``(p, p)`` dense for
        ``PositiveDefinite``, ``(p,)`` variances for ``Diagonal``, a 0-d variance for
        ``Scale``.
    latent_mean : array, shape (d,)
        Prior mean ``m``.
    latent_covariance : array, shape (d, d)
        Prior covariance ``S``.
    """

    loadings: Any
    bias: Any
    noise: Any
    latent_mean: Any
    latent_covariance: Any


@dataclass(frozen=True, repr=False)
class LinearGaussianModel(LinearGaussianStructure):  # numpydoc ignore=PR02
    """Harmonium of ``Normal(obs_dim, obs_rep)`` and ``Normal(lat_dim, pst_rep)``.

    Parameters
    ----------
    obs_dim : int
        Observation dimension ``p``.
    obs_rep : CovarianceRep
        Noise structure: ``Diagonal()`` (factor analysis), ``Scale()`` (probabilistic PCA)
        or ``PositiveDefinite()``.
    lat_dim : int
        Latent dimension ``d``.
    pst_rep : CovarianceRep, optional
        Structure of the posterior precision ``Λ_y`` (default ``PositiveDefinite()``; a
        restricted rep makes posteriors cheap, the prior stays full).
    """

    # -- starting points ----------------------------------------------------------------------

    def initialize(
        self, rng: Any, shape: float = 0.1, *, xp: ModuleType | None = None, dtype: Any = None
    ) -> Any:
        """Random parameters: loadings ``shape · ε``, zero bias, unit noise, valid prior.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness; picks the namespace when ``xp`` is None.
        shape : float, optional
            Scale of the random loadings.
        xp : module, optional
            Namespace.
        dtype : dtype, optional
            Floating dtype.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        return random_params(self, rng, shape, xp, dtype)

    def initialize_from_sample(
        self, rng: Any, xs: Any, shape: float = 0.1, min_var: float = 1e-6
    ) -> Any:
        """Fit parameters to a sample by probabilistic PCA, loadings slightly jittered.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness.
        xs : array, shape (N, obs_dim)
            Observations.
        shape : float, optional
            Jitter of the loadings, in noise standard deviations (0: the exact PPCA fit).
        min_var : float, optional
            Floor of the noise variance.

        Returns
        -------
        array, shape (dim,)
            Natural parameters in ``xs``'s namespace.
        """
        self._check_sample(xs)
        return sample_params(self, rng, xs, shape, min_var)

    # -- generative form --------------------------------------------------------------------

    def to_generative(self, params: Any) -> LinearGaussianParameters:
        """Return ``(loadings A, bias b, noise Ψ, latent_mean m, latent_covariance S)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        LinearGaussianParameters
            The generative form; ``noise`` in the observable rep's form.
        """
        lkl_params, prior = self.split_conjugated(params)
        loadings, bias, noise = self.likelihood_generative(lkl_params)
        latent_mean, latent_covariance = self.prr_man.to_moments(prior)
        return LinearGaussianParameters(loadings, bias, noise, latent_mean, latent_covariance)

    def likelihood_generative(self, lkl_params: Any) -> tuple[Any, Any, Any]:
        """Return ``(A, b, Ψ)`` of the likelihood ``x | y ~ N(A y + b, Ψ)``.

        Parameters
        ----------
        lkl_params : array, shape (..., lkl_dim)
            ``concat(θ_x, W.reshape(-1))``.

        Returns
        -------
        loadings : array, shape (..., p, d)
            ``A = Λ_x⁻¹ W``.
        bias : array, shape (..., p)
            ``b = Λ_x⁻¹ h_x``.
        noise : array
            ``Ψ = Λ_x⁻¹`` in the observable rep's readable form.
        """
        _, factor, white_location, white_interaction = self._split_likelihood(lkl_params)
        bias = self.obs_rep.factor_solve(factor, white_location, transpose=True)
        loadings = self.obs_rep.factor_solve_matrix(factor, white_interaction, transpose=True)
        noise = self.obs_rep.to_readable(
            self.obs_rep.factor_inverse(factor, self.obs_dim), self.obs_dim
        )
        return loadings, bias, noise

    def likelihood_parameters(self, loadings: Any, bias: Any, noise: Any) -> Any:
        """Likelihood parameters ``(θ_x, W)`` of ``x | y ~ N(A y + b, Ψ)``.

        Parameters
        ----------
        loadings : array, shape (..., p, d)
            ``A``.
        bias : array, shape (..., p)
            ``b``.
        noise : array, shape (..., obs_rep.size(p))
            ``Ψ`` in the observable rep's plain storage.

        Returns
        -------
        array, shape (..., lkl_dim)
            ``concat(θ_x, W.reshape(-1))`` with ``Λ_x = Ψ⁻¹``, ``h_x = Ψ⁻¹b``, ``W = Ψ⁻¹A``.
        """
        return self._whitened_likelihood(loadings, bias, noise)[0]

    def likelihood_and_conjugation(
        self, loadings: Any, bias: Any, noise: Any
    ) -> tuple[Any, Any, Any]:
        """:meth:`likelihood_parameters` and their ``(χ, ρ)``, from one factorisation of ``Ψ``.

        With ``Ψ = F Fᵀ``: ``χ = ψ_x(θ_x) = ½ |F⁻¹b|² + ½ log|Ψ|`` and
        ``ρ = (AᵀΨ⁻¹b, −AᵀΨ⁻¹A)``, the values :meth:`conjugation_parameters` gives from the
        natural parameters (the M-step needs both, and has the factor at hand).

        Parameters
        ----------
        loadings : array, shape (..., p, d)
            ``A``.
        bias : array, shape (..., p)
            ``b``.
        noise : array, shape (..., obs_rep.size(p))
            ``Ψ`` in the observable rep's plain storage.

        Returns
        -------
        lkl_params : array, shape (..., lkl_dim)
            :meth:`likelihood_parameters`.
        chi : array, shape (...)
            ``ψ_x(θ_x)``.
        rho : array, shape (..., prr_man.dim)
            Natural parameters added to the embedded ``θ_y`` to give the prior.
        """
        xp = B.array_namespace(loadings, bias, noise)
        lkl_params, factor, white_bias, white = self._whitened_likelihood(loadings, bias, noise)
        chi = 0.5 * xp.sum(white_bias * white_bias, axis=-1) + 0.5 * self.obs_rep.factor_logdet(
            factor, self.obs_dim
        )
        white_t = xp.matrix_transpose(white)
        rho_location = (white_t @ white_bias[..., None])[..., 0]
        rho_precision = PositiveDefinite().pack(-(white_t @ white))
        return lkl_params, chi, self.prr_man.join_location_precision(rho_location, rho_precision)

    def _whitened_likelihood(self, loadings: Any, bias: Any, noise: Any) -> tuple[Any, ...]:
        """``(likelihood parameters, F, F⁻¹b, F⁻¹A)`` with ``Ψ = F Fᵀ``."""
        xp = B.array_namespace(loadings, bias, noise)
        rep = self.obs_rep
        factor = self.obs_man.cholesky_factor(noise, "noise covariance")
        white_bias = rep.factor_solve(factor, bias)
        location = rep.factor_solve(factor, white_bias, transpose=True)
        white = rep.factor_solve_matrix(factor, loadings)
        interaction = rep.factor_solve_matrix(factor, white, transpose=True)
        obs = self.obs_man.join_location_precision(
            location, rep.factor_inverse(factor, self.obs_dim)
        )
        flat = xp.reshape(interaction, (*interaction.shape[:-2], self.obs_dim * self.lat_dim))
        return B.concat_broadcast([obs, flat], xp=xp), factor, white_bias, white

    def likelihood_from_readable(self, loadings: Any, bias: Any, noise: Any) -> Any:
        """Validated :meth:`likelihood_parameters` from ``A (p, d)``, ``b (p,)`` and ``Ψ``.

        Parameters
        ----------
        loadings : array, shape (p, d)
            ``A``.
        bias : array, shape (p,)
            ``b``.
        noise : array or float
            ``Ψ`` in the observable rep's readable form: exactly ``(p, p)``, ``(p,)`` or a
            scalar.

        Returns
        -------
        array, shape (lkl_dim,)
            Likelihood parameters.

        Raises
        ------
        ValidationError
            If a shape differs from the above, a value is not finite, or ``Ψ`` is not
            positive definite.
        """
        xp = B.array_namespace(loadings, bias)
        noise = xp.asarray(noise, dtype=loadings.dtype, device=B.device_of(loadings))
        expected = {
            "loadings": (loadings, (self.obs_dim, self.lat_dim)),
            "bias": (bias, (self.obs_dim,)),
            "noise": (noise, self.obs_rep.readable_shape(self.obs_dim)),
        }
        for name, (value, shape) in expected.items():
            if tuple(value.shape) != shape:
                msg = f"{name} has shape {tuple(value.shape)}; {self!r} expects {shape}"
                raise ValidationError(msg)
            check_finite(value, name, xp=xp)
        noise_storage = self.obs_rep.from_readable(noise, self.obs_dim, "noise")
        return self.likelihood_parameters(loadings, bias, noise_storage)

    def sample_observations(self, rng: Any, lkl_params: Any, ys: Any) -> Any:
        """Draw ``x = A y + b + ε`` for each latent ``y``.

        Parameters
        ----------
        rng : int, generator, JAX key or RandomSource
            Randomness.
        lkl_params : array, shape (lkl_dim,)
            Likelihood parameters.
        ys : array, shape (n, d)
            Latent values.

        Returns
        -------
        array, shape (n, p)
            Observations.
        """
        xp = B.array_namespace(lkl_params, ys)
        source = B.random_source(rng, xp, B.device_of(lkl_params))
        loadings, bias, _ = self.likelihood_generative(lkl_params)
        precision = self.obs_man.split_location_precision(lkl_params[..., : self.obs_man.dim])[1]
        noise_params = self.obs_man.join_location_precision(xp.zeros_like(bias), precision)
        noise = self.obs_man.sample(source, noise_params, ys.shape[0])
        return ys @ xp.matrix_transpose(loadings) + bias + noise

    def to_mean(self, params: Any) -> Any:
        """Expected joint statistics under the model, in closed form.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        array, shape (dim,)
            ``(E[s_x(x)], E[x yᵀ], E[s_y(y)])`` with the latent statistics in ``pst_rep``.
        """
        loadings, bias, noise, mean, covariance = self.to_generative(params)
        obs_means, cross = self.observable_moments(loadings, bias, noise, mean, covariance)
        full = self.prr_man.join_mean_covariance(mean, PositiveDefinite().pack(covariance))
        lat_means = self.prr_man.project_rep(full, self.pst_rep)
        return self.join_coords(obs_means, cross, lat_means)

    def observable_moments(
        self, loadings: Any, bias: Any, noise: Any, latent_mean: Any, latent_covariance: Any
    ) -> tuple[Any, Any]:
        """Observable mean coordinates and ``E[x yᵀ]`` for ``x = A y + b + ε``.

        Only the first two moments of ``y`` matter, so this serves any latent distribution
        (a Normal here, a mixture in an HMoG).

        Parameters
        ----------
        loadings : array, shape (..., p, d)
            ``A``.
        bias : array, shape (..., p)
            ``b``.
        noise : array
            ``Ψ`` in the observable rep's readable form.
        latent_mean : array, shape (..., d)
            ``E[y]``.
        latent_covariance : array, shape (..., d, d)
            ``Cov(y)``.

        Returns
        -------
        obs_means : array, shape (..., obs_man.dim)
            ``(E[x], E[s₂(x)])``.
        cross : array, shape (..., p, d)
            ``E[x yᵀ]``.
        """
        xp = B.array_namespace(loadings, bias)
        obs_mean = bias + (loadings @ latent_mean[..., None])[..., 0]
        obs_second = (
            self.obs_rep.packed_to_statistic(
                self.obs_rep.from_readable(noise, self.obs_dim, "noise"), self.obs_dim
            )
            + self.obs_rep.outer_statistic(obs_mean)
            + self.obs_rep.congruence_statistic(loadings, latent_covariance)
        )
        cross = obs_mean[..., :, None] * latent_mean[..., None, :] + loadings @ latent_covariance
        return xp.concat([obs_mean, obs_second], axis=-1), cross

    def sample(self, rng: Any, params: Any, n: int) -> tuple[Any, Any]:
        """Draw ``n`` joint samples ``(x, y)``: ``y`` from the prior, ``x = A y + b + ε``.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness.
        params : array, shape (dim,)
            Natural parameters.
        n : int
            Number of draws.

        Returns
        -------
        xs : array, shape (n, obs_dim)
            Observations.
        ys : array, shape (n, lat_dim)
            Latent factors.
        """
        xp = self._check_params(params)
        source = B.random_source(rng, xp, B.device_of(params))
        lkl_params, prior = self.split_conjugated(params)
        ys = self.prr_man.sample(source, prior, n)
        return self.sample_observations(source, lkl_params, ys), ys
