"""Normal-family conveniences: moments, changes of rep, regularisation, initialisation.

Mixed into :class:`hmog_xp.families.normal.Normal`; kept apart so each file stays readable.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING, Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.families.base import ExponentialFamily, check_dim

if TYPE_CHECKING:
    from hmog_xp.families.normal import Normal
    from hmog_xp.reps import CovarianceRep


@dataclass(frozen=True)
class NormalUtilities(ExponentialFamily):
    """Methods of :class:`Normal` built on its coordinate conversions."""

    if TYPE_CHECKING:
        n: int
        rep: CovarianceRep

        def split_mean_covariance(self, means: Any) -> tuple[Any, Any]: ...
        def join_mean_covariance(self, mean: Any, covariance: Any) -> Any: ...
        def split_location_precision(self, params: Any) -> tuple[Any, Any]: ...
        def join_location_precision(self, location: Any, precision: Any) -> Any: ...

    def statistical_mean(self, means: Any) -> Any:
        """Return ``μ`` from mean parameters.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mean parameters.

        Returns
        -------
        array, shape (..., n)
            The mean vector.
        """
        return self.split_mean_covariance(means)[0]

    def statistical_covariance(self, means: Any) -> Any:
        """Return the dense covariance ``Σ`` from mean parameters.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mean parameters.

        Returns
        -------
        array, shape (..., n, n)
            The covariance matrix.
        """
        return self.rep.unpack(self.split_mean_covariance(means)[1], self.n)

    def standard_normal(
        self, *, xp: ModuleType | None = None, dtype: Any = None, device: Any = None
    ) -> Any:
        """Natural parameters of ``N(0, I)``.

        Parameters
        ----------
        xp : module, optional
            Namespace (default: the default backend's).
        dtype : dtype, optional
            Floating dtype (default: the namespace's default float).
        device : object, optional
            Device.

        Returns
        -------
        array, shape (dim,)
            ``(0, −½ I)`` in natural coordinates.
        """
        xp = B.get_namespace() if xp is None else xp
        dtype = self._coords_dtype(xp, dtype)
        location = xp.zeros((self.n,), dtype=dtype, device=device)
        precision = self.rep.identity(self.n, xp=xp, dtype=dtype, device=device)
        return self.join_location_precision(location, precision)

    def _other(self, rep: CovarianceRep) -> Normal:
        from hmog_xp.families.normal import Normal

        return Normal(self.n, rep)

    def embed_rep(self, params: Any, target: CovarianceRep) -> Any:
        """Natural parameters of the same distribution in a more general rep (exact).

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters of this ``Normal(n, rep)``.
        target : CovarianceRep
            A rep that includes this one (e.g. ``PositiveDefinite()`` for ``Diagonal()``).

        Returns
        -------
        array, shape (..., Normal(n, target).dim)
            Natural parameters of ``Normal(n, target)``.
        """
        if not target.includes(self.rep):
            msg = (
                f"cannot embed {self!r} into {type(target).__name__}(): the target must be at "
                f"least as general (PositiveDefinite ⊇ Diagonal ⊇ Scale); use project_rep"
            )
            raise ValidationError(msg)
        if target == self.rep:  # the same family: split and join would round-trip exactly
            check_dim(params, self.dim, "params", self)
            return params
        location, precision = self.split_location_precision(params)
        embedded = self.rep.convert(precision, self.n, target)
        return self._other(target).join_location_precision(location, embedded)

    def project_rep(self, means: Any, target: CovarianceRep) -> Any:
        """Mean parameters of the moment-matching ``Normal(n, target)``.

        ``target`` must be less general: same mean, covariance projected onto the target's
        structure.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mean parameters of this ``Normal(n, rep)``.
        target : CovarianceRep
            A rep this one includes.

        Returns
        -------
        array, shape (..., Normal(n, target).dim)
            Mean parameters of ``Normal(n, target)``, the closest in KL(self ‖ target family).
        """
        if not self.rep.includes(target):
            msg = (
                f"cannot project {self!r} onto {type(target).__name__}(): the target must be at "
                f"most as general (PositiveDefinite ⊇ Diagonal ⊇ Scale); use embed_rep"
            )
            raise ValidationError(msg)
        if target == self.rep:  # the same family: nothing to project
            check_dim(means, self.dim, "means", self)
            return means
        mean, covariance = self.split_mean_covariance(means)
        projected = self.rep.convert(covariance, self.n, target)
        return self._other(target).join_mean_covariance(mean, projected)

    def regularize_covariance(self, means: Any, jitter: float = 0.0, min_var: float = 0.0) -> Any:
        """Add ``jitter`` to the variances, then floor them at ``min_var``.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mean parameters.
        jitter : float, optional
            Added to every variance (the diagonal of ``Σ``).
        min_var : float, optional
            Lower bound on every variance after the jitter.

        Returns
        -------
        array, shape (..., dim)
            Mean parameters with the same mean and the regularised covariance.
        """
        if jitter < 0 or min_var < 0:
            msg = f"jitter and min_var must be >= 0; got jitter={jitter}, min_var={min_var}"
            raise ValidationError(msg)
        xp = B.array_namespace(means)
        mean, covariance = self.split_mean_covariance(means)
        variances = self.rep.diagonal(covariance, self.n)
        floored = xp.maximum(
            variances + jitter,
            xp.asarray(min_var, dtype=variances.dtype, device=B.device_of(variances)),
        )
        covariance = self.rep.add_diagonal(covariance, floored - variances, self.n)
        return self.join_mean_covariance(mean, covariance)

    def initialize(
        self,
        rng: Any,
        location: float = 0.0,
        shape: float = 0.1,
        *,
        xp: ModuleType | None = None,
        dtype: Any = None,
    ) -> Any:
        """Random natural parameters: mean ``location + shape·ε``, identity covariance.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness; also picks the namespace when ``xp`` is None.
        location : float, optional
            Centre of the random mean.
        shape : float, optional
            Spread of the random mean.
        xp : module, optional
            Namespace to create the parameters in.
        dtype : dtype, optional
            Floating dtype.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        source = B.random_source(rng, xp)
        dtype = self._coords_dtype(source.xp, dtype)
        mean = location + shape * source.normal((self.n,), dtype=dtype)
        identity = self.rep.identity(self.n, xp=source.xp, dtype=dtype, device=B.device_of(mean))
        return self.join_location_precision(mean, identity)

    def initialize_from_sample(
        self, rng: Any, xs: Any, shape: float = 0.1, jitter: float = 0.0, min_var: float = 1e-6
    ) -> Any:
        """Natural parameters matched to a sample, with the mean jittered.

        The sample's mean and covariance (projected onto the rep), regularised by
        :meth:`regularize_covariance`; the mean is then moved by ``shape`` standard deviations
        times standard normal noise, so repeated calls give different starting points.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness.
        xs : array, shape (N, n)
            Observations.
        shape : float, optional
            Size of the random move of the mean, in standard deviations.
        jitter, min_var : float, optional
            Passed to :meth:`regularize_covariance`.

        Returns
        -------
        array, shape (dim,)
            Natural parameters, in ``xs``'s namespace.
        """
        xp = self._check_data(xs, "xs")
        if xs.ndim != 2 or xs.shape[0] < 1:
            msg = f"xs must have shape (N, {self.n}) with N >= 1; got {tuple(xs.shape)}"
            raise ValidationError(msg)
        means = self.regularize_covariance(self.average_sufficient_statistic(xs), jitter, min_var)
        mean, covariance = self.split_mean_covariance(means)
        source = B.random_source(rng, xp, B.device_of(xs))
        spread = xp.sqrt(xp.broadcast_to(self.rep.diagonal(covariance, self.n), mean.shape))
        moved = mean + shape * spread * source.normal(mean.shape, dtype=mean.dtype)
        return self.to_natural(self.join_mean_covariance(moved, covariance))
