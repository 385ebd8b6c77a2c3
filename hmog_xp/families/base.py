"""The exponential-family protocol every distribution in hmog_xp follows.

A family is a frozen, hashable dataclass holding structure only (dimensions,
representations); parameters are flat arrays of shape ``(..., dim)`` in natural coordinates
``θ`` or mean coordinates ``η = E[s(x)]``. Densities are

    ``log p(x; θ) = θ · s(x) + log μ(x) − ψ(θ)``

with sufficient statistic ``s``, base measure ``μ`` and log-partition function ``ψ``.
``negative_entropy`` is the convex conjugate ``φ(η) = θ·η − ψ(θ)`` (the negative entropy
relative to the base measure), so that ``KL(p‖q) = φ(η_p) + ψ(θ_q) − θ_q·η_p``.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_finite, check_trailing_dim


def check_dim(x: Any, dim: int, name: str, owner: object) -> None:
    """Raise unless ``x`` has shape ``(..., dim)``; ``repr(owner)`` is built only to raise.

    The check of :func:`~hmog_xp._validation.check_trailing_dim`, for hot paths: a model's
    ``repr`` costs more than the shape comparison, so it is made only for the message.

    Parameters
    ----------
    x : array
        The array.
    dim : int
        Expected size of the last axis.
    name : str
        What ``x`` is, for the message.
    owner : object
        Who expects it (its ``repr`` goes into the message).
    """
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) == 0 or shape[-1] != dim:
        check_trailing_dim(x, dim, name, repr(owner))


def sample_count(n: Any) -> int:
    """Return ``n`` if it is a valid number of samples (a non-negative int), else raise.

    Parameters
    ----------
    n : object
        Requested number of samples.

    Returns
    -------
    int
        ``n``.
    """
    if isinstance(n, bool) or not isinstance(n, int) or n < 0:
        msg = f"number of samples must be a non-negative int; got {n!r}"
        raise ValidationError(msg)
    return n


@dataclass(frozen=True)
class ExponentialFamily(ABC):
    """Base class of exponential families with closed-form coordinate conversions."""

    @property
    @abstractmethod
    def dim(self) -> int:
        """Length of the parameter vectors (natural and mean coordinates)."""

    @property
    @abstractmethod
    def data_dim(self) -> int:
        """Number of values describing one observation."""

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Trailing shape of one observation (``(data_dim,)``; ``()`` for integer labels)."""
        return (self.data_dim,)

    # -- checks ---------------------------------------------------------------------------

    def _check_coords(self, coords: Any, name: str = "params") -> ModuleType:
        check_dim(coords, self.dim, name, self)
        xp = B.array_namespace(coords)
        check_finite(coords, name, xp=xp)
        return xp

    def _check_data(self, x: Any, name: str = "x") -> ModuleType:
        check_dim(x, self.data_dim, name, self)
        xp = B.array_namespace(x)
        check_finite(x, name, xp=xp)
        return xp

    # -- the family ---------------------------------------------------------------------------

    @abstractmethod
    def sufficient_statistic(self, x: Any) -> Any:
        """Return the sufficient statistic ``s(x)``.

        Parameters
        ----------
        x : array, shape (..., *data_shape)
            Observations.

        Returns
        -------
        array, shape (..., dim)
            Statistics.
        """

    @abstractmethod
    def log_base_measure(self, x: Any) -> Any:
        """Return ``log μ(x)``.

        Parameters
        ----------
        x : array, shape (..., *data_shape)
            Observations.

        Returns
        -------
        array, shape (...)
            Log base measure.
        """

    @abstractmethod
    def log_partition_function(self, params: Any) -> Any:
        """Return ``ψ(θ)``.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        array, shape (...)
            Log-partition values.
        """

    @abstractmethod
    def to_mean(self, params: Any) -> Any:
        """Convert natural to mean coordinates, ``η = ∇ψ(θ)`` (closed form).

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        array, shape (..., dim)
            Mean parameters ``E[s(x)]``.
        """

    @abstractmethod
    def to_natural(self, means: Any) -> Any:
        """Convert mean to natural coordinates (exact inverse of :meth:`to_mean`).

        Parameters
        ----------
        means : array, shape (..., dim)
            Mean parameters.

        Returns
        -------
        array, shape (..., dim)
            Natural parameters.
        """

    @abstractmethod
    def negative_entropy(self, means: Any) -> Any:
        """Return ``φ(η)``, the convex conjugate of ``ψ`` (see the module docstring).

        Parameters
        ----------
        means : array, shape (..., dim)
            Mean parameters.

        Returns
        -------
        array, shape (...)
            Negative entropy relative to the base measure.
        """

    @abstractmethod
    def sample(self, rng: Any, params: Any, n: int) -> Any:
        """Draw ``n`` independent observations.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness (see :func:`hmog_xp._backend.random_source`).
        params : array, shape (..., dim)
            Natural parameters.
        n : int
            Number of draws.

        Returns
        -------
        array, shape (n, ..., *data_shape)
            Samples, in the namespace and device of ``params``.
        """

    # -- derived quantities, shared by every family --------------------------------------------

    def log_density(self, params: Any, x: Any) -> Any:
        """Return ``log p(x; θ)``; batch axes of ``params`` and ``x`` broadcast.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.
        x : array, shape (..., *data_shape)
            Observations.

        Returns
        -------
        array, shape (...)
            Log densities.
        """
        check_dim(params, self.dim, "params", self)
        xp = B.array_namespace(params, x)
        statistic = self.sufficient_statistic(x)
        return (
            xp.sum(params * statistic, axis=-1)
            + self.log_base_measure(x)
            - self.log_partition_function(params)
        )

    def density(self, params: Any, x: Any) -> Any:
        """Return ``p(x; θ)`` (see :meth:`log_density`).

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.
        x : array, shape (..., *data_shape)
            Observations.

        Returns
        -------
        array, shape (...)
            Densities.
        """
        return B.array_namespace(params, x).exp(self.log_density(params, x))

    def average_sufficient_statistic(self, xs: Any) -> Any:
        """Return the average sufficient statistic of a sample: its maximum-likelihood means.

        Parameters
        ----------
        xs : array, shape (N, *data_shape)
            Observations.

        Returns
        -------
        array, shape (dim,)
            ``mean_n s(x_n)``.
        """
        xp = B.array_namespace(xs)
        return xp.mean(self.sufficient_statistic(xs), axis=0)

    def relative_entropy(self, p_means: Any, q_params: Any) -> Any:
        """Return ``KL(p‖q)`` with ``p`` in mean and ``q`` in natural coordinates.

        Parameters
        ----------
        p_means : array, shape (..., dim)
            Mean parameters of ``p``.
        q_params : array, shape (..., dim)
            Natural parameters of ``q``.

        Returns
        -------
        array, shape (...)
            ``φ(η_p) + ψ(θ_q) − θ_q · η_p`` (non-negative, zero iff ``p = q``).
        """
        check_dim(p_means, self.dim, "p_means", self)
        check_dim(q_params, self.dim, "q_params", self)
        xp = B.array_namespace(p_means, q_params)
        return (
            self.negative_entropy(p_means)
            + self.log_partition_function(q_params)
            - xp.sum(q_params * p_means, axis=-1)
        )

    def _coords_dtype(self, xp: ModuleType, dtype: Any) -> Any:
        return B.default_float_dtype(xp) if dtype is None else dtype
