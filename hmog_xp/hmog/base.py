"""Hierarchical mixtures of Gaussians: what the three variants share.

An HMoG is a harmonium whose observable is the linear Gaussian model's ``x``, whose
interaction is the LGM's ``W`` (coupling ``x`` to ``y`` only), and whose latent part is a
whole Gaussian-mixture harmonium over ``(y, z)``. Natural parameters
``(θ_x, W, θ_upper)``, with ``θ_upper`` in the *posterior* upper mixture's coordinates.

* posterior ``p(y, z | x)``: the upper mixture with ``θ_y``'s linear part shifted by ``Wᵀx``;
* prior ``p(y, z)``: the upper mixture embedded into the *prior* upper mixture, plus the LGM's
  conjugation parameters ``ρ`` on ``θ_y``;
* ``ψ(θ) = ψ_x(θ_x) + ψ_mix(prior)`` and ``log p(x) = θ_x·s_x(x) + log μ_x(x)
  + ψ_mix(posterior(x)) − ψ(θ)``;
* ``p(x)`` is a Gaussian mixture in ``R^p``: component ``k`` is ``N(A μ_k + b, A Σ_k Aᵀ + Ψ)``
  (:meth:`HierarchicalMixtureOfGaussians.observable_mixture`).

Posteriors are computed for all observations and components at once
(:mod:`hmog_xp.hmog._posterior`): component factorisations once per call, the per-observation
work as batched products.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._backend.chunks import map_rows
from hmog_xp._errors import ValidationError
from hmog_xp.families import Normal
from hmog_xp.harmoniums import LinearGaussianModel, Mixture
from hmog_xp.harmoniums._structure import pad_zeros
from hmog_xp.harmoniums.base import Harmonium
from hmog_xp.harmoniums.mixture import mixture_moments
from hmog_xp.hmog import _far_rows as F
from hmog_xp.hmog import _posterior as P
from hmog_xp.hmog._estep import HMoGEStep
from hmog_xp.hmog._readable import ReadableHMoG, conjugation_compensation
from hmog_xp.reps import PositiveDefinite


@dataclass(frozen=True)
class HierarchicalMixtureOfGaussians(ReadableHMoG, Harmonium, HMoGEStep):
    """Base class of the HMoG variants (see the module docstring)."""

    # -- structure given by the variants -------------------------------------------------------

    @property
    @abstractmethod
    def lower_harmonium(self) -> LinearGaussianModel:
        """The linear Gaussian model ``x ↔ y``."""

    @property
    @abstractmethod
    def posterior_upper(self) -> Mixture:
        """The upper mixture in which ``θ_upper`` and posteriors live."""

    @property
    @abstractmethod
    def prior_upper(self) -> Mixture:
        """The upper mixture in which the prior lives."""

    @property
    def n_components(self) -> int:
        """Number of mixture components ``K``."""
        return self.posterior_upper.n_components

    def __repr__(self) -> str:
        lower = self.lower_harmonium
        return (
            f"{type(self).__name__}(obs_dim={lower.obs_dim}, obs_rep={lower.obs_rep!r}, "
            f"lat_dim={lower.lat_dim}, {self._rep_description()}, "
            f"n_components={self.n_components})"
        )

    def _rep_description(self) -> str:
        return f"pst_rep={self.posterior_upper.component_man.rep!r}"

    # -- harmonium hooks -----------------------------------------------------------------------

    @property
    def obs_man(self) -> Normal:
        """The observable family ``Normal(p, obs_rep)``."""
        return self.lower_harmonium.obs_man

    @property
    def pst_man(self) -> Mixture:  # type: ignore[override]
        """The posterior upper mixture (a harmonium over ``(y, z)``)."""
        return self.posterior_upper

    @property
    def prr_man(self) -> Mixture:  # type: ignore[override]
        """The prior upper mixture."""
        return self.prior_upper

    @property
    def int_shape(self) -> tuple[int, int]:
        """``(p, d)``."""
        return self.lower_harmonium.int_shape

    @property
    def lat_dim(self) -> int:
        """Latent dimension ``d``."""
        return self.lower_harmonium.lat_dim

    def _obs_interaction_statistic(self, x: Any) -> Any:
        return x

    def _lat_interaction_statistic(self, z: Any) -> Any:
        return z

    def _lat_interaction_mean(self, lat_means: Any) -> Any:
        return lat_means[..., : self.lat_dim]

    def _embed_obs(self, shift: Any) -> Any:
        return pad_zeros(shift, self.obs_man.dim)

    def _embed_lat(self, shift: Any) -> Any:
        return pad_zeros(shift, self.posterior_upper.dim)

    def _embed_prior(self, lat_params: Any) -> Any:
        return lat_params

    def _join_exact_prior(self, lkl_params: Any, prior: Any) -> Any:
        """Natural parameters with likelihood ``lkl_params`` and exactly the prior ``prior``."""
        return self.join_conjugated(lkl_params, prior)

    def _upper_for_prior(self, lkl_params: Any, upper: Any) -> Any:
        """Natural parameters whose prior is ``upper`` (posterior-mixture coordinates).

        Where the prior and posterior mixtures coincide this is exact (``join_conjugated``).
        Otherwise (restricted posteriors) the prior cannot be set freely: every component
        precision is raised by ``c I`` so that the prior stays valid and close in shape.
        """
        xp = B.array_namespace(lkl_params, upper)
        if self.prior_upper == self.posterior_upper:
            return self.join_conjugated(lkl_params, upper)
        shift = conjugation_compensation(self.lower_harmonium, lkl_params)
        return xp.concat([lkl_params, upper + pad_zeros(shift, upper.shape[-1])], axis=-1)

    def conjugation_parameters(self, lkl_params: Any) -> tuple[Any, Any]:
        """Return the LGM's ``(χ, ρ)``, with ``ρ`` placed on the prior mixture's ``θ_y``.

        Parameters
        ----------
        lkl_params : array, shape (..., lkl_dim)
            ``concat(θ_x, W.reshape(-1))``.

        Returns
        -------
        chi : array, shape (...)
            ``ψ_x(θ_x)``.
        rho : array, shape (..., prior_upper.dim)
            Conjugation parameters in prior-mixture coordinates.
        """
        chi, rho = self.lower_harmonium.conjugation_parameters(lkl_params)
        return chi, pad_zeros(rho, self.prior_upper.dim)

    # -- batched posteriors ---------------------------------------------------------------------

    def _by_rows(
        self, params: Any, x: Any, per_rows: Callable[[Any], Any], observable: bool = False
    ) -> Any:
        """Apply ``per_rows(ComponentPosteriors) -> (m, ...)`` to ``x`` chunk by chunk.

        Rows are processed in chunks of :meth:`estep_chunk_size`, so the ``(rows, K, d)``
        working arrays stay bounded whatever the batch size; results are concatenated and
        reshaped to ``x``'s batch shape. Posteriors come from :func:`F.chunk_posteriors`
        (rows far from the data give no NaN), with ``θ_x·s_x(x)`` in the logits if
        ``observable``.
        """
        xp = self._check_x(x, params=params)
        if params.ndim != 1:
            msg = (
                f"posterior and density methods of {self!r} take one parameter vector of "
                f"shape ({self.dim},); got {tuple(params.shape)} (loop, or jax.vmap, over a "
                f"batch of models)"
            )
            raise ValidationError(msg)
        obs, interaction, upper = self.split_coords(params)
        terms = P.component_terms(self.posterior_upper, upper)  # x-independent: once
        flat = xp.reshape(x, (-1, x.shape[-1]))
        n_rows = flat.shape[0]
        obs_terms = F.observable_terms(self.obs_man, obs) if observable else None
        plain = None if obs_terms is None else F.plain_observable(self.obs_man, obs, flat)
        size = self.estep_chunk_size(max(n_rows, 1))

        def block(rows: Any, plain_rows: Any = None) -> Any:
            posteriors = F.chunk_posteriors(
                self.posterior_upper, terms, rows, interaction, obs_terms, plain_rows
            )
            return per_rows(posteriors)

        if n_rows == 0:
            values = block(flat, plain)
        else:
            values = map_rows(block, (flat,) if plain is None else (flat, plain), size)
        return xp.reshape(values, (*x.shape[:-1], *values.shape[1:]))

    def _joint_log_partition(self, params: Any, x: Any) -> Any:
        return self._by_rows(params, x, F.leading_logit, observable=True)

    def _posterior_means(self, params: Any, x: Any) -> Any:
        xp = B.array_namespace(params, x)
        family = self.posterior_upper.component_man

        def per_rows(posteriors: P.ComponentPosteriors) -> Any:
            probs = P.responsibilities(posteriors)  # (m, K)
            means = P.component_means(posteriors)  # (m, K, d)
            second = family.rep.outer_statistic(means) + family.rep.packed_to_statistic(
                posteriors.covariances, family.n
            )
            weighted = probs[..., None] * xp.concat([means, second], axis=-1)
            return self.posterior_upper.join_weighted_mean_mixture(weighted, probs)

        return self._by_rows(params, x, per_rows)

    def mean_posterior_statistics(self, params: Any, xs: Any) -> Any:
        """The E-step: average over the data of ``(s_x(x), x ⊗ E[y|x], E[s_upper|x])``.

        Computed chunk by chunk (bounded memory) by :meth:`estep`.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, p)
            Observations.

        Returns
        -------
        array, shape (dim,)
            Mean coordinates of the expected complete-data statistics.
        """
        self._check_sample(xs, params)
        self._check_params(params)
        size = self.estep_chunk_size(xs.shape[0])
        statistics = self.estep_observable_statistics(xs, size)
        return self.estep(params, xs, statistics, size)[0]

    def posterior_categorical(self, params: Any, x: Any) -> Any:
        """Natural parameters of ``p(z | x)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        x : array, shape (..., p)
            Observations.

        Returns
        -------
        array, shape (..., K − 1)
            ``Categorical(K)`` natural parameters.
        """
        return self._by_rows(params, x, F.categorical_logits)

    def posterior_soft_assignments(self, params: Any, x: Any) -> Any:
        """Posterior component probabilities ``p(z = k | x)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        x : array, shape (..., p)
            Observations.

        Returns
        -------
        array, shape (..., K)
            Probabilities summing to one.
        """
        return self._by_rows(params, x, P.responsibilities)

    def posterior_assignments(self, params: Any, x: Any) -> Any:
        """Posterior component probabilities (same as :meth:`posterior_soft_assignments`).

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        x : array, shape (..., p)
            Observations.

        Returns
        -------
        array, shape (..., K)
            Probabilities summing to one.
        """
        return self.posterior_soft_assignments(params, x)

    def posterior_hard_assignment(self, params: Any, x: Any) -> Any:
        """Most probable component for each observation.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        x : array, shape (..., p)
            Observations.

        Returns
        -------
        array of int, shape (...)
            ``argmax_k p(z = k | x)``.
        """
        xp = B.array_namespace(params, x)
        return self._by_rows(params, x, lambda posteriors: xp.argmax(posteriors.logits, axis=-1))

    def posterior_latent_mean(self, params: Any, x: Any) -> Any:
        """Factor scores ``E[y | x]``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        x : array, shape (..., p)
            Observations.

        Returns
        -------
        array, shape (..., d)
            Posterior means of the latent factors.
        """
        return self._by_rows(
            params,
            x,
            lambda posteriors: P.latent_means(posteriors, P.responsibilities(posteriors)),
        )

    # -- closed-form moments and gradients --------------------------------------------------------

    def to_mean(self, params: Any) -> Any:
        """Expected joint statistics under the model, in closed form.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        array, shape (dim,)
            ``(E[s_x(x)], E[x yᵀ], E[s_upper(y, z)])``, upper statistics in the posterior
            mixture's coordinates.
        """
        weights, means, covariances, loadings, bias, noise = self.to_generative(params)
        marginal_mean, marginal_covariance = mixture_moments(weights, means, covariances)
        obs_means, cross = self.lower_harmonium.observable_moments(
            loadings, bias, noise, marginal_mean, marginal_covariance
        )
        full = Normal(self.lat_dim, PositiveDefinite())
        components = full.join_mean_covariance(means, PositiveDefinite().pack(covariances))
        upper = self.posterior_upper
        projected = full.project_rep(components, upper.component_man.rep)
        return self.join_coords(obs_means, cross, upper.join_mean_mixture(projected, weights))

    def log_likelihood_gradient(self, params: Any, xs: Any) -> Any:
        """Exact gradient of :meth:`average_log_observable_density` in natural coordinates.

        ``∇_θ mean_n log p(x_n) = mean_posterior_statistics(θ, xs) − to_mean(θ)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, p)
            Observations.

        Returns
        -------
        array, shape (dim,)
            The gradient.
        """
        return self.mean_posterior_statistics(params, xs) - self.to_mean(params)

    # -- sampling ---------------------------------------------------------------------------------

    def sample(self, rng: Any, params: Any, n: int) -> tuple[Any, Any, Any]:  # type: ignore[override]
        """Draw ``n`` joint samples: ``(y, z)`` from the prior mixture, then ``x | y``.

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
        xs : array, shape (n, p)
            Observations.
        ys : array, shape (n, d)
            Latent factors.
        zs : array of int, shape (n,)
            Component labels.
        """
        xp = self._check_params(params)
        source = B.random_source(rng, xp, B.device_of(params))
        lkl_params, prior = self.split_conjugated(params)
        ys, zs = self.prior_upper.sample(source, prior, n)
        xs = self.lower_harmonium.sample_observations(source, lkl_params, ys)
        return xs, ys, zs
