"""Linear Gaussian model structure: fields, conjugation and batched posteriors.

The model is described in :mod:`hmog_xp.harmoniums.lgm`; :class:`LinearGaussianModel` adds
initialisation, the generative form, mean coordinates and sampling.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.families import Normal
from hmog_xp.harmoniums._structure import pad_zeros, vecmat
from hmog_xp.harmoniums.base import Harmonium
from hmog_xp.reps import CovarianceRep, PositiveDefinite


@dataclass(frozen=True)
class LinearGaussianStructure(Harmonium):  # numpydoc ignore=PR02
    """Fields, conjugation and posteriors of a linear Gaussian model.

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

    @functools.cached_property
    def obs_man(self) -> Normal:
        """``Normal(obs_dim, obs_rep)``."""
        return Normal(self.obs_dim, self.obs_rep)

    @functools.cached_property
    def pst_man(self) -> Normal:
        """``Normal(lat_dim, pst_rep)``: the posterior family."""
        return Normal(self.lat_dim, self.pst_rep)

    @functools.cached_property
    def prr_man(self) -> Normal:
        """``Normal(lat_dim, PositiveDefinite())``: the prior family."""
        return Normal(self.lat_dim, PositiveDefinite())

    @functools.cached_property
    def int_shape(self) -> tuple[int, int]:
        """``(obs_dim, lat_dim)``."""
        return self.obs_dim, self.lat_dim

    def _obs_interaction_statistic(self, x: Any) -> Any:
        return x

    def _lat_interaction_statistic(self, z: Any) -> Any:
        return z

    def _lat_interaction_mean(self, lat_means: Any) -> Any:
        return lat_means[..., : self.lat_dim]

    def _embed_obs(self, shift: Any) -> Any:
        return pad_zeros(shift, self.obs_man.dim)

    def _embed_lat(self, shift: Any) -> Any:
        return pad_zeros(shift, self.pst_man.dim)

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
        self._check_x(x, params=params)
        return self._posterior_means(params, x)[..., : self.lat_dim]
