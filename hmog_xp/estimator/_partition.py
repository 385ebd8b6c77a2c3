"""Building blocks of the estimator's starts: partitions, within-group factor analysis, moments.

See :mod:`hmog_xp.estimator._init` for how a start combines them. Everything here takes and
returns arrays of one namespace; the random choices come from a host-side
:class:`random.Random`, so every backend makes the same choices for one seed. The kernels
have no host reads and fixed-count loops (``repeat``: one ``lax.fori_loop`` on JAX), so on
JAX each is compiled once per shape (``B.jit``) instead of dispatching hundreds of small
operations, each compiled on first use.
"""

from __future__ import annotations

import random
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._backend.chunks import repeat
from hmog_xp.harmoniums import column_signs
from hmog_xp.hmog import HierarchicalMixtureOfGaussians, HMoGParameters

__all__ = [
    "FACTOR_ITERATIONS",
    "factor_loadings",
    "kmeans_plus_plus",
    "lloyd_assignments",
    "mixture_moments",
    "noise_storage",
    "random_partition",
    "within_covariance",
]

#: Lloyd iterations after the k-means++ seeding.
_LLOYD_ITERATIONS = 10
#: Profile-likelihood factor-analysis iterations of a start (diagonal noise).
FACTOR_ITERATIONS = 30


def kmeans_plus_plus(scores: Any, n_clusters: int, chooser: random.Random) -> Any:
    """Choose ``n_clusters`` centres by k-means++ (``D²``) seeding.

    The host draws the first centre's row and one uniform per further centre; the choices
    themselves (a cumulative sum of the squared distances, inverted at the uniform) are made
    on the device in one compiled call, with no host read.

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
    device = B.device_of(scores)
    first = xp.asarray([chooser.randrange(scores.shape[0])], dtype=xp.int64, device=device)
    uniforms = [chooser.random() for _ in range(1, n_clusters)]
    targets = xp.asarray(uniforms, dtype=scores.dtype, device=device)
    return _compiled_seeding(scores, first, targets)


def _seeding(scores: Any, first: Any, targets: Any) -> Any:
    """k-means++ centres from the first row index ``(1,)`` and ``K − 1`` uniforms."""
    xp = B.array_namespace(scores, targets)
    n_obs, n_cols = scores.shape
    k = targets.shape[0] + 1
    labels = xp.arange(k, dtype=first.dtype, device=B.device_of(scores))
    start = xp.take(scores, first, axis=0)
    centres = xp.broadcast_to(start, (k, n_cols))
    distances = xp.sum((scores - start) ** 2, axis=-1)
    last = xp.asarray(n_obs - 1, dtype=first.dtype, device=B.device_of(scores))

    def choose(carry: tuple[Any, Any, Any]) -> tuple[Any, Any, Any]:
        centres, distances, step = carry  # step: the index of the centre to choose
        cumulative = xp.cumulative_sum(distances)
        total = cumulative[-1]
        target = xp.take(targets, xp.reshape(step - 1, (1,)))[0]
        inverted = xp.sum(xp.astype(cumulative < target * total, first.dtype))
        # Every point coincides with a centre when the total is 0: any point will do.
        anywhere = xp.astype(xp.floor(target * n_obs), first.dtype)
        index = xp.minimum(xp.where(total > 0.0, inverted, anywhere), last)
        centre = xp.take(scores, xp.reshape(index, (1,)), axis=0)
        centres = xp.where((labels == step)[:, None], centre, centres)
        distances = xp.minimum(distances, xp.sum((scores - centre) ** 2, axis=-1))
        return centres, distances, step + 1

    step = xp.asarray(1, dtype=first.dtype, device=B.device_of(scores))
    return repeat(choose, k - 1, (centres, distances, step))[0]


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
    return _compiled_lloyd(scores, centres, n_iterations)


def _lloyd(scores: Any, centres: Any, n_iterations: int) -> Any:
    xp = B.array_namespace(scores, centres)
    k = centres.shape[0]
    labels = xp.arange(k, device=B.device_of(scores))
    squared = xp.sum(scores**2, axis=-1, keepdims=True)

    def assign(centres: Any) -> Any:
        distances = squared - 2.0 * scores @ xp.matrix_transpose(centres)
        distances = distances + xp.sum(centres**2, axis=-1)
        nearest = xp.argmin(distances, axis=-1)
        return xp.astype(nearest[:, None] == labels[None, :], scores.dtype)

    def update(centres: Any) -> Any:
        one_hot = assign(centres)
        counts = xp.sum(one_hot, axis=0)
        updated = (xp.matrix_transpose(one_hot) @ scores) / xp.maximum(counts, 1.0)[:, None]
        return xp.where(counts[:, None] > 0, updated, centres)

    return assign(repeat(update, n_iterations, centres))


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
    sums = xp.matrix_transpose(responsibilities) @ centred
    offsets = sums / (counts + 1.0)[:, None]  # shrunk towards the pooled mean by one point
    means = pooled_mean + offsets
    # Scatter about the means, Σ r (x − m)(x − m)ᵀ = Σ r x xᵀ − m sᵀ − s mᵀ + n m mᵀ with
    # x centred on the pooled mean: one (K, N) x (N, d²) GEMM, no (N, K, d) temporary.
    outer = xp.reshape(centred[:, :, None] * centred[:, None, :], (n_obs, d * d))
    second = xp.reshape(xp.matrix_transpose(responsibilities) @ outer, (k, d, d))
    cross = offsets[:, :, None] * sums[:, None, :]
    scatter = (
        second
        - cross
        - xp.matrix_transpose(cross)
        + counts[:, None, None] * offsets[:, :, None] * offsets[:, None, :]
    )
    identity = xp.eye(d, dtype=scores.dtype, device=B.device_of(scores))
    shrunk = (scatter + pooled) / (counts + 1.0)[:, None, None]
    covariances = shrunk + reg_covar * identity
    weights = (counts + 1.0) / (n_obs + k)
    return HMoGParameters(weights, means, covariances, None, None, None)


def random_partition(n_obs: int, n_clusters: int, chooser: random.Random, like: Any) -> Any:
    """One-hot labels of a uniformly random partition of ``n_obs`` rows into ``n_clusters``.

    Parameters
    ----------
    n_obs : int
        Number of rows ``N``.
    n_clusters : int
        Number of groups ``K``.
    chooser : random.Random
        Randomness (host-side).
    like : array
        An array of the namespace, device and dtype to create the labels in.

    Returns
    -------
    array, shape (N, K)
        One-hot assignments.
    """
    xp = B.array_namespace(like)
    device = B.device_of(like)
    labels = xp.asarray([chooser.randrange(n_clusters) for _ in range(n_obs)], device=device)
    groups = xp.arange(n_clusters, device=device)
    return xp.astype(labels[:, None] == groups[None, :], like.dtype)


def within_covariance(data: Any, assignments: Any) -> Any:
    """Pooled within-group covariance ``Σ_i (x_i − m_{g(i)})(x_i − m_{g(i)})ᵀ / N``.

    Parameters
    ----------
    data : array, shape (N, p)
        Rows.
    assignments : array, shape (N, K)
        One-hot groups.

    Returns
    -------
    array, shape (p, p)
        The covariance.
    """
    xp = B.array_namespace(data, assignments)
    counts = xp.sum(assignments, axis=0)
    means = (xp.matrix_transpose(assignments) @ data) / xp.maximum(counts, 1.0)[:, None]
    residuals = data - assignments @ means
    return xp.matrix_transpose(residuals) @ residuals / data.shape[0]


def factor_loadings(
    covariance: Any, n_factors: int, diagonal_noise: bool, floor: float, n_iterations: int
) -> tuple[Any, Any]:
    """Return loadings and noise variances of a covariance: factor analysis or PPCA.

    Parameters
    ----------
    covariance : array, shape (p, p)
        Covariance to factor.
    n_factors : int
        ``d`` (columns beyond ``p`` are zero).
    diagonal_noise : bool
        Factor analysis (profile-likelihood iterations from ``Ψ = diag(S)``, see the module
        docstring) when True; probabilistic PCA (``Ψ = σ² I``, ``σ²`` the mean of the
        trailing eigenvalues) otherwise.
    floor : float
        Lowest noise variance (``> 0``).
    n_iterations : int
        Factor-analysis iterations.

    Returns
    -------
    loadings : array, shape (p, d)
        ``A``, each column's sign fixed by the cubes of ``Ψ^{-1/2} A``.
    noise : array, shape (p,)
        Noise variances ``Ψ`` (all equal for probabilistic PCA).
    """
    xp = B.array_namespace(covariance)
    p = covariance.shape[-1]
    top = min(n_factors, p)
    dtype, device = covariance.dtype, B.device_of(covariance)
    lowest = xp.asarray(floor, dtype=dtype, device=device)
    variances = xp.maximum(xp.linalg.diagonal(covariance), lowest)

    def leading(matrix: Any) -> tuple[Any, Any, Any]:
        values, vectors = xp.linalg.eigh(matrix)  # ascending
        return (
            xp.flip(values[p - top :], axis=0),
            xp.flip(vectors[:, p - top :], axis=1),
            values[: p - top],
        )

    if diagonal_noise:

        def profile(state: tuple[Any, Any]) -> tuple[Any, Any]:
            noise, _ = state
            root = xp.sqrt(noise)
            values, vectors, _ = leading(covariance / (root[:, None] * root[None, :]))
            lift = xp.sqrt(xp.maximum(values - 1.0, xp.zeros_like(values)))
            loadings = root[:, None] * vectors * lift
            return xp.maximum(variances - xp.sum(loadings**2, axis=1), lowest), loadings

        # No iteration: all variance is noise, and the loadings are zero.
        zeros = xp.zeros((p, top), dtype=dtype, device=device)
        noise, loadings = repeat(profile, n_iterations, (variances, zeros))
    else:
        values, vectors, rest = leading(covariance)
        variance = xp.maximum(xp.mean(rest), lowest) if p > top else lowest
        loadings = vectors * xp.sqrt(xp.maximum(values - variance, lowest))
        noise = variance * xp.ones((p,), dtype=dtype, device=device)
    loadings = loadings * column_signs(loadings / xp.sqrt(noise)[:, None])
    if top < n_factors:  # more factors than dimensions: pad with zero columns
        padding = xp.zeros((p, n_factors - top), dtype=dtype, device=device)
        loadings = xp.concat([loadings, padding], axis=1)
    return loadings, noise


def noise_storage(model: HierarchicalMixtureOfGaussians, noise: Any) -> Any:
    """Noise variances in the observable rep's plain storage.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model (its observable rep).
    noise : array, shape (p,)
        Noise variances (all equal for isotropic noise).

    Returns
    -------
    array, shape (obs_rep.size(p),)
        ``diag(noise)`` packed in the rep (``Scale``: their mean).
    """
    xp = B.array_namespace(noise)
    rep = model.obs_man.rep
    eye = xp.eye(noise.shape[0], dtype=noise.dtype, device=B.device_of(noise))
    return rep.pack(noise[:, None] * eye)


_compiled_seeding = B.jit(_seeding)
_compiled_lloyd = B.jit(_lloyd, static_argnums=(2,))
