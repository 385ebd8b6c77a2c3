"""Starting points for Gaussian mixtures: random, and from data (random data points)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError

if TYPE_CHECKING:
    from types import ModuleType

    from hmog_xp.harmoniums.mixture import Mixture


def _join_shared_covariance(mixture: Mixture, means: Any, covariance: Any) -> Any:
    """Natural parameters of equal-weight components ``N(means[k], covariance)``."""
    xp = B.array_namespace(means, covariance)
    family = mixture.component_man
    components = family.to_natural(family.join_mean_covariance(means, covariance))
    zeros = xp.zeros((mixture.n_components - 1,), dtype=means.dtype, device=B.device_of(means))
    return mixture.join_natural_mixture(components, zeros)


def random_params(
    mixture: Mixture,
    rng: Any,
    location: float,
    shape: float,
    xp: ModuleType | None,
    dtype: Any,
) -> Any:
    """Equal weights, identity covariances, means ``location + shape · ε``.

    Parameters
    ----------
    mixture : Mixture
        The model.
    rng : int, generator or JAX key
        Randomness; picks the namespace when ``xp`` is None.
    location : float
        Centre of the random means.
    shape : float
        Spread of the random means.
    xp : module or None
        Namespace.
    dtype : dtype or None
        Floating dtype.

    Returns
    -------
    array, shape (mixture.dim,)
        Natural parameters.
    """
    source = B.random_source(rng, xp)
    dtype = B.default_float_dtype(source.xp) if dtype is None else dtype
    d = mixture.component_man.n
    means = location + shape * source.normal((mixture.n_components, d), dtype=dtype)
    rep = mixture.component_man.rep
    identity = rep.identity(d, xp=source.xp, dtype=dtype, device=B.device_of(means))
    return _join_shared_covariance(mixture, means, identity)


def sample_params(mixture: Mixture, rng: Any, xs: Any, min_var: float) -> Any:
    """Equal weights, the sample covariance for every component, means at random data points.

    Parameters
    ----------
    mixture : Mixture
        The model.
    rng : int, generator or JAX key
        Randomness (which data points become means).
    xs : array, shape (N, d)
        Observations, ``N >= K``.
    min_var : float
        Floor of the variances of the shared covariance.

    Returns
    -------
    array, shape (mixture.dim,)
        Natural parameters in ``xs``'s namespace.
    """
    xp = B.array_namespace(xs)
    n_obs = xs.shape[0]
    k = mixture.n_components
    if n_obs < k:
        msg = f"need at least n_components={k} observations to initialise; got {n_obs}"
        raise ValidationError(msg)
    family = mixture.component_man
    pooled = family.regularize_covariance(family.average_sufficient_statistic(xs), 0.0, min_var)
    covariance = family.split_mean_covariance(pooled)[1]
    source = B.random_source(rng, xp, B.device_of(xs))
    chosen = xp.argsort(source.uniform((n_obs,), dtype=xs.dtype))[:k]
    return _join_shared_covariance(mixture, xp.take(xs, chosen, axis=0), covariance)
