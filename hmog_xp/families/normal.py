"""Multivariate Normal distributions with a choice of covariance representation.

Coordinates of ``Normal(n, rep)`` are flat arrays of length ``n + rep.size(n)``:

* sufficient statistic ``s(x) = (x, rep.outer_statistic(x))``: the second moment in the rep's
  statistic storage (upper triangle of ``x xᵀ``; ``x²``; ``Σ x_i²``);
* natural parameters ``θ = (h, θ₂)`` with ``θ₂ = −½ rep.packed_to_quadratic(Λ)``, so that
  ``θ · s(x) = hᵀx − ½ xᵀΛx`` exactly (full rep: off-diagonal coefficient ``−Λ_ij``,
  diagonal ``−½ Λ_ii``), ``Λ`` the precision;
* mean parameters ``η = (μ, E[s₂(x)])``, the second moment ``Σ + μμᵀ`` in statistic storage;
* ``ψ(θ) = ½ hᵀΛ⁻¹h − ½ log|Λ|``, ``log μ(x) = −(n/2) log 2π``, ``φ(η) = −½ log|Σ| − n/2``.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_finite, check_positive, check_small, values_checked
from hmog_xp.families._normal_extras import NormalUtilities
from hmog_xp.families.base import check_dim, sample_count
from hmog_xp.reps import CovarianceRep, PositiveDefinite


@dataclass(frozen=True)
class Normal(NormalUtilities):  # numpydoc ignore=PR02
    """Normal distribution on ``R^n`` whose covariance lives in ``rep``.

    Parameters
    ----------
    n : int
        Dimension of the observations.
    rep : CovarianceRep, optional
        Covariance (and precision) structure: ``PositiveDefinite()`` (default),
        ``Diagonal()`` or ``Scale()``.
    """

    n: int
    rep: CovarianceRep = field(default_factory=PositiveDefinite)

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or isinstance(self.n, bool) or self.n < 1:
            msg = f"Normal dimension n must be a positive int; got {self.n!r}"
            raise ValidationError(msg)
        if not isinstance(self.rep, CovarianceRep):
            msg = f"rep must be PositiveDefinite(), Diagonal() or Scale(); got {self.rep!r}"
            raise ValidationError(msg)

    def __repr__(self) -> str:
        return f"Normal({self.n}, {type(self.rep).__name__}())"

    @functools.cached_property
    def dim(self) -> int:
        """Length of the coordinate vectors, ``n + rep.size(n)``."""
        return self.n + self.rep.size(self.n)

    @property
    def data_dim(self) -> int:
        """Dimension ``n`` of one observation."""
        return self.n

    # -- structure of the coordinates ----------------------------------------------------------

    def split_location_precision(self, params: Any) -> tuple[Any, Any]:
        """Split natural parameters into the linear term ``h`` and the precision ``Λ``.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        location : array, shape (..., n)
            ``h = Λ μ``.
        precision : array, shape (..., rep.size(n))
            ``Λ`` in the rep's plain storage (``rep.unpack`` gives the dense matrix).
        """
        check_dim(params, self.dim, "params", self)
        n = self.n
        return params[..., :n], self.rep.quadratic_to_packed(-2.0 * params[..., n:], n)

    def join_location_precision(self, location: Any, precision: Any) -> Any:
        """Inverse of :meth:`split_location_precision`.

        Parameters
        ----------
        location : array, shape (..., n)
            Linear term ``h``.
        precision : array, shape (..., rep.size(n))
            Precision in plain storage.

        Returns
        -------
        array, shape (..., dim)
            Natural parameters.
        """
        xp = B.array_namespace(location, precision)
        quadratic = -0.5 * self.rep.packed_to_quadratic(precision, self.n)
        return B.concat_broadcast([location, quadratic], xp=xp)

    def split_mean_covariance(self, means: Any) -> tuple[Any, Any]:
        """Split mean parameters into the mean ``μ`` and the covariance ``Σ``.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mean parameters.

        Returns
        -------
        mean : array, shape (..., n)
            ``μ``.
        covariance : array, shape (..., rep.size(n))
            ``Σ = E[xxᵀ] − μμᵀ`` in the rep's plain storage.
        """
        check_dim(means, self.dim, "means", self)
        n = self.n
        mean = means[..., :n]
        centred = means[..., n:] - self.rep.outer_statistic(mean)
        return mean, self.rep.statistic_to_packed(centred, n)

    def join_mean_covariance(self, mean: Any, covariance: Any) -> Any:
        """Inverse of :meth:`split_mean_covariance`.

        Parameters
        ----------
        mean : array, shape (..., n)
            ``μ``.
        covariance : array, shape (..., rep.size(n))
            ``Σ`` in plain storage.

        Returns
        -------
        array, shape (..., dim)
            Mean parameters.
        """
        xp = B.array_namespace(mean, covariance)
        second = self.rep.packed_to_statistic(covariance, self.n) + self.rep.outer_statistic(mean)
        return B.concat_broadcast([mean, second], xp=xp)

    # -- exponential family --------------------------------------------------------------------

    def sufficient_statistic(self, x: Any) -> Any:
        """Return ``s(x) = (x, rep.outer_statistic(x))``.

        Parameters
        ----------
        x : array, shape (..., n)
            Observations.

        Returns
        -------
        array, shape (..., dim)
            Statistics.
        """
        xp = self._check_data(x)
        return xp.concat([x, self.rep.outer_statistic(x)], axis=-1)

    def log_base_measure(self, x: Any) -> Any:
        """Return ``−(n/2) log 2π`` for every observation.

        Parameters
        ----------
        x : array, shape (..., n)
            Observations.

        Returns
        -------
        array, shape (...)
            Log base measure.
        """
        xp = self._check_data(x)
        value = -0.5 * self.n * math.log(2.0 * math.pi)
        return xp.full(x.shape[:-1], value, dtype=x.dtype, device=B.device_of(x))

    def cholesky_factor(self, packed: Any, what: str = "precision") -> Any:
        """Square-root factor of a stored precision or covariance, checked positive definite.

        Parameters
        ----------
        packed : array, shape (..., rep.size(n))
            A precision or covariance in the rep's plain storage.
        what : str, optional
            What the matrix is, for the error message.

        Returns
        -------
        array
            ``rep.cholesky(packed, n)``: dense lower triangular ``(..., n, n)`` for
            ``PositiveDefinite``, the elementwise square root otherwise.

        Raises
        ------
        ValidationError
            If the matrix is not positive definite (checked while validation is on).
        """
        xp = B.array_namespace(packed)
        try:  # the message (with the repr) is made only when there is something to say
            factor = self.rep.cholesky(packed, self.n)
            if values_checked(factor):
                check_positive(self.rep.factor_diagonal(factor), "", xp=xp)
        except ValidationError:
            message = (
                f"the {what} of {self!r} is not positive definite; parameters must describe a "
                f"Normal distribution (build them with Normal.from_moments or "
                f"join_mean_covariance)"
            )
            raise ValidationError(message) from None
        return factor

    def log_partition_function(self, params: Any) -> Any:
        """Return ``ψ(θ) = ½ hᵀΛ⁻¹h − ½ log|Λ|``.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        array, shape (...)
            Log-partition values.
        """
        xp = self._check_coords(params)
        location, precision = self.split_location_precision(params)
        factor = self.cholesky_factor(precision, "precision")
        whitened = self.rep.factor_solve(factor, location)
        return 0.5 * xp.sum(whitened * whitened, axis=-1) - 0.5 * self.rep.factor_logdet(
            factor, self.n
        )

    def _natural_to_moments(self, params: Any) -> tuple[Any, Any]:
        self._check_coords(params)
        location, precision = self.split_location_precision(params)
        factor = self.cholesky_factor(precision, "precision")
        covariance = self.rep.factor_inverse(factor, self.n)
        return self.rep.matvec(covariance, location), covariance

    def to_mean(self, params: Any) -> Any:
        """Return ``η = (μ, E[s₂(x)])`` with ``Σ = Λ⁻¹``, ``μ = Σh``.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        array, shape (..., dim)
            Mean parameters.
        """
        return self.join_mean_covariance(*self._natural_to_moments(params))

    def to_natural(self, means: Any) -> Any:
        """Return ``θ = (Λμ, −½ Λ)`` with ``Λ = Σ⁻¹``.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mean parameters.

        Returns
        -------
        array, shape (..., dim)
            Natural parameters.
        """
        self._check_coords(means, "means")
        mean, covariance = self.split_mean_covariance(means)
        precision = self.rep.factor_inverse(self.cholesky_factor(covariance, "covariance"), self.n)
        return self.join_location_precision(self.rep.matvec(precision, mean), precision)

    def negative_entropy(self, means: Any) -> Any:
        """Return ``φ(η) = −½ log|Σ| − n/2``.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mean parameters.

        Returns
        -------
        array, shape (...)
            Negative entropy relative to the base measure.
        """
        self._check_coords(means, "means")
        covariance = self.split_mean_covariance(means)[1]
        factor = self.cholesky_factor(covariance, "covariance")
        return -0.5 * self.rep.factor_logdet(factor, self.n) - 0.5 * self.n

    def sample(self, rng: Any, params: Any, n: int) -> Any:
        """Draw ``n`` observations: ``x = μ + L⁻ᵀ ε`` with ``Λ = L Lᵀ``, ``ε ~ N(0, I)``.

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
        array, shape (n, ..., n_dim)
            Samples in the namespace, dtype and device of ``params``.
        """
        xp = self._check_coords(params)
        location, precision = self.split_location_precision(params)
        factor = self.cholesky_factor(precision, "precision")
        mean = self.rep.matvec(self.rep.factor_inverse(factor, self.n), location)
        source = B.random_source(rng, xp, B.device_of(params))
        noise = source.normal((sample_count(n), *params.shape[:-1], self.n), dtype=params.dtype)
        return mean + self.rep.factor_solve(factor, noise, transpose=True)

    # -- readable parameters ---------------------------------------------------------------

    def from_moments(self, mean: Any, covariance: Any) -> Any:
        """Natural parameters of ``N(mean, covariance)``.

        Parameters
        ----------
        mean : array, shape (..., n)
            Means.
        covariance : array, shape (..., n, n)
            Dense symmetric positive definite covariances with the rep's structure
            (diagonal for ``Diagonal``, a multiple of the identity for ``Scale``).

        Returns
        -------
        array, shape (..., dim)
            Natural parameters.

        Raises
        ------
        ValidationError
            If shapes are wrong, values non-finite, the matrix not symmetric, not of the
            rep's structure, or not positive definite.
        """
        xp = B.array_namespace(mean, covariance)
        check_dim(mean, self.n, "mean", self)
        if covariance.ndim < 2 or tuple(covariance.shape[-2:]) != (self.n, self.n):
            msg = (
                f"covariance has shape {tuple(covariance.shape)}; {self!r} expects "
                f"(..., {self.n}, {self.n})"
            )
            raise ValidationError(msg)
        check_finite(mean, "mean", xp=xp)
        check_finite(covariance, "covariance", xp=xp)
        common = xp.result_type(mean, covariance)
        mean, covariance = xp.astype(mean, common), xp.astype(covariance, common)
        packed = self.rep.pack(covariance)
        deviation = xp.abs(covariance - self.rep.unpack(packed, self.n))
        tolerance = 1e-8 * (1.0 + xp.abs(covariance))
        check_small(
            deviation - tolerance,
            f"covariance is not a symmetric matrix of the {type(self.rep).__name__} structure "
            f"that {self!r} represents",
            xp=xp,
        )
        factor = self.cholesky_factor(packed, "covariance")
        precision = self.rep.factor_inverse(factor, self.n)
        return self.join_location_precision(self.rep.matvec(precision, mean), precision)

    def to_moments(self, params: Any) -> tuple[Any, Any]:
        """Mean and dense covariance of the distribution with natural parameters ``params``.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        mean : array, shape (..., n)
            Means.
        covariance : array, shape (..., n, n)
            Dense covariances.
        """
        mean, covariance = self._natural_to_moments(params)
        return mean, self.rep.unpack(covariance, self.n)
