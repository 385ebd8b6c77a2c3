"""Categorical distributions over ``{0, …, K−1}``.

Observations are integer labels of shape ``(...)``. With class 0 as the reference:

* ``s(z) = e_z ∈ R^{K−1}`` (the zero vector for ``z = 0``);
* natural parameters ``θ_k = log(π_k / π_0)``, ``k = 1..K−1``;
* ``ψ(θ) = log(1 + Σ_k exp θ_k)`` (computed with a stable log-sum-exp);
* mean parameters ``η = (π_1, …, π_{K−1})``; ``φ(η) = Σ_{k=0}^{K−1} π_k log π_k``.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_finite, check_positive, values_checked
from hmog_xp.families.base import ExponentialFamily, check_dim, sample_count


@dataclass(frozen=True)
class Categorical(ExponentialFamily):  # numpydoc ignore=PR02
    """Categorical distribution with ``n_categories`` classes.

    Parameters
    ----------
    n_categories : int
        Number of classes ``K >= 1`` (``K = 1`` is the point mass on class 0, with
        parameters of length 0; mixtures of one component use it).
    """

    n_categories: int

    def __post_init__(self) -> None:
        k = self.n_categories
        if not isinstance(k, int) or isinstance(k, bool) or k < 1:
            msg = f"Categorical needs an int number of categories >= 1; got {k!r}"
            raise ValidationError(msg)

    def __repr__(self) -> str:
        return f"Categorical({self.n_categories})"

    @functools.cached_property
    def dim(self) -> int:
        """Length of the coordinate vectors, ``K − 1``."""
        return self.n_categories - 1

    @property
    def data_dim(self) -> int:
        """One integer label per observation."""
        return 1

    @property
    def data_shape(self) -> tuple[int, ...]:
        """Trailing shape ``()`` of one observation: labels are scalar integers."""
        return ()

    def _check_data(self, x: Any, name: str = "z") -> ModuleType:
        xp = B.array_namespace(x)
        if not xp.isdtype(x.dtype, "integral"):
            msg = f"{name} must be integer class labels for {self!r}; got dtype {x.dtype}"
            raise ValidationError(msg)
        in_range = xp.all((x >= 0) & (x < self.n_categories))
        if B.is_concrete(in_range) and not bool(in_range):
            msg = f"{name} has labels outside 0..{self.n_categories - 1}"
            raise ValidationError(msg)
        return xp

    def _logits(self, params: Any, *, xp: ModuleType) -> Any:
        """``(0, θ_1, …, θ_{K−1})``: unnormalised log probabilities."""
        zero = xp.zeros((*params.shape[:-1], 1), dtype=params.dtype, device=B.device_of(params))
        return xp.concat([zero, params], axis=-1)

    def sufficient_statistic(self, x: Any, dtype: Any = None) -> Any:
        """Return the one-hot vector ``e_z`` without the reference class.

        Parameters
        ----------
        x : array of int, shape (...)
            Class labels.
        dtype : dtype, optional
            Floating dtype of the result (default: the namespace's default float).

        Returns
        -------
        array, shape (..., K − 1)
            Statistics.
        """
        xp = self._check_data(x)
        classes = xp.arange(1, self.n_categories, device=B.device_of(x))
        return xp.astype(x[..., None] == classes, self._coords_dtype(xp, dtype))

    def log_base_measure(self, x: Any) -> Any:
        """Return zeros (counting measure).

        Parameters
        ----------
        x : array of int, shape (...)
            Class labels.

        Returns
        -------
        array, shape (...)
            Zeros.
        """
        xp = self._check_data(x)
        return xp.zeros(x.shape, dtype=B.default_float_dtype(xp), device=B.device_of(x))

    def log_density(self, params: Any, x: Any) -> Any:
        """Return ``log π_z``; batch axes of ``params`` and ``x`` broadcast.

        Parameters
        ----------
        params : array, shape (..., K − 1)
            Natural parameters.
        x : array of int, shape (...)
            Class labels.

        Returns
        -------
        array, shape (...)
            Log probabilities.
        """
        xp = self._check_coords(params)
        statistic = self.sufficient_statistic(x, dtype=params.dtype)
        return xp.sum(params * statistic, axis=-1) - self.log_partition_function(params)

    def log_partition_function(self, params: Any) -> Any:
        """Return ``ψ(θ) = log(1 + Σ_k exp θ_k)``.

        Parameters
        ----------
        params : array, shape (..., K − 1)
            Natural parameters.

        Returns
        -------
        array, shape (...)
            Log-partition values.
        """
        xp = self._check_coords(params)
        return B.logsumexp(self._logits(params, xp=xp), axis=-1, xp=xp)

    def to_probs(self, params: Any) -> Any:
        """Return all ``K`` class probabilities.

        Parameters
        ----------
        params : array, shape (..., K − 1)
            Natural parameters.

        Returns
        -------
        array, shape (..., K)
            Probabilities summing to one.
        """
        xp = self._check_coords(params)
        return B.softmax(self._logits(params, xp=xp), axis=-1, xp=xp)

    def from_probs(self, probs: Any) -> Any:
        """Return natural parameters ``log(π_k / π_0)`` from all ``K`` probabilities.

        Parameters
        ----------
        probs : array, shape (..., K)
            Strictly positive probabilities summing to one.

        Returns
        -------
        array, shape (..., K − 1)
            Natural parameters.
        """
        check_dim(probs, self.n_categories, "probs", self)
        xp = B.array_namespace(probs)
        if values_checked(probs):
            check_finite(probs, "probs", xp=xp)
            check_positive(probs, f"probs for {self!r} must all be > 0", xp=xp)
            tolerance = max(1e-8, 1000 * xp.finfo(probs.dtype).eps)
            off_by = xp.abs(xp.sum(probs, axis=-1) - 1.0)
            check_positive(
                tolerance - off_by,
                f"probs for {self!r} must sum to one along the last axis",
                xp=xp,
            )
        logs = xp.log(probs)
        return logs[..., 1:] - logs[..., :1]

    def to_mean(self, params: Any) -> Any:
        """Return ``η = (π_1, …, π_{K−1})``.

        Parameters
        ----------
        params : array, shape (..., K − 1)
            Natural parameters.

        Returns
        -------
        array, shape (..., K − 1)
            Mean parameters.
        """
        return self.to_probs(params)[..., 1:]

    def _all_probs(self, means: Any) -> Any:
        xp = self._check_coords(means, "means")
        first = 1.0 - xp.sum(means, axis=-1, keepdims=True)
        probs = xp.concat([first, means], axis=-1)
        check_positive(
            probs,
            f"means for {self!r} must be probabilities π_1..π_{self.dim} > 0 with sum < 1",
            xp=xp,
        )
        return probs

    def to_natural(self, means: Any) -> Any:
        """Return ``θ_k = log(π_k / π_0)`` with ``π_0 = 1 − Σ_k η_k``.

        Parameters
        ----------
        means : array, shape (..., K − 1)
            Mean parameters.

        Returns
        -------
        array, shape (..., K − 1)
            Natural parameters.
        """
        logs = B.array_namespace(means).log(self._all_probs(means))
        return logs[..., 1:] - logs[..., :1]

    def negative_entropy(self, means: Any) -> Any:
        """Return ``Σ_k π_k log π_k`` over all ``K`` classes.

        Parameters
        ----------
        means : array, shape (..., K − 1)
            Mean parameters.

        Returns
        -------
        array, shape (...)
            Negative entropy.
        """
        probs = self._all_probs(means)
        xp = B.array_namespace(probs)
        return xp.sum(probs * xp.log(probs), axis=-1)

    def sample(self, rng: Any, params: Any, n: int) -> Any:
        """Draw ``n`` labels by inverting the cumulative distribution.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness.
        params : array, shape (..., K − 1)
            Natural parameters.
        n : int
            Number of draws.

        Returns
        -------
        array of int, shape (n, ...)
            Labels in ``0..K−1``.
        """
        probs = self.to_probs(params)
        xp = B.array_namespace(probs)
        cumulative = xp.cumulative_sum(probs[..., :-1], axis=-1)
        source = B.random_source(rng, xp, B.device_of(params))
        uniform = source.uniform((sample_count(n), *params.shape[:-1], 1), dtype=params.dtype)
        return xp.sum(xp.astype(uniform >= cumulative, xp.int64), axis=-1)

    def initialize(
        self,
        rng: Any,
        location: float = 0.0,
        shape: float = 0.1,
        *,
        xp: ModuleType | None = None,
        dtype: Any = None,
    ) -> Any:
        """Random natural parameters ``θ = location + shape·ε``.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness; also picks the namespace when ``xp`` is None.
        location : float, optional
            Centre.
        shape : float, optional
            Spread.
        xp : module, optional
            Namespace.
        dtype : dtype, optional
            Floating dtype.

        Returns
        -------
        array, shape (K − 1,)
            Natural parameters.
        """
        source = B.random_source(rng, xp)
        dtype = self._coords_dtype(source.xp, dtype)
        return location + shape * source.normal((self.dim,), dtype=dtype)

    def initialize_from_sample(
        self, rng: Any, xs: Any, shape: float = 0.1, pseudocount: float = 1.0
    ) -> Any:
        """Natural parameters of the smoothed class frequencies, plus ``shape·ε`` noise.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness.
        xs : array of int, shape (N,)
            Class labels.
        shape : float, optional
            Spread of the noise added to the natural parameters.
        pseudocount : float, optional
            Added to every class count (> 0 keeps every class possible).

        Returns
        -------
        array, shape (K − 1,)
            Natural parameters.
        """
        if pseudocount <= 0:
            msg = f"pseudocount must be > 0; got {pseudocount}"
            raise ValidationError(msg)
        xp = self._check_data(xs, "xs")
        dtype = B.default_float_dtype(xp)
        counts = xp.sum(self.sufficient_statistic(xs, dtype=dtype), axis=0)
        n_total = xs.shape[0] if xs.ndim else 1
        first = n_total - xp.sum(counts, keepdims=True)
        probs = xp.concat([first, counts]) + pseudocount
        probs = probs / xp.sum(probs)
        source = B.random_source(rng, xp, B.device_of(xs))
        return self.from_probs(probs) + shape * source.normal((self.dim,), dtype=dtype)
