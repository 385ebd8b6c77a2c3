"""Gaussian mixtures as harmoniums of a ``Normal(d, rep)`` and a ``Categorical(K)``.

Statistics ``(s_y(y), s_sub(y) ⊗ e_z, e_z)``, natural parameters ``(θ_y, Θ, θ_z)`` with ``Θ``
of shape ``(sub_dim, K−1)``: component ``k`` has natural parameters
``θ_y + embed(Θ[:, k−1])`` (``θ_y`` for ``k = 0``), where ``s_sub`` is the statistic of
``Normal(d, sub_rep)``, the part of the Normal that varies across components. A full
``sub_rep`` (the default) gives a complete mixture; ``Diagonal``/``Scale`` sub-reps give
components that share the rest of the precision.

* conjugation: ``χ = ψ_y(θ_0)``, ``ρ_k = ψ_y(θ_k) − ψ_y(θ_0)``;
* weights ``π = softmax(θ_z + ρ)`` (with ``θ_{z,0} = 0``);
* mean coordinates ``(Σ_k π_k E_k[s_y], (π_k E_k[s_sub])_{k≥1}, (π_k)_{k≥1})``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_finite, check_small
from hmog_xp.families import Categorical, Normal
from hmog_xp.harmoniums._mixture_init import random_params, sample_params
from hmog_xp.harmoniums.base import Harmonium
from hmog_xp.reps import CovarianceRep


class MixtureParameters(NamedTuple):
    """Readable Gaussian-mixture parameters.

    Attributes
    ----------
    weights : array, shape (K,)
        Component probabilities.
    means : array, shape (K, d)
        Component means.
    covariances : array, shape (K, d, d)
        Dense component covariances.
    """

    weights: Any
    means: Any
    covariances: Any


@dataclass(frozen=True)
class Mixture(Harmonium):  # numpydoc ignore=PR02
    """Mixture of ``n_components`` Normals that differ in their ``sub_rep`` part.

    Parameters
    ----------
    component_man : Normal
        The component family ``Normal(d, rep)`` (also the harmonium's ``obs_man``).
    n_components : int
        Number of components ``K >= 1``.
    sub_rep : CovarianceRep, optional
        What varies across components (default: ``obs_man.rep``, a complete mixture).
    """

    component_man: Normal
    n_components: int
    sub_rep: CovarianceRep | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.component_man, Normal):
            msg = f"a mixture needs a Normal component family; got {self.component_man!r}"
            raise ValidationError(msg)
        k = self.n_components
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            msg = f"n_components must be a positive int; got {k!r}"
            raise ValidationError(msg)
        if not self.component_man.rep.includes(self.varying_rep):
            msg = (
                f"sub_rep {self.varying_rep!r} must be at most as general as the component "
                f"rep {self.component_man.rep!r}"
            )
            raise ValidationError(msg)

    def __repr__(self) -> str:
        sub = "" if self.sub_rep is None else f", sub_rep={self.sub_rep!r}"
        return f"{type(self).__name__}({self.component_man!r}, {self.n_components}{sub})"

    # -- structure ---------------------------------------------------------------------------

    @property
    def varying_rep(self) -> CovarianceRep:
        """The rep in which components differ (``sub_rep`` or the component rep)."""
        return self.component_man.rep if self.sub_rep is None else self.sub_rep

    @property
    def sub_man(self) -> Normal:
        """``Normal(d, sub_rep)``: the varying part of the components."""
        return Normal(self.component_man.n, self.varying_rep)

    @property
    def obs_man(self) -> Normal:
        """The component family (the harmonium's observable)."""
        return self.component_man

    @property
    def pst_man(self) -> Categorical:
        """``Categorical(K)``: the component label."""
        return Categorical(self.n_components)

    @property
    def int_shape(self) -> tuple[int, int]:
        """``(sub_man.dim, K − 1)``."""
        return self.sub_man.dim, self.n_components - 1

    def _obs_interaction_statistic(self, x: Any) -> Any:
        return self.sub_man.sufficient_statistic(x)

    def _lat_interaction_statistic(self, z: Any) -> Any:
        return self.pst_man.sufficient_statistic(z)

    def _lat_interaction_mean(self, lat_means: Any) -> Any:
        return lat_means

    def _embed_obs(self, shift: Any) -> Any:
        return self.sub_man.embed_rep(shift, self.component_man.rep)

    def _embed_lat(self, shift: Any) -> Any:
        return shift

    def _embed_prior(self, lat_params: Any) -> Any:
        return lat_params

    def _restrict(self, component_params: Any) -> Any:
        """Left inverse of the embedding ``Normal(d, sub_rep) → Normal(d, rep)`` (natural)."""
        location, precision = self.component_man.split_location_precision(component_params)
        restricted = self.component_man.rep.convert(
            precision, self.component_man.n, self.varying_rep
        )
        return self.sub_man.join_location_precision(location, restricted)

    # -- components ------------------------------------------------------------------------------

    def _components_from_lkl(self, lkl_params: Any, *, xp: ModuleType) -> Any:
        """Natural parameters of every component, shape (..., K, obs_man.dim)."""
        obs = lkl_params[..., : self.obs_man.dim]
        rows, cols = self.int_shape
        interaction = xp.reshape(
            lkl_params[..., self.obs_man.dim :], (*lkl_params.shape[:-1], rows, cols)
        )
        shifts = self._embed_obs(xp.matrix_transpose(interaction))  # (..., K−1, dim)
        return xp.concat([obs[..., None, :], obs[..., None, :] + shifts], axis=-2)

    def conjugation_parameters(self, lkl_params: Any) -> tuple[Any, Any]:
        """Return ``χ = ψ_y(θ_0)`` and ``ρ_k = ψ_y(θ_k) − ψ_y(θ_0)``.

        Parameters
        ----------
        lkl_params : array, shape (..., lkl_dim)
            ``concat(θ_y, Θ.reshape(-1))``.

        Returns
        -------
        chi : array, shape (...)
            Log-partition of component 0.
        rho : array, shape (..., K − 1)
            Differences of component log-partitions.
        """
        xp = B.array_namespace(lkl_params)
        components = self._components_from_lkl(lkl_params, xp=xp)
        log_partitions = self.component_man.log_partition_function(components)
        return log_partitions[..., 0], log_partitions[..., 1:] - log_partitions[..., :1]

    def split_natural_mixture(self, params: Any) -> tuple[Any, Any]:
        """Split natural parameters into components and the weights' natural parameters.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        components : array, shape (..., K, obs_man.dim)
            Natural parameters of each component.
        weights : array, shape (..., K − 1)
            ``Categorical(K)`` natural parameters of the mixture weights.
        """
        xp = self._check_params(params)
        lkl_params, prior = self.split_conjugated(params)
        return self._components_from_lkl(lkl_params, xp=xp), prior

    def join_natural_mixture(self, components: Any, weights: Any) -> Any:
        """Inverse of :meth:`split_natural_mixture`.

        Parameters
        ----------
        components : array, shape (..., K, obs_man.dim)
            Natural parameters of each component; they must differ only in ``sub_rep``.
        weights : array, shape (..., K − 1)
            Natural parameters of the mixture weights.

        Returns
        -------
        array, shape (..., dim)
            Natural parameters.
        """
        xp = B.array_namespace(components, weights)
        first = components[..., 0, :]
        differences = self._restrict(components[..., 1:, :] - first[..., None, :])
        check_small(
            xp.abs(self._embed_obs(differences) - (components[..., 1:, :] - first[..., None, :]))
            - 1e-9 * (1.0 + xp.abs(components[..., 1:, :])),
            f"components of {self!r} may differ only in {self.varying_rep!r}",
            xp=xp,
        )
        interaction = xp.matrix_transpose(differences)
        rows, cols = self.int_shape
        flat = xp.reshape(interaction, (*interaction.shape[:-2], rows * cols))
        lkl_params = xp.concat([first, flat], axis=-1)
        return self.join_conjugated(lkl_params, weights)

    def split_mean_mixture(self, means: Any) -> tuple[Any, Any]:
        """Component mean coordinates and weights from mixture mean coordinates.

        Only complete mixtures (``sub_rep`` equal to the component rep) determine every
        component's mean coordinates.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mixture mean coordinates.

        Returns
        -------
        components : array, shape (..., K, obs_man.dim)
            Mean coordinates of each component.
        weights : array, shape (..., K)
            Component probabilities.
        """
        if self.varying_rep != self.component_man.rep:
            msg = (
                f"split_mean_mixture needs a complete mixture; {self!r} varies only in "
                f"{self.varying_rep!r}"
            )
            raise ValidationError(msg)
        xp = self._check_params(means, "means")
        total, weighted, probs = self.split_coords(means)
        first_prob = 1.0 - xp.sum(probs, axis=-1, keepdims=True)
        weights = xp.concat([first_prob, probs], axis=-1)
        weighted = xp.matrix_transpose(weighted)  # (..., K−1, dim)
        first = (total - xp.sum(weighted, axis=-2)) / first_prob
        rest = weighted / probs[..., :, None]
        return xp.concat([first[..., None, :], rest], axis=-2), weights

    def join_mean_mixture(self, components: Any, weights: Any) -> Any:
        """Mixture mean coordinates from component mean coordinates and weights.

        Parameters
        ----------
        components : array, shape (..., K, obs_man.dim)
            Mean coordinates of each component.
        weights : array, shape (..., K)
            Component probabilities.

        Returns
        -------
        array, shape (..., dim)
            ``(Σ_k π_k η_k, (π_k project_sub(η_k))_{k≥1}, (π_k)_{k≥1})``.
        """
        xp = B.array_namespace(components, weights)
        total = xp.sum(weights[..., :, None] * components, axis=-2)
        sub = self.component_man.project_rep(components[..., 1:, :], self.varying_rep)
        interaction = xp.matrix_transpose(weights[..., 1:, None] * sub)
        return self.join_coords(total, interaction, weights[..., 1:])

    # -- starting points ----------------------------------------------------------------------

    def initialize(
        self,
        rng: Any,
        location: float = 0.0,
        shape: float = 1.0,
        *,
        xp: ModuleType | None = None,
        dtype: Any = None,
    ) -> Any:
        """Random parameters: equal weights, identity covariances, random means.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness; picks the namespace when ``xp`` is None.
        location : float, optional
            Centre of the random means.
        shape : float, optional
            Spread of the random means.
        xp : module, optional
            Namespace.
        dtype : dtype, optional
            Floating dtype.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        return random_params(self, rng, location, shape, xp, dtype)

    def initialize_from_sample(self, rng: Any, xs: Any, min_var: float = 1e-6) -> Any:
        """Build parameters from data: means at distinct random points, pooled covariance.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness.
        xs : array, shape (N, d)
            Observations, ``N >= n_components``.
        min_var : float, optional
            Floor of the pooled variances.

        Returns
        -------
        array, shape (dim,)
            Natural parameters in ``xs``'s namespace.
        """
        self._check_sample(xs)
        return sample_params(self, rng, xs, min_var)

    # -- user-facing quantities -----------------------------------------------------------

    def posterior_soft_assignments(self, params: Any, xs: Any) -> Any:
        """Posterior component probabilities ``p(z = k | y)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (..., d)
            Observations.

        Returns
        -------
        array, shape (..., K)
            Probabilities summing to one along the last axis.
        """
        return self.pst_man.to_probs(self.posterior_at(params, xs))

    def to_mean(self, params: Any) -> Any:
        """Mean coordinates in closed form from the components and weights.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        array, shape (..., dim)
            Mixture mean coordinates.
        """
        components, weights = self.split_natural_mixture(params)
        return self.join_mean_mixture(
            self.component_man.to_mean(components), self.pst_man.to_probs(weights)
        )

    def to_generative(self, params: Any) -> MixtureParameters:
        """Return ``(weights, means, covariances)`` with dense covariances.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        MixtureParameters
            Weights ``(..., K)``, means ``(..., K, d)``, covariances ``(..., K, d, d)``.
        """
        components, weights = self.split_natural_mixture(params)
        means, covariances = self.component_man.to_moments(components)
        return MixtureParameters(self.pst_man.to_probs(weights), means, covariances)

    def from_generative(self, weights: Any, means: Any, covariances: Any) -> Any:
        """Natural parameters from weights, means and dense covariances.

        Parameters
        ----------
        weights : array, shape (K,)
            Component probabilities (positive, summing to one).
        means : array, shape (K, d)
            Component means.
        covariances : array, shape (K, d, d)
            Covariances of the component rep's structure; for a mixture with a restricted
            ``sub_rep`` the components must share the rest of their precision.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        xp = B.array_namespace(weights, means, covariances)
        k = self.n_components
        if tuple(weights.shape[-1:]) != (k,) or means.ndim < 2 or means.shape[-2] != k:
            msg = (
                f"{self!r} needs weights of shape ({k},) and means of shape ({k}, "
                f"{self.component_man.n}); got {tuple(weights.shape)} and {tuple(means.shape)}"
            )
            raise ValidationError(msg)
        check_finite(weights, "weights", xp=xp)
        components = self.component_man.from_moments(means, covariances)
        return self.join_natural_mixture(components, self.pst_man.from_probs(weights))

    def observable_mean_covariance(self, params: Any) -> tuple[Any, Any]:
        """Mean and dense covariance of the mixture's marginal distribution of ``y``.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        mean : array, shape (..., d)
            ``Σ_k π_k μ_k``.
        covariance : array, shape (..., d, d)
            ``Σ_k π_k (Σ_k + μ_k μ_kᵀ) − mean meanᵀ``.
        """
        xp = B.array_namespace(params)
        weights, means, covariances = self.to_generative(params)
        mean = xp.sum(weights[..., :, None] * means, axis=-2)
        second = xp.sum(
            weights[..., :, None, None] * (covariances + means[..., :, None] * means[..., None, :]),
            axis=-3,
        )
        return mean, second - mean[..., :, None] * mean[..., None, :]
