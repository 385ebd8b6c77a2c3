"""Harmonium structure: coordinates, conditionals and conjugation.

:class:`HarmoniumStructure` holds what every harmonium shares before any data is seen: the
layout of the flat coordinates, the posterior and likelihood maps, and the conjugation
identity that gives the prior and the log-partition function. Densities, statistics and
sampling build on it in :class:`hmog_xp.harmoniums.base.Harmonium`.
"""

from __future__ import annotations

import functools
from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_finite
from hmog_xp.families import ExponentialFamily
from hmog_xp.families.base import check_dim


@dataclass(frozen=True)
class HarmoniumStructure(ABC):
    """Coordinates, conditionals and conjugation of a harmonium (see :mod:`.base`)."""

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

    @functools.cached_property
    def lkl_dim(self) -> int:
        """Length of likelihood parameters ``(θ_x, W)``."""
        rows, cols = self.int_shape
        return self.obs_man.dim + rows * cols

    @functools.cached_property
    def dim(self) -> int:
        """Length of the parameter vectors."""
        return self.lkl_dim + self.pst_man.dim

    @property
    def data_dim(self) -> int:
        """Dimension of one observation ``x``."""
        return self.obs_man.data_dim

    def _check_params(self, params: Any, name: str = "params") -> ModuleType:
        check_dim(params, self.dim, name, self)
        return B.array_namespace(params)

    def _check_x(self, x: Any, name: str = "x", params: Any = None) -> ModuleType:
        check_dim(x, self.data_dim, name, self)
        # With params, a BackendError when they and x belong to different backends.
        xp = B.array_namespace(x) if params is None else B.array_namespace(params, x)
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
        interaction = _part(params, obs_end, self.lkl_dim, xp=xp)
        interaction = xp.reshape(interaction, (*params.shape[:-1], rows, cols))
        return params[..., :obs_end], interaction, _part(params, self.lkl_dim, self.dim, xp=xp)

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
        return B.concat_broadcast([obs, flat, lat], xp=xp)

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
        shift = matvec(interaction, self._lat_interaction_statistic(z))
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
        self._check_x(x, params=params)
        _, interaction, lat = self.split_coords(params)
        shift = vecmat(self._obs_interaction_statistic(x), interaction)
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
        check_dim(lkl_params, self.lkl_dim, "lkl_params", self)
        check_dim(prior, self.prr_man.dim, "prior", self)
        xp = B.array_namespace(lkl_params, prior)
        rho = self.conjugation_parameters(lkl_params)[1]
        return B.concat_broadcast([lkl_params, prior - rho], xp=xp)

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


def pad_zeros(head: Any, total: int) -> Any:
    """Extend ``head`` with zeros along the last axis to length ``total``.

    Places a linear shift at the front of natural coordinates whose other entries (the
    second-order part, the rest of a mixture) are unchanged.

    Parameters
    ----------
    head : array, shape (..., m)
        Leading entries.
    total : int
        Length of the result's last axis (``>= m``).

    Returns
    -------
    array, shape (..., total)
        ``concat(head, zeros)``.
    """
    xp = B.array_namespace(head)
    shape = (*head.shape[:-1], total - head.shape[-1])
    zeros = xp.zeros(shape, dtype=head.dtype, device=B.device_of(head))
    return xp.concat([head, zeros], axis=-1)


def _part(params: Any, start: int, stop: int, *, xp: Any) -> Any:
    """``params[..., start:stop]``; empty parts (one-component mixtures) are fresh zeros.

    XLA (jaxlib 0.10) fails to compile a ``jit`` function that returns an empty slice of a
    triangular-solve result next to non-empty outputs; a fresh empty array avoids that.
    """
    if stop > start:
        return params[..., start:stop]
    return xp.zeros((*params.shape[:-1], 0), dtype=params.dtype, device=B.device_of(params))


def matvec(matrix: Any, vectors: Any) -> Any:
    """Return ``matrix @ v`` for each vector ``v``; one GEMM when ``matrix`` is 2-D.

    Parameters
    ----------
    matrix : array, shape (..., rows, cols)
        Matrices.
    vectors : array, shape (..., cols)
        Vectors.

    Returns
    -------
    array, shape (..., rows)
        Products.
    """
    xp = B.array_namespace(matrix, vectors)
    if matrix.ndim == 2:
        return vectors @ xp.matrix_transpose(matrix)
    return (matrix @ vectors[..., None])[..., 0]


def vecmat(vectors: Any, matrix: Any) -> Any:
    """Return ``vᵀ @ matrix`` for each vector ``v``; one GEMM when ``matrix`` is 2-D.

    Parameters
    ----------
    vectors : array, shape (..., rows)
        Vectors.
    matrix : array, shape (..., rows, cols)
        Matrices.

    Returns
    -------
    array, shape (..., cols)
        Products.
    """
    if matrix.ndim == 2:
        return vectors @ matrix
    return (vectors[..., None, :] @ matrix)[..., 0, :]
