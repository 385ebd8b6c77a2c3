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

from dataclasses import dataclass, field
from types import ModuleType
from typing import Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.families import Normal
from hmog_xp.harmoniums._lgm_init import random_params, sample_params
from hmog_xp.harmoniums._structure import vecmat
from hmog_xp.harmoniums.base import Harmonium
from hmog_xp.reps import CovarianceRep, PositiveDefinite


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


@dataclass(frozen=True)
class LinearGaussianModel(Harmonium):  # numpydoc ignore=PR02
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

    obs_dim: int
    obs_rep: CovarianceRep
    lat_dim: int
    pst_rep: CovarianceRep = field(default_factory=PositiveDefinite)

    def __post_init__(self) -> None:
        for name in ("obs_dim", "lat_dim"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                msg = f"{name} must be a positive int; got {value!r}"
                raise ValidationError(msg)
        for name in ("obs_rep", "pst_rep"):
            rep = getattr(self, name)
            if not isinstance(rep, CovarianceRep):
                msg = f"{name} must be PositiveDefinite(), Diagonal() or Scale(); got {rep!r}"
                raise ValidationError(msg)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}({self.obs_dim}, {type(self.obs_rep).__name__}(), "
            f"{self.lat_dim}, {type(self.pst_rep).__name__}())"
        )

    # -- structure ---------------------------------------------------------------------------

    @property
    def obs_man(self) -> Normal:
        """``Normal(obs_dim, obs_rep)``."""
        return Normal(self.obs_dim, self.obs_rep)

    @property
    def pst_man(self) -> Normal:
        """``Normal(lat_dim, pst_rep)``: the posterior family."""
        return Normal(self.lat_dim, self.pst_rep)

    @property
    def prr_man(self) -> Normal:
        """``Normal(lat_dim, PositiveDefinite())``: the prior family."""
        return Normal(self.lat_dim, PositiveDefinite())

    @property
    def int_shape(self) -> tuple[int, int]:
        """``(obs_dim, lat_dim)``."""
        return self.obs_dim, self.lat_dim

    def _obs_interaction_statistic(self, x: Any) -> Any:
        return x

    def _lat_interaction_statistic(self, z: Any) -> Any:
        return z

    def _lat_interaction_mean(self, lat_means: Any) -> Any:
        return lat_means[..., : self.lat_dim]

    def _embed_linear(self, shift: Any, family: Normal) -> Any:
        xp = B.array_namespace(shift)
        zeros = xp.zeros(
            (*shift.shape[:-1], family.dim - family.n), dtype=shift.dtype, device=B.device_of(shift)
        )
        return xp.concat([shift, zeros], axis=-1)

    def _embed_obs(self, shift: Any) -> Any:
        return self._embed_linear(shift, self.obs_man)

    def _embed_lat(self, shift: Any) -> Any:
        return self._embed_linear(shift, self.pst_man)

    def _embed_prior(self, lat_params: Any) -> Any:
        return self.pst_man.embed_rep(lat_params, PositiveDefinite())

    # -- conjugation ---------------------------------------------------------------------------

    def _split_likelihood(self, lkl_params: Any) -> tuple[Any, Any, Any, Any]:
        """``(h_x, factor of Λ_x, L⁻¹ h_x, L⁻¹ W)`` with ``Λ_x = L Lᵀ``."""
        xp = B.array_namespace(lkl_params)
        obs_dim, lat_dim = self.int_shape
        obs = lkl_params[..., : self.obs_man.dim]
        loadings = xp.reshape(
            lkl_params[..., self.obs_man.dim :], (*lkl_params.shape[:-1], obs_dim, lat_dim)
        )
        location, precision = self.obs_man.split_location_precision(obs)
        factor = self.obs_man.cholesky_factor(precision, "observable precision")
        white_location = self.obs_rep.factor_solve(factor, location)
        white_interaction = self.obs_rep.factor_solve_matrix(factor, loadings)
        return location, factor, white_location, white_interaction

    def conjugation_parameters(self, lkl_params: Any) -> tuple[Any, Any]:
        """Return ``χ = ψ_x(θ_x)`` and ``ρ = (WᵀΛ_x⁻¹h_x, −WᵀΛ_x⁻¹W)`` (prior coordinates).

        Parameters
        ----------
        lkl_params : array, shape (..., lkl_dim)
            ``concat(θ_x, W.reshape(-1))``.

        Returns
        -------
        chi : array, shape (...)
            ``ψ_x(θ_x)``.
        rho : array, shape (..., prr_man.dim)
            Natural parameters added to the embedded ``θ_y`` to give the prior.
        """
        xp = B.array_namespace(lkl_params)
        _, factor, white_location, white_interaction = self._split_likelihood(lkl_params)
        chi = 0.5 * xp.sum(
            white_location * white_location, axis=-1
        ) - 0.5 * self.obs_rep.factor_logdet(factor, self.obs_dim)
        white_t = xp.matrix_transpose(white_interaction)
        rho_location = (white_t @ white_location[..., None])[..., 0]
        rho_precision = PositiveDefinite().pack(-(white_t @ white_interaction))
        return chi, self.prr_man.join_location_precision(rho_location, rho_precision)

    # -- batched posteriors (one factorisation of Λ_y per call) -----------------------------

    def _posterior_location_factor(self, params: Any, x: Any) -> tuple[Any, Any]:
        _, interaction, lat = self.split_coords(params)
        location, precision = self.pst_man.split_location_precision(lat)
        factor = self.pst_man.cholesky_factor(precision, "posterior precision")
        return location + vecmat(x, interaction), factor

    def _posterior_log_partition(self, params: Any, x: Any) -> Any:
        xp = B.array_namespace(params, x)
        location, factor = self._posterior_location_factor(params, x)
        white = self.pst_rep.factor_solve(factor, location)
        return 0.5 * xp.sum(white * white, axis=-1) - 0.5 * self.pst_rep.factor_logdet(
            factor, self.lat_dim
        )

    def _posterior_means(self, params: Any, x: Any) -> Any:
        location, factor = self._posterior_location_factor(params, x)
        covariance = self.pst_rep.factor_inverse(factor, self.lat_dim)
        mean = self.pst_rep.matvec(covariance, location)
        return self.pst_man.join_mean_covariance(mean, covariance)

    def posterior_latent_mean(self, params: Any, x: Any) -> Any:
        """Factor scores ``E[y | x]``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        x : array, shape (..., obs_dim)
            Observations.

        Returns
        -------
        array, shape (..., lat_dim)
            Posterior means.
        """
        self._check_x(x)
        return self._posterior_means(params, x)[..., : self.lat_dim]

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
        _, factor, white_location, white_interaction = self._split_likelihood(lkl_params)
        bias = self.obs_rep.factor_solve(factor, white_location, transpose=True)
        loadings = self.obs_rep.factor_solve_matrix(factor, white_interaction, transpose=True)
        noise = self.obs_rep.to_readable(
            self.obs_rep.factor_inverse(factor, self.obs_dim), self.obs_dim
        )
        latent_mean, latent_covariance = self.prr_man.to_moments(prior)
        return LinearGaussianParameters(loadings, bias, noise, latent_mean, latent_covariance)

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
        xp = B.array_namespace(params)
        loadings, bias, noise, mean, covariance = self.to_generative(params)
        obs_mean = bias + (loadings @ mean[..., None])[..., 0]
        obs_second = (
            self.obs_rep.packed_to_statistic(
                self.obs_rep.from_readable(noise, self.obs_dim, "noise"), self.obs_dim
            )
            + self.obs_rep.outer_statistic(obs_mean)
            + self.obs_rep.congruence_statistic(loadings, covariance)
        )
        cross = obs_mean[..., :, None] * mean[..., None, :] + loadings @ covariance
        full = self.prr_man.join_mean_covariance(mean, PositiveDefinite().pack(covariance))
        lat_means = self.prr_man.project_rep(full, self.pst_rep)
        return self.join_coords(xp.concat([obs_mean, obs_second], axis=-1), cross, lat_means)

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
        loadings, bias = self.to_generative(params)[:2]
        obs_precision = self.obs_man.split_location_precision(lkl_params[..., : self.obs_man.dim])[
            1
        ]
        noise_params = self.obs_man.join_location_precision(xp.zeros_like(bias), obs_precision)
        noise = self.obs_man.sample(source, noise_params, n)
        return ys @ xp.matrix_transpose(loadings) + bias + noise, ys
