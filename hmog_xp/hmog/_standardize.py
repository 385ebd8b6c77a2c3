"""Fitting in standardised coordinates: the affine equivariance of the HMoG family.

The family is closed under ``x ↦ D x + m`` (``D`` diagonal and positive): with
``z = D⁻¹(x − m)``, a model of ``z`` with ``(A, b, Ψ)`` is the model of ``x`` with
``(D A, D b + m, D Ψ D)``, the latent part unchanged, and
``log p_x(x) = log p_z(z) − Σ_j log D_j``. So maximum likelihood is equivariant, and a fit
whose starting points, stopping rule and stabilisers are defined on ``z`` (each column mean 0,
variance 1) gives the same answer whatever the data's units and offsets.

In natural coordinates ``(θ_x = (h, Λ), W, θ_upper)`` the same map reads
``Λ' = D⁻¹ Λ D⁻¹``, ``h' = D⁻¹ h + Λ' m``, ``W' = D⁻¹ W`` and ``θ_y``'s linear part shifted
by ``−W'ᵀ m``; it is exact for every variant (the latent structure is untouched).

Isotropic noise (``Ψ = λ I``) is closed only under a *common* scale, so its standardisation
centres every column but divides all of them by one number.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp.families import Normal
from hmog_xp.harmoniums import Mixture
from hmog_xp.hmog._readable import HMoGParameters
from hmog_xp.reps import Scale

if TYPE_CHECKING:
    from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians

__all__ = ["Standardization"]


class Standardization(NamedTuple):
    """A per-column affine map ``z = (x − location) / scale`` and its inverse.

    Build it from data with :meth:`from_data` (or :meth:`from_moments` when the column
    moments come from elsewhere, e.g. a Dask reduction), then move data with
    :meth:`standardize` / :meth:`unstandardize` and parameters with :meth:`params_to_data`
    / :meth:`params_from_data`.

    Attributes
    ----------
    location : array, shape (p,)
        Column centres ``m`` (the means).
    scale : array, shape (p,)
        Column scales ``D`` (positive): the standard deviations; a constant column has
        scale ``|m_j|`` (``1`` when it is zero), so it never divides by zero and still scales
        with the data's units.
    """

    location: Any
    scale: Any

    @classmethod
    def identity(cls, n_features: int, like: Any) -> Standardization:
        """The map that changes nothing.

        Parameters
        ----------
        n_features : int
            Number of columns ``p``.
        like : array
            An array whose namespace, dtype and device the map takes.

        Returns
        -------
        Standardization
            Location 0 and scale 1, shape ``(p,)``.
        """
        xp = B.array_namespace(like)
        shape = (n_features,)
        device = B.device_of(like)
        return cls(
            xp.zeros(shape, dtype=like.dtype, device=device),
            xp.ones(shape, dtype=like.dtype, device=device),
        )

    @classmethod
    def from_moments(
        cls, mean: Any, variance: Any, constant: Any, *, common_scale: bool = False
    ) -> Standardization:
        """Build the map from column moments.

        Parameters
        ----------
        mean : array, shape (p,)
            Column means.
        variance : array, shape (p,)
            Column variances (``≥ 0``).
        constant : array of bool, shape (p,)
            Which columns are exactly constant (their minimum equals their maximum).
        common_scale : bool, optional
            Divide every column by one scale, the root mean variance (for isotropic noise).

        Returns
        -------
        Standardization
            The map.
        """
        xp = B.array_namespace(mean, variance)
        one = xp.ones_like(mean)
        fallback = xp.where(mean != 0.0, xp.abs(mean), one)
        if common_scale:
            spread = xp.sqrt(xp.mean(variance))
            level = xp.max(fallback)
            value = xp.where(xp.all(constant), level, spread)
            return cls(mean, value * one)
        spread = xp.sqrt(xp.where(constant, one, variance))
        return cls(mean, xp.where(constant | (spread == 0.0), fallback, spread))

    @classmethod
    def from_data(
        cls, xs: Any, *, common_scale: bool = False, missing: bool = False
    ) -> Standardization:
        """Centre every column at its mean and scale it by its standard deviation.

        Parameters
        ----------
        xs : array, shape (N, p)
            Finite data (NaN where an entry is missing, with ``missing``).
        common_scale : bool, optional
            One scale for all columns, the root mean variance (isotropic noise).
        missing : bool, optional
            Ignore NaN entries: every column's moments are those of its observed entries
            (each column needs one).

        Returns
        -------
        Standardization
            The map (see the class docstring for constant columns).
        """
        xp = B.array_namespace(xs)
        if missing:
            observed = xp.logical_not(xp.isnan(xs))
            zeros = xp.zeros_like(xs)
            counts = xp.sum(xp.astype(observed, xs.dtype), axis=0)
            mean = xp.sum(xp.where(observed, xs, zeros), axis=0) / counts
            centred = xp.where(observed, xs - mean, zeros)
            variance = xp.sum(centred * centred, axis=0) / counts
            infinity = xp.full_like(xs, math.inf)
            low = xp.min(xp.where(observed, xs, infinity), axis=0)
            high = xp.max(xp.where(observed, xs, -infinity), axis=0)
            return cls.from_moments(mean, variance, low == high, common_scale=common_scale)
        mean = xp.mean(xs, axis=0)
        variance = xp.mean((xs - mean) ** 2, axis=0)
        constant = xp.max(xs, axis=0) == xp.min(xs, axis=0)
        return cls.from_moments(mean, variance, constant, common_scale=common_scale)

    # -- data --------------------------------------------------------------------------------

    def standardize(self, xs: Any) -> Any:
        """Return ``(xs − location) / scale``.

        Parameters
        ----------
        xs : array, shape (..., p)
            Data in their own units.

        Returns
        -------
        array, shape (..., p)
            Standardised data.
        """
        return (xs - self.location) / self.scale

    def unstandardize(self, zs: Any) -> Any:
        """Return ``zs · scale + location`` (inverse of :meth:`standardize`).

        Parameters
        ----------
        zs : array, shape (..., p)
            Standardised data.

        Returns
        -------
        array, shape (..., p)
            Data in the original units.
        """
        return zs * self.scale + self.location

    def log_density_shift(self) -> float:
        """Return ``−Σ_j log scale_j``: ``log p_x(x) = log p_z(z) + shift``.

        Returns
        -------
        float
            The log-Jacobian of ``x ↦ z``.
        """
        xp = B.array_namespace(self.scale)
        return -float(xp.sum(xp.log(self.scale)))

    def row_log_density_shift(self, xs: Any) -> Any:
        """Return ``−Σ_{j ∈ O_n} log scale_j`` of every row: the shift of ``log p(x_O)``.

        A row's observed entries ``x_O`` map to ``z_O`` by the same affine map restricted to
        ``O``, so ``log p_x(x_O) = log p_z(z_O)`` plus this; a complete row gets
        :meth:`log_density_shift`.

        Parameters
        ----------
        xs : array, shape (N, p)
            Data (NaN: missing).

        Returns
        -------
        array, shape (N,)
            The log-Jacobians of the rows' observed coordinates.
        """
        xp = B.array_namespace(xs)
        observed = xp.astype(xp.logical_not(xp.isnan(xs)), self.scale.dtype)
        return -(observed @ xp.log(self.scale))

    def inverse(self) -> Standardization:
        """The map in the other direction: ``x = (z − location') / scale'``.

        Returns
        -------
        Standardization
            Location ``−m / D`` and scale ``1 / D``.
        """
        return Standardization(-self.location / self.scale, 1.0 / self.scale)

    # -- parameters --------------------------------------------------------------------------

    def params_to_data(self, model: Any, params: Any) -> Any:
        """Natural parameters of ``x`` from those of the standardised ``z``.

        Parameters
        ----------
        model : HierarchicalMixtureOfGaussians, LinearGaussianModel or Mixture
            Any HMoG variant, linear Gaussian model or Gaussian mixture.
        params : array, shape (dim,)
            Natural parameters fitted to standardised data.

        Returns
        -------
        array, shape (dim,)
            The same model in the data's units (exact; see the module docstring).
        """
        return _affine_natural(model, params, self.location, self.scale)

    def params_from_data(self, model: Any, params: Any) -> Any:
        """Natural parameters of the standardised ``z`` from those of ``x``.

        Parameters
        ----------
        model : HierarchicalMixtureOfGaussians, LinearGaussianModel or Mixture
            Any HMoG variant, linear Gaussian model or Gaussian mixture.
        params : array, shape (dim,)
            Natural parameters in the data's units.

        Returns
        -------
        array, shape (dim,)
            The same model in standardised coordinates (inverse of :meth:`params_to_data`).
        """
        inverse = self.inverse()
        return _affine_natural(model, params, inverse.location, inverse.scale)

    def generative_to_data(
        self, model: HierarchicalMixtureOfGaussians, generative: HMoGParameters
    ) -> HMoGParameters:
        """Readable parameters of ``x`` from those of ``z``: ``(D A, D b + m, D Ψ D)``.

        Parameters
        ----------
        model : HierarchicalMixtureOfGaussians
            The model (its observable rep gives the shape of ``noise``).
        generative : HMoGParameters
            Readable parameters in standardised coordinates.

        Returns
        -------
        HMoGParameters
            The same model in the data's units; the latent mixture is unchanged.
        """
        weights, means, covariances, loadings, bias, noise = generative
        scale = self.scale
        rep = model.lower_harmonium.obs_rep
        if isinstance(rep, Scale):
            noise = noise * scale[0] ** 2
        elif noise.ndim == 2:
            noise = scale[:, None] * noise * scale[None, :]
        else:
            noise = noise * scale**2
        return HMoGParameters(
            weights,
            means,
            covariances,
            scale[:, None] * loadings,
            scale * bias + self.location,
            noise,
        )


def _affine_natural(model: Any, params: Any, location: Any, scale: Any) -> Any:
    """Natural parameters of ``x = scale · z + location`` from those of ``z``.

    Every HMoG variant and linear Gaussian model (interaction statistic ``x``); a Gaussian
    mixture component by component.
    """
    B.array_namespace(params, location, scale)  # a BackendError when they are mixed
    if isinstance(model, Mixture):
        components, weights = model.split_natural_mixture(params)
        moved = _affine_observable(model.obs_man, components, location, scale)
        return model.join_natural_mixture(moved, weights)
    obs, interaction, lat = model.split_coords(params)
    new_interaction = (1.0 / scale)[:, None] * interaction
    shift = (location[None, :] @ new_interaction)[..., 0, :]
    new_lat = lat - model._embed_lat(shift)
    new_obs = _affine_observable(model.obs_man, obs, location, scale)
    return model.join_coords(new_obs, new_interaction, new_lat)


def _affine_observable(obs_man: Normal, obs: Any, location: Any, scale: Any) -> Any:
    """Normal natural parameters ``(h, Λ)`` of ``x = scale · z + location`` (batched)."""
    rep = obs_man.rep
    p = obs_man.n
    linear, precision = obs_man.split_location_precision(obs)
    inverse = 1.0 / scale
    dense = rep.unpack(precision, p) * (inverse[:, None] * inverse[None, :])
    new_linear = inverse * linear + (dense @ location[:, None])[..., 0]
    return obs_man.join_location_precision(new_linear, rep.pack(dense))
