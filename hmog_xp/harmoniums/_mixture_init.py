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


def check_sample_size(mixture: Mixture, n_obs: int) -> None:
    """Refuse fewer observations than components.

    Parameters
    ----------
    mixture : Mixture
        The model.
    n_obs : int
        Number of observations.

    Raises
    ------
    ValidationError
        If ``n_obs < n_components``.
    """
    k = mixture.n_components
    if n_obs < k:
        msg = f"need at least n_components={k} observations to initialise; got {n_obs}"
        raise ValidationError(msg)


def sample_params(mixture: Mixture, rng: Any, xs: Any, min_var: float) -> Any:
    """Equal weights, the sample covariance for every component, means at random data points.

    Draws one uniform number per observation (in ``xs``'s dtype) and hands them to
    :func:`spread_start`, compiled once per shape on JAX.

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
    check_sample_size(mixture, xs.shape[0])
    source = B.random_source(rng, xp, B.device_of(xs))
    order = source.uniform((xs.shape[0],), dtype=xs.dtype)
    return compiled_spread_start(mixture, xs, order, float(min_var))


def spread_start(mixture: Mixture, xs: Any, order: Any, min_var: float) -> Any:
    """Equal weights, the pooled covariance, means at the ``K`` rows of smallest ``order``.

    A function of arrays only (no checks, no randomness).

    Parameters
    ----------
    mixture : Mixture
        The model.
    xs : array, shape (N, d)
        Observations, ``N >= K``.
    order : array, shape (N,)
        Distinct numbers ranking the rows (uniform draws: a random choice of ``K`` rows).
    min_var : float
        Floor of the variances of the shared covariance.

    Returns
    -------
    array, shape (mixture.dim,)
        Natural parameters in ``xs``'s namespace.
    """
    xp = B.array_namespace(xs, order)
    family = mixture.component_man
    pooled = family.regularize_covariance(family.average_sufficient_statistic(xs), 0.0, min_var)
    covariance = family.split_mean_covariance(pooled)[1]
    chosen = xp.argsort(order)[: mixture.n_components]
    return _join_shared_covariance(mixture, xp.take(xs, chosen, axis=0), covariance)


#: :func:`spread_start` compiled once per model, shape and floor on JAX.
compiled_spread_start = B.jit(spread_start, static_argnums=(0, 3))
