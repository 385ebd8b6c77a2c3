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

from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.families.base import sample_count
from hmog_xp.harmoniums._structure import HarmoniumStructure


@dataclass(frozen=True)
class Harmonium(HarmoniumStructure):
    """Base class of conjugated harmoniums (see the module docstring)."""

    # -- densities ---------------------------------------------------------------------------

    def _posterior_log_partition(self, params: Any, x: Any) -> Any:
        """``ψ_z(posterior(x))`` for every observation; subclasses share factorisations."""
        return self.pst_man.log_partition_function(self.posterior_at(params, x))

    def _joint_log_partition(self, params: Any, x: Any) -> Any:
        """``θ_x·s_x(x) + ψ_z(posterior(x))`` per observation: ``log p(x)`` up to constants."""
        xp = B.array_namespace(params, x)
        obs = params[..., : self.obs_man.dim]
        statistic = self.obs_man.sufficient_statistic(x)
        return xp.sum(obs * statistic, axis=-1) + self._posterior_log_partition(params, x)

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
        self._check_x(x, params=params)
        self._check_params(params)
        return (
            self._joint_log_partition(params, x)
            + self.obs_man.log_base_measure(x)
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
        xp = self._check_sample(xs, params)
        return xp.mean(self.log_observable_density(params, xs))

    def _check_sample(self, xs: Any, params: Any = None) -> ModuleType:
        xp = self._check_x(xs, "xs", params)
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
        self._check_x(x, params=params)
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
        xp = self._check_sample(xs, params)
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
