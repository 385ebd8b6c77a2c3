"""Conjugated harmoniums: the machinery shared by linear Gaussian models and mixtures.

A harmonium over ``(x, z)`` has sufficient statistics ``(s_x(x), a(x) ⊗ b(z), s_z(z))`` and
natural parameters ``(θ_x, W, θ_z)``, flat as ``concat(θ_x, W.reshape(-1), θ_z)`` with ``W``
of shape ``(rows, cols)``; ``a`` and ``b`` are the parts of ``s_x`` and ``s_z`` that interact
(``x`` and ``y`` for factor analysis; the component statistics and the one-hot label for
a mixture). Then

* the posterior ``z | x`` has natural parameters ``θ_z + embed_z(Wᵀ a(x))``;
* the likelihood ``x | z`` has natural parameters ``θ_x + embed_x(W b(z))``;
* conjugation: ``log ∫ exp(θ_x·s_x(x) + a(x)ᵀ W b(z)) dμ(x) = χ + ρ·s_z(z)``, so the prior of
  ``z`` has natural parameters ``θ_z + ρ`` (in the prior family, which may be more general
  than the posterior family), ``ψ(θ) = ψ_prior(θ_z + ρ) + χ``, and
  ``log p(x) = θ_x·s_x(x) + log μ_x(x) + ψ_z(posterior(x)) − ψ(θ)``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_finite, check_trailing_dim
from hmog_xp.families import ExponentialFamily
from hmog_xp.families.base import sample_count


@dataclass(frozen=True)
class Harmonium(ABC):
    """Base class of conjugated harmoniums (see the module docstring)."""

    # -- structure, given by subclasses ----------------------------------------------------

    @property
    @abstractmethod
    def obs_man(self) -> ExponentialFamily:
        """The observable family ``p(x | z)`` lives in."""

    @property
    @abstractmethod
    def pst_man(self) -> ExponentialFamily:
        """The latent family of the posterior ``p(z | x)`` (and of ``θ_z``)."""

    @property
    def prr_man(self) -> ExponentialFamily:
        """The latent family of the prior ``p(z)`` (the posterior's unless overridden)."""
        return self.pst_man

    @property
    @abstractmethod
    def int_shape(self) -> tuple[int, int]:
        """Shape ``(rows, cols)`` of the interaction matrix ``W``."""

    @abstractmethod
    def _obs_interaction_statistic(self, x: Any) -> Any:
        """``a(x)``, shape (..., rows)."""

    @abstractmethod
    def _lat_interaction_statistic(self, z: Any) -> Any:
        """``b(z)``, shape (..., cols)."""

    @abstractmethod
    def _lat_interaction_mean(self, lat_means: Any) -> Any:
        """``E[b(z)]`` from posterior-family mean coordinates, shape (..., cols)."""

    @abstractmethod
    def _embed_obs(self, shift: Any) -> Any:
        """Place ``W b(z)`` (..., rows) into observable natural coordinates."""

    @abstractmethod
    def _embed_lat(self, shift: Any) -> Any:
        """Place ``Wᵀ a(x)`` (..., cols) into posterior natural coordinates."""

    @abstractmethod
    def _embed_prior(self, lat_params: Any) -> Any:
        """Map ``θ_z`` from the posterior family into the prior family (identity if equal)."""

    @abstractmethod
    def conjugation_parameters(self, lkl_params: Any) -> tuple[Any, Any]:
        """Return ``(χ, ρ)`` of the likelihood ``(θ_x, W)``.

        Parameters
        ----------
        lkl_params : array, shape (..., obs_man.dim + rows * cols)
            Likelihood parameters ``concat(θ_x, W.reshape(-1))``.

        Returns
        -------
        chi : array, shape (...)
            The constant of the conjugation identity.
        rho : array, shape (..., prr_man.dim)
            The conjugation parameters, in prior-family coordinates.
        """

    # -- coordinates -----------------------------------------------------------------------

    @property
    def lkl_dim(self) -> int:
        """Length of likelihood parameters ``(θ_x, W)``."""
        rows, cols = self.int_shape
        return self.obs_man.dim + rows * cols

    @property
    def dim(self) -> int:
        """Length of the parameter vectors."""
        return self.lkl_dim + self.pst_man.dim

    @property
    def data_dim(self) -> int:
        """Dimension of one observation ``x``."""
        return self.obs_man.data_dim

    def _check_params(self, params: Any, name: str = "params") -> ModuleType:
        check_trailing_dim(params, self.dim, name, repr(self))
        return B.array_namespace(params)

    def _check_x(self, x: Any, name: str = "x") -> ModuleType:
        check_trailing_dim(x, self.data_dim, name, repr(self))
        xp = B.array_namespace(x)
        check_finite(x, name, xp=xp)
        return xp

    def split_coords(self, params: Any) -> tuple[Any, Any, Any]:
        """Split parameters (natural or mean) into observable, interaction and latent parts.

        Parameters
        ----------
        params : array, shape (..., dim)
            Harmonium coordinates.

        Returns
        -------
        obs : array, shape (..., obs_man.dim)
            Observable part.
        interaction : array, shape (..., rows, cols)
            Interaction matrix.
        lat : array, shape (..., pst_man.dim)
            Latent part.
        """
        xp = self._check_params(params)
        rows, cols = self.int_shape
        obs_end = self.obs_man.dim
        interaction = xp.reshape(
            params[..., obs_end : self.lkl_dim], (*params.shape[:-1], rows, cols)
        )
        return params[..., :obs_end], interaction, params[..., self.lkl_dim :]

    def join_coords(self, obs: Any, interaction: Any, lat: Any) -> Any:
        """Inverse of :meth:`split_coords` (batch axes broadcast).

        Parameters
        ----------
        obs : array, shape (..., obs_man.dim)
            Observable part.
        interaction : array, shape (..., rows, cols)
            Interaction matrix.
        lat : array, shape (..., pst_man.dim)
            Latent part.

        Returns
        -------
        array, shape (..., dim)
            Harmonium coordinates.
        """
        xp = B.array_namespace(obs, interaction, lat)
        rows, cols = self.int_shape
        if tuple(interaction.shape[-2:]) != (rows, cols):
            msg = (
                f"interaction has shape {tuple(interaction.shape)}; expected (..., {rows}, {cols})"
            )
            raise ValidationError(msg)
        flat = xp.reshape(interaction, (*interaction.shape[:-2], rows * cols))
        parts = [obs, flat, lat]
        batch = B.broadcast_shapes(*(part.shape[:-1] for part in parts))
        parts = [xp.broadcast_to(part, (*batch, part.shape[-1])) for part in parts]
        return xp.concat(parts, axis=-1)

    # -- conditionals and conjugation -----------------------------------------------------------

    def likelihood_at(self, params: Any, z: Any) -> Any:
        """Natural parameters of ``x | z``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        z : array, shape (..., *pst_man.data_shape)
            Latent values.

        Returns
        -------
        array, shape (..., obs_man.dim)
            Observable natural parameters ``θ_x + embed(W b(z))``.
        """
        obs, interaction, _ = self.split_coords(params)
        shift = _matvec(interaction, self._lat_interaction_statistic(z))
        return obs + self._embed_obs(shift)

    def posterior_at(self, params: Any, x: Any) -> Any:
        """Natural parameters of ``z | x``, batched over observations.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        x : array, shape (..., data_dim)
            Observations.

        Returns
        -------
        array, shape (..., pst_man.dim)
            Posterior natural parameters ``θ_z + embed(Wᵀ a(x))``.
        """
        self._check_x(x)
        _, interaction, lat = self.split_coords(params)
        shift = _vecmat(self._obs_interaction_statistic(x), interaction)
        return lat + self._embed_lat(shift)

    def split_conjugated(self, params: Any) -> tuple[Any, Any]:
        """Split natural parameters into likelihood parameters and prior natural parameters.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        lkl_params : array, shape (..., lkl_dim)
            ``concat(θ_x, W.reshape(-1))``.
        prior : array, shape (..., prr_man.dim)
            Prior natural parameters ``embed(θ_z) + ρ``.
        """
        self._check_params(params)
        lkl_params = params[..., : self.lkl_dim]
        rho = self.conjugation_parameters(lkl_params)[1]
        return lkl_params, self._embed_prior(params[..., self.lkl_dim :]) + rho

    def join_conjugated(self, lkl_params: Any, prior: Any) -> Any:
        """Inverse of :meth:`split_conjugated`: ``θ_z = prior − ρ(lkl_params)``.

        Only for harmoniums whose prior and posterior families coincide.

        Parameters
        ----------
        lkl_params : array, shape (..., lkl_dim)
            ``concat(θ_x, W.reshape(-1))``.
        prior : array, shape (..., prr_man.dim)
            Prior natural parameters.

        Returns
        -------
        array, shape (..., dim)
            Natural parameters.
        """
        if self.prr_man != self.pst_man:
            msg = (
                f"join_conjugated needs the prior and posterior families of {self!r} to "
                f"coincide; here the prior is {self.prr_man!r} and the posterior "
                f"{self.pst_man!r}"
            )
            raise ValidationError(msg)
        check_trailing_dim(lkl_params, self.lkl_dim, "lkl_params", repr(self))
        check_trailing_dim(prior, self.prr_man.dim, "prior", repr(self))
        xp = B.array_namespace(lkl_params, prior)
        rho = self.conjugation_parameters(lkl_params)[1]
        lat = prior - rho
        batch = B.broadcast_shapes(lkl_params.shape[:-1], lat.shape[:-1])
        parts = [xp.broadcast_to(part, (*batch, part.shape[-1])) for part in (lkl_params, lat)]
        return xp.concat(parts, axis=-1)

    def prior(self, params: Any) -> Any:
        """Natural parameters of the latent prior ``p(z)`` (in ``prr_man``).

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        array, shape (..., prr_man.dim)
            Prior natural parameters.
        """
        return self.split_conjugated(params)[1]

    def log_partition_function(self, params: Any) -> Any:
        """Return ``ψ(θ) = ψ_prior(prior(θ)) + χ``.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        array, shape (...)
            Log-partition values.
        """
        self._check_params(params)
        lkl_params = params[..., : self.lkl_dim]
        chi, rho = self.conjugation_parameters(lkl_params)
        prior = self._embed_prior(params[..., self.lkl_dim :]) + rho
        return self.prr_man.log_partition_function(prior) + chi

    # -- densities ---------------------------------------------------------------------------

    def _posterior_log_partition(self, params: Any, x: Any) -> Any:
        """``ψ_z(posterior(x))`` for every observation; subclasses share factorisations."""
        return self.pst_man.log_partition_function(self.posterior_at(params, x))

    def _posterior_means(self, params: Any, x: Any) -> Any:
        """Posterior mean coordinates for every observation, shape (..., pst_man.dim)."""
        return self.pst_man.to_mean(self.posterior_at(params, x))

    def log_observable_density(self, params: Any, x: Any) -> Any:
        """Return ``log p(x)`` for every observation.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        x : array, shape (..., data_dim)
            Observations.

        Returns
        -------
        array, shape (...)
            Log marginal densities.
        """
        xp = self._check_x(x)
        self._check_params(params)
        obs = params[..., : self.obs_man.dim]
        statistic = self.obs_man.sufficient_statistic(x)
        return (
            xp.sum(obs * statistic, axis=-1)
            + self.obs_man.log_base_measure(x)
            + self._posterior_log_partition(params, x)
            - self.log_partition_function(params)
        )

    def observable_density(self, params: Any, x: Any) -> Any:
        """Return ``p(x)`` (see :meth:`log_observable_density`).

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        x : array, shape (..., data_dim)
            Observations.

        Returns
        -------
        array, shape (...)
            Marginal densities.
        """
        return B.array_namespace(x).exp(self.log_observable_density(params, x))

    def average_log_observable_density(self, params: Any, xs: Any) -> Any:
        """Return the average log-likelihood ``mean_n log p(x_n)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, data_dim)
            Observations, ``N >= 1``.

        Returns
        -------
        array, shape ()
            Average log-likelihood.
        """
        xp = self._check_sample(xs)
        return xp.mean(self.log_observable_density(params, xs))

    def _check_sample(self, xs: Any) -> ModuleType:
        xp = self._check_x(xs, "xs")
        if xs.ndim != 2 or xs.shape[0] == 0:
            msg = f"xs must have shape (N, {self.data_dim}) with N >= 1; got {tuple(xs.shape)}"
            raise ValidationError(msg)
        return xp

    # -- statistics ----------------------------------------------------------------------------

    def posterior_statistics(self, params: Any, x: Any) -> Any:
        """Return ``(s_x(x), a(x) ⊗ E[b(z)|x], E[s_z(z)|x])`` per observation.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        x : array, shape (..., data_dim)
            Observations.

        Returns
        -------
        array, shape (..., dim)
            Expected joint statistics given each observation (mean coordinates).
        """
        self._check_x(x)
        lat_means = self._posterior_means(params, x)
        outer = (
            self._obs_interaction_statistic(x)[..., :, None]
            * self._lat_interaction_mean(lat_means)[..., None, :]
        )
        return self.join_coords(self.obs_man.sufficient_statistic(x), outer, lat_means)

    def mean_posterior_statistics(self, params: Any, xs: Any) -> Any:
        """Average of :meth:`posterior_statistics` over a sample (the E-step).

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, data_dim)
            Observations.

        Returns
        -------
        array, shape (dim,)
            Mean coordinates of the expected complete-data statistics.
        """
        xp = self._check_sample(xs)
        n_obs = xs.shape[0]
        lat_means = self._posterior_means(params, xs)
        outer = (
            xp.matrix_transpose(self._obs_interaction_statistic(xs))
            @ self._lat_interaction_mean(lat_means)
        ) / n_obs
        return self.join_coords(
            xp.mean(self.obs_man.sufficient_statistic(xs), axis=0),
            outer,
            xp.mean(lat_means, axis=0),
        )

    # -- sampling ----------------------------------------------------------------------------

    def sample(self, rng: Any, params: Any, n: int) -> tuple[Any, Any]:
        """Draw ``n`` joint samples: ``z`` from the prior, then ``x | z``.

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
        xs : array, shape (n, data_dim)
            Observations.
        zs : array, shape (n, *prr_man.data_shape)
            Latent values.
        """
        xp = self._check_params(params)
        source = B.random_source(rng, xp, B.device_of(params))
        zs = self.prr_man.sample(source, self.prior(params), sample_count(n))
        likelihoods = self.likelihood_at(params, zs)
        xs = self.obs_man.sample(source, likelihoods, 1)[0, ...]
        return xs, zs

    def observable_sample(self, rng: Any, params: Any, n: int) -> Any:
        """Draw ``n`` observations from the marginal ``p(x)``.

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
        array, shape (n, data_dim)
            Observations.
        """
        return self.sample(rng, params, n)[0]


def _matvec(matrix: Any, vectors: Any) -> Any:
    """``matrix @ v`` for each vector ``v`` (..., cols), one GEMM when ``matrix`` is 2-D."""
    xp = B.array_namespace(matrix, vectors)
    if matrix.ndim == 2:
        return vectors @ xp.matrix_transpose(matrix)
    return (matrix @ vectors[..., None])[..., 0]


def _vecmat(vectors: Any, matrix: Any) -> Any:
    """``vᵀ @ matrix`` for each vector ``v`` (..., rows), one GEMM when ``matrix`` is 2-D."""
    if matrix.ndim == 2:
        return vectors @ matrix
    return (vectors[..., None, :] @ matrix)[..., 0, :]
