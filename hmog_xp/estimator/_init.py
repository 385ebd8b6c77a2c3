"""Starting points for the estimator: PPCA loadings, k-means++ on factor scores.

The lower harmonium starts at the probabilistic-PCA fit of the data (closed form). The data
are then mapped to factor scores ``E[y | x]``, clustered by k-means++ seeding and a few Lloyd
iterations, and each cluster's weight, mean and covariance (shrunk towards the pooled
covariance, plus ``reg_covar``) becomes a mixture component. ``"random"`` replaces the
clustering by ``K`` random data points' scores as centres (one nearest-centre assignment).
The random choices are drawn on the host from the seed, so every backend starts from the
same point.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._backend.transfer import transfer
from hmog_xp.hmog import HierarchicalMixtureOfGaussians, HMoGParameters

#: Lloyd iterations after the k-means++ seeding.
_LLOYD_ITERATIONS = 10


def kmeans_plus_plus(scores: Any, n_clusters: int, chooser: random.Random) -> Any:
    """Choose ``n_clusters`` centres by k-means++ (``D²``) seeding.

    Parameters
    ----------
    scores : array, shape (N, d)
        Points.
    n_clusters : int
        Number of centres ``K <= N``.
    chooser : random.Random
        Randomness (host-side, so every backend picks the same centres for one seed).

    Returns
    -------
    array, shape (K, d)
        Centres (rows of ``scores``).
    """
    xp = B.array_namespace(scores)
    n_obs = scores.shape[0]
    centres = [scores[chooser.randrange(n_obs), :]]
    distances = xp.sum((scores - centres[0]) ** 2, axis=-1)
    for _ in range(1, n_clusters):
        cumulative = xp.cumulative_sum(distances)
        total = float(cumulative[-1])
        target = chooser.random()
        if total > 0.0:
            index = int(xp.sum(xp.astype(cumulative < target * total, xp.int64)))
        else:  # every point coincides with a centre: any point will do
            index = int(target * n_obs)
        centre = scores[min(index, n_obs - 1), :]
        centres.append(centre)
        distances = xp.minimum(distances, xp.sum((scores - centre) ** 2, axis=-1))
    return xp.stack(centres)


def lloyd_assignments(scores: Any, centres: Any, n_iterations: int = _LLOYD_ITERATIONS) -> Any:
    """Refine centres by Lloyd's algorithm and return the final one-hot assignments.

    Parameters
    ----------
    scores : array, shape (N, d)
        Points.
    centres : array, shape (K, d)
        Starting centres.
    n_iterations : int, optional
        Number of assignment / update rounds.

    Returns
    -------
    array, shape (N, K)
        One-hot assignment of every point to its nearest centre.
    """
    xp = B.array_namespace(scores, centres)
    k = centres.shape[0]
    labels = xp.arange(k, device=B.device_of(scores))
    squared = xp.sum(scores**2, axis=-1, keepdims=True)
    one_hot = None
    for _ in range(n_iterations + 1):
        distances = squared - 2.0 * scores @ xp.matrix_transpose(centres)
        distances = distances + xp.sum(centres**2, axis=-1)
        nearest = xp.argmin(distances, axis=-1)
        one_hot = xp.astype(nearest[:, None] == labels[None, :], scores.dtype)
        counts = xp.sum(one_hot, axis=0)
        updated = (xp.matrix_transpose(one_hot) @ scores) / xp.maximum(counts, 1.0)[:, None]
        centres = xp.where(counts[:, None] > 0, updated, centres)
    return one_hot


def mixture_moments(scores: Any, responsibilities: Any, reg_covar: float) -> HMoGParameters:
    """Return component weights, means and shrunk covariances of hard or soft clusters.

    Covariances are shrunk towards the pooled covariance with the weight of one point,
    ``(n_k C_k + C) / (n_k + 1)``, so empty and single-point clusters stay positive definite;
    weights are ``(n_k + 1) / (N + K)`` for the same reason.

    Parameters
    ----------
    scores : array, shape (N, d)
        Points.
    responsibilities : array, shape (N, K)
        Cluster memberships (rows sum to one).
    reg_covar : float
        Added to every covariance's diagonal.

    Returns
    -------
    HMoGParameters
        ``weights``, ``means`` and ``covariances`` filled; the other fields are None.
    """
    xp = B.array_namespace(scores, responsibilities)
    n_obs, d = scores.shape
    k = responsibilities.shape[1]
    counts = xp.sum(responsibilities, axis=0)
    pooled_mean = xp.mean(scores, axis=0)
    centred = scores - pooled_mean
    pooled = xp.matrix_transpose(centred) @ centred / n_obs
    sums = xp.matrix_transpose(responsibilities) @ scores
    means = (sums + pooled_mean) / (counts + 1.0)[:, None]
    scatter = []
    for component in range(k):  # K GEMMs of (d, N) x (N, d): no (N, K, d) temporary
        deviations = scores - means[component, :]
        weighted = responsibilities[:, component : component + 1] * deviations
        scatter.append(xp.matrix_transpose(weighted) @ deviations)
    identity = xp.eye(d, dtype=scores.dtype, device=B.device_of(scores))
    shrunk = (xp.stack(scatter) + pooled) / (counts + 1.0)[:, None, None]
    covariances = shrunk + reg_covar * identity
    weights = (counts + 1.0) / (n_obs + k)
    return HMoGParameters(weights, means, covariances, None, None, None)


def starting_point(
    model: HierarchicalMixtureOfGaussians,
    xs: Any,
    init: str,
    seed: int,
    reg_covar: float,
    noise_floor: float,
) -> Any:
    """Natural parameters to start training from.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    xs : array, shape (N, p)
        Data.
    init : {'kmeans++', 'random'}
        Strategy (see the module docstring).
    seed : int
        Seed of this restart.
    reg_covar : float
        Added to the latent component covariances.
    noise_floor : float
        Floor of the PPCA noise variance.

    Returns
    -------
    array, shape (model.dim,)
        Natural parameters in ``xs``'s namespace.
    """
    xp = B.array_namespace(xs)
    chooser = random.Random(seed)
    lower_model = model.lower_harmonium
    lower = lower_model.initialize_from_sample(seed, xs, 0.0, noise_floor)  # no jitter
    scores = lower_model.posterior_latent_mean(lower, xs)
    if init == "random":
        picked = chooser.sample(range(scores.shape[0]), model.n_components)
        centres = xp.take(scores, xp.asarray(picked, device=B.device_of(xs)), axis=0)
        assignments = lloyd_assignments(scores, centres, n_iterations=0)
    else:
        centres = kmeans_plus_plus(scores, model.n_components, chooser)
        assignments = lloyd_assignments(scores, centres)
    moments = mixture_moments(scores, assignments, reg_covar)
    upper = model.posterior_upper
    family = upper.component_man
    covariances = moments.covariances
    if upper.varying_rep != family.rep:
        # Components may differ only in a sub-rep: start them all from the pooled one.
        shared = xp.sum(moments.weights[:, None, None] * covariances, axis=0)
        covariances = xp.broadcast_to(shared, covariances.shape)
    rep = family.rep
    covariances = rep.unpack(rep.pack(covariances), family.n)
    upper_params = upper.from_generative(moments.weights, moments.means, covariances)
    return model._upper_for_prior(lower[: model.lkl_dim], upper_params)


def user_starting_point(
    model: HierarchicalMixtureOfGaussians,
    xs: Any,
    init: Any,
    seed: int,
    xp: ModuleType,
) -> Any:
    """Natural parameters from a user-supplied ``init`` (callable, parameters or arrays).

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    xs : array, shape (N, p)
        Data.
    init : callable, HMoGParameters, dict or array
        ``init(model, xs, seed)`` returning one of the other forms; the generative form
        (an :class:`HMoGParameters` or a dict with its six fields); or natural parameters
        of shape ``(model.dim,)``.
    seed : int
        Seed of this restart (passed to a callable).
    xp : module
        Compute namespace.

    Returns
    -------
    array, shape (model.dim,)
        Natural parameters.

    Raises
    ------
    ValueError
        If ``init`` is none of the accepted forms or has the wrong size.
    """
    value = init(model, xs, seed) if isinstance(init, Callable) else init  # type: ignore[arg-type]
    if isinstance(value, dict):
        value = HMoGParameters(**value)
    if isinstance(value, HMoGParameters):
        moved = [transfer(part, xp) if hasattr(part, "shape") else part for part in value]
        converted = [xp.asarray(part, dtype=xs.dtype, device=B.device_of(xs)) for part in moved]
        return model.from_generative(*converted)
    if hasattr(value, "shape"):
        params = xp.astype(transfer(value, xp), xs.dtype)
        if tuple(params.shape) != (model.dim,):
            msg = f"init parameters must have shape ({model.dim},); got {tuple(params.shape)}"
            raise ValueError(msg)
        model.log_partition_function(params)  # rejects invalid natural parameters
        return params
    msg = (
        "init must be 'kmeans++', 'random', a callable, HMoGParameters, a dict of the "
        f"generative fields or an array of natural parameters; got {type(value).__name__}"
    )
    raise ValueError(msg)


__all__ = [
    "kmeans_plus_plus",
    "lloyd_assignments",
    "mixture_moments",
    "starting_point",
    "user_starting_point",
]
