"""Gaussian-mixture structure: fields, coordinates, components and conjugation.

The model is described in :mod:`hmog_xp.harmoniums.mixture`; :class:`Mixture` adds
initialisation and the user-facing quantities.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_small
from hmog_xp.families import Categorical, Normal
from hmog_xp.families.base import check_dim
from hmog_xp.harmoniums.base import Harmonium
from hmog_xp.reps import CovarianceRep


@dataclass(frozen=True)
class MixtureStructure(Harmonium):  # numpydoc ignore=PR02
    """Fields, coordinates, components and conjugation of a Gaussian mixture.

    Parameters
    ----------
    component_man : Normal
        The component family ``Normal(d, rep)`` (also the harmonium's ``obs_man``).
    n_components : int
        Number of components ``K >= 1``.
    sub_rep : CovarianceRep, optional
        What varies across components (default: ``component_man.rep``).
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

    @functools.cached_property
    def varying_rep(self) -> CovarianceRep:
        """The rep in which components differ (``sub_rep`` or the component rep)."""
        return self.component_man.rep if self.sub_rep is None else self.sub_rep

    @functools.cached_property
    def sub_man(self) -> Normal:
        """``Normal(d, sub_rep)``: the varying part of the components."""
        return Normal(self.component_man.n, self.varying_rep)

    @property
    def obs_man(self) -> Normal:
        """The component family (the harmonium's observable)."""
        return self.component_man

    @functools.cached_property
    def pst_man(self) -> Categorical:
        """``Categorical(K)``: the component label."""
        return Categorical(self.n_components)

    @functools.cached_property
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

    def components_from_likelihood(self, lkl_params: Any) -> Any:
        """Natural parameters of every component from the likelihood part ``(θ_y, Θ)``.

        Parameters
        ----------
        lkl_params : array, shape (..., lkl_dim)
            ``concat(θ_y, Θ.reshape(-1))``.

        Returns
        -------
        array, shape (..., K, obs_man.dim)
            ``θ_0 = θ_y`` and ``θ_k = θ_y + embed(Θ[:, k−1])``.
        """
        xp = B.array_namespace(lkl_params)
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
        components = self.components_from_likelihood(lkl_params)
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
        lkl_params, prior = self.split_conjugated(params)
        return self.components_from_likelihood(lkl_params), prior

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
        return self.join_conjugated(self._likelihood_of_components(components), weights)

    def join_natural_mixture_with_log_partitions(
        self, components: Any, weights: Any, log_partitions: Any
    ) -> Any:
        """:meth:`join_natural_mixture` given the components' log-partitions ``ψ_y(θ_k)``.

        The conjugation parameters are their differences, so no component is factorised again
        (an M-step has the factors of the covariances it inverted).

        Parameters
        ----------
        components : array, shape (..., K, obs_man.dim)
            Natural parameters of each component.
        weights : array, shape (..., K − 1)
            Natural parameters of the mixture weights.
        log_partitions : array, shape (..., K)
            ``ψ_y(θ_k)`` of each component.

        Returns
        -------
        array, shape (..., dim)
            Natural parameters.
        """
        xp = B.array_namespace(components, weights, log_partitions)
        check_dim(weights, self.pst_man.dim, "weights", self)
        check_dim(log_partitions, self.n_components, "log_partitions", self)
        rho = log_partitions[..., 1:] - log_partitions[..., :1]
        lkl_params = self._likelihood_of_components(components)
        return B.concat_broadcast([lkl_params, weights - rho], xp=xp)

    def _likelihood_of_components(self, components: Any) -> Any:
        """``concat(θ_0, Θ.reshape(-1))`` with ``Θ[:, k−1] = restrict(θ_k − θ_0)``."""
        xp = B.array_namespace(components)
        first = components[..., 0, :]
        differences = components[..., 1:, :] - first[..., None, :]
        if self.varying_rep != self.component_man.rep:  # complete mixtures: any components
            restricted = self._restrict(differences)
            check_small(
                xp.abs(self._embed_obs(restricted) - differences)
                - 1e-9 * (1.0 + xp.abs(components[..., 1:, :])),
                f"components of {self!r} may differ only in {self.varying_rep!r}",
                xp=xp,
            )
            differences = restricted
        interaction = xp.matrix_transpose(differences)
        rows, cols = self.int_shape
        flat = xp.reshape(interaction, (*interaction.shape[:-2], rows * cols))
        return xp.concat([first, flat], axis=-1)

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
        weighted, weights = self.split_weighted_mean_mixture(means)
        return weighted / weights[..., :, None], weights

    def split_weighted_mean_mixture(self, means: Any) -> tuple[Any, Any]:
        """Weighted component statistics ``π_k η_k`` and weights (inverse of the join).

        No division by the weights, so components of weight zero are harmless. Only
        complete mixtures determine every component's statistics.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mixture mean coordinates.

        Returns
        -------
        weighted : array, shape (..., K, obs_man.dim)
            ``π_k η_k`` for each component.
        weights : array, shape (..., K)
            Component probabilities.
        """
        if self.varying_rep != self.component_man.rep:
            msg = (
                f"splitting mean coordinates by component needs a complete mixture; {self!r} "
                f"varies only in {self.varying_rep!r}"
            )
            raise ValidationError(msg)
        xp = self._check_params(means, "means")
        total, weighted, probs = self.split_coords(means)
        weights = xp.concat([1.0 - xp.sum(probs, axis=-1, keepdims=True), probs], axis=-1)
        rest = xp.matrix_transpose(weighted)  # (..., K−1, dim)
        first = total - xp.sum(rest, axis=-2)
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
        return self.join_weighted_mean_mixture(weights[..., :, None] * components, weights)

    def join_weighted_mean_mixture(self, weighted: Any, weights: Any) -> Any:
        """Mixture mean coordinates from weighted component statistics ``π_k η_k``.

        The same as :meth:`join_mean_mixture` without dividing by the weights, so
        components of weight zero are harmless (the E-step accumulates these sums).

        Parameters
        ----------
        weighted : array, shape (..., K, obs_man.dim)
            ``π_k η_k`` for each component.
        weights : array, shape (..., K)
            Component probabilities.

        Returns
        -------
        array, shape (..., dim)
            ``(Σ_k π_k η_k, (project_sub(π_k η_k))_{k≥1}, (π_k)_{k≥1})``.
        """
        xp = B.array_namespace(weighted, weights)
        total = xp.sum(weighted, axis=-2)
        sub = self.component_man.project_rep(weighted[..., 1:, :], self.varying_rep)
        return self.join_coords(total, xp.matrix_transpose(sub), weights[..., 1:])
