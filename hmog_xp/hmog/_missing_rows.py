"""The per-row work of the missing-value E-step, shaped for GEMMs and small-system grids.

Every row ``n`` needs ``G_n = Aᵀ diag(ω_n) A``, ``G_n μ_k`` and ``μ_kᵀ G_n μ_k``: each is
``Σ_j ω_nj c_j`` for a column ``c_j`` built from the loadings and the component means, so for
a chunk of rows they are one GEMM ``ω @ C`` with ``C`` of shape ``(p, d² + d K + K)``. The
``m K`` systems ``M = Σ_k⁻¹ + G_n`` are then factorised entry by entry
(:mod:`._small_spd`), and the posterior is kept as a grid of ``(m, K)`` arrays, one per entry,
which the chunk sums reduce without forming ``(m, K, d, d)`` arrays.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp.hmog._small_spd import inverse_and_logdet

if TYPE_CHECKING:
    from hmog_xp.hmog._missing import ComponentTerms

__all__ = [
    "PosteriorGrids",
    "RowParts",
    "logits",
    "lower_pairs",
    "observable_sums",
    "packed_position",
    "posterior_grids",
    "row_parts",
    "unpack",
]


def lower_pairs(d: int) -> list[tuple[int, int]]:
    """The entries ``(i, j)``, ``j <= i``, of a symmetric ``d × d`` matrix, in packed order.

    Parameters
    ----------
    d : int
        The size.

    Returns
    -------
    list of tuple of int
        ``(0, 0), (1, 0), (1, 1), (2, 0), …``: ``d (d + 1) / 2`` pairs.
    """
    return [(i, j) for i in range(d) for j in range(i + 1)]


def packed_position(i: int, j: int) -> int:
    """Position of entry ``(i, j)`` (either triangle) in :func:`lower_pairs` order.

    Parameters
    ----------
    i, j : int
        Row and column.

    Returns
    -------
    int
        The position.
    """
    row, column = max(i, j), min(i, j)
    return row * (row + 1) // 2 + column


def unpack(packed: Any, d: int) -> Any:
    """Full symmetric matrices from their packed lower triangles.

    Parameters
    ----------
    packed : array, shape (..., d (d + 1) / 2)
        Lower triangles in :func:`lower_pairs` order.
    d : int
        The size.

    Returns
    -------
    array, shape (..., d, d)
        The symmetric matrices.
    """
    xp = B.array_namespace(packed)
    positions = [packed_position(i, j) for i in range(d) for j in range(d)]
    index = xp.asarray(positions, dtype=xp.int64, device=B.device_of(packed))
    return xp.reshape(xp.take(packed, index, axis=-1), (*packed.shape[:-1], d, d))


class RowParts(NamedTuple):
    """What each row contributes before any ``d × d`` system is solved.

    Attributes
    ----------
    products : array, shape (m, T + d K + K), ``T = d (d + 1) / 2``
        ``[G_n (packed lower triangle, :func:`lower_pairs` order) | G_n μ_k (entry i of
        component k at T + i K + k) | μ_kᵀ G_n μ_k]``.
    shift : array, shape (m, d)
        ``s = Aᵀ (ω ∘ (x − b))``.
    energy : array, shape (m,)
        ``q = Σ ω (x − b)²``.
    noise_logdet : array, shape (m,)
        ``Σ_O log ψ_j``.
    n_observed : array, shape (m,)
        Number of observed entries.
    """

    products: Any
    shift: Any
    energy: Any
    noise_logdet: Any
    n_observed: Any


def row_parts(terms: ComponentTerms, xs: Any, observed: Any) -> RowParts:
    """The GEMM-shaped per-row quantities of :class:`RowParts`.

    Parameters
    ----------
    terms : ComponentTerms
        The component terms.
    xs : array, shape (m, p)
        Observations (entries where ``observed`` is False: any finite value).
    observed : array of bool, shape (m, p)
        Which entries are observed.

    Returns
    -------
    RowParts
        The per-row quantities.
    """
    xp = B.array_namespace(xs)
    means, loadings, bias, variances = terms.means, terms.loadings, terms.bias, terms.noise
    (p, d), k = loadings.shape, means.shape[0]
    mask = xp.astype(observed, xs.dtype)
    precision = mask * (1.0 / variances)  # ω, (m, p): 0 where missing
    residual = mask * (xs - bias)  # exact: 0 where missing, x − b where observed
    weighted = precision * residual
    projected = loadings @ xp.matrix_transpose(means)  # A μ_k, (p, K)
    pairs = lower_pairs(d)
    device = B.device_of(xs)
    rows = xp.asarray([i for i, _ in pairs], dtype=xp.int64, device=device)
    cols = xp.asarray([j for _, j in pairs], dtype=xp.int64, device=device)
    columns = xp.concat(
        [
            xp.take(loadings, rows, axis=1) * xp.take(loadings, cols, axis=1),  # a_ji a_jl
            xp.reshape(loadings[:, :, None] * projected[:, None, :], (p, d * k)),
            projected * projected,
        ],
        axis=-1,
    )
    return RowParts(
        precision @ columns,
        weighted @ loadings,
        xp.sum(weighted * residual, axis=-1),
        mask @ xp.log(variances),
        xp.sum(mask, axis=-1),
    )


def logits(terms: ComponentTerms, parts: RowParts, u_solved: Any, system_logdet: Any) -> Any:
    """``log π_k + log N(x_O; A_O μ_k + b_O, C_k)`` from the row parts and the solved systems.

    Parameters
    ----------
    terms : ComponentTerms
        The component terms.
    parts : RowParts
        :func:`row_parts` of the rows.
    u_solved : array, shape (m, K)
        ``u_kᵀ M_k⁻¹ u_k``.
    system_logdet : array, shape (m, K)
        ``log |M_k|``.

    Returns
    -------
    array, shape (m, K)
        The component log-terms.
    """
    xp = B.array_namespace(parts.products)
    k = terms.means.shape[0]
    quadratic = (
        parts.energy[:, None]
        - 2.0 * parts.shift @ xp.matrix_transpose(terms.means)
        + parts.products[:, -k:]  # μ_kᵀ G μ_k
        - u_solved
    )
    logdets = parts.noise_logdet[:, None] + terms.covariance_logdets[None, :] + system_logdet
    return xp.log(terms.weights)[None, :] - 0.5 * (
        parts.n_observed[:, None] * math.log(2.0 * math.pi) + logdets + quadratic
    )


class PosteriorGrids(NamedTuple):
    """The posteriors of :func:`~._missing.observed_posteriors`, one ``(m, K)`` array an entry.

    Attributes
    ----------
    logits : array, shape (m, K)
        The component log-terms.
    means : list of d arrays, shape (m, K)
        Entry ``i`` of ``E[y | x_O, z = k]``.
    covariances : list of d lists of d arrays, shape (m, K)
        Entry ``(i, j)`` of ``M_k⁻¹`` (symmetric: ``[i][j] is [j][i]``).
    """

    logits: Any
    means: list[Any]
    covariances: list[list[Any]]


def posterior_grids(terms: ComponentTerms, xs: Any, observed: Any) -> PosteriorGrids:
    """Compute the posteriors of every row and component, entry by entry (small ``d``).

    Parameters
    ----------
    terms : ComponentTerms
        The component terms.
    xs : array, shape (m, p)
        Observations (entries where ``observed`` is False: any finite value).
    observed : array of bool, shape (m, p)
        Which entries are observed.

    Returns
    -------
    PosteriorGrids
        Logits, posterior means and covariances.
    """
    parts = row_parts(terms, xs, observed)
    products, shift, inverse_covariances = parts.products, parts.shift, terms.inverse_covariances
    d, k = shift.shape[-1], terms.means.shape[0]
    lower = [
        [
            products[:, packed_position(i, j)][:, None] + inverse_covariances[:, i, j][None, :]
            for j in range(i + 1)
        ]
        for i in range(d)
    ]  # M = Σ_k⁻¹ + G_n
    offset = d * (d + 1) // 2
    u = [  # u_k = s − G μ_k
        shift[:, i : i + 1] - products[:, offset + i * k : offset + (i + 1) * k] for i in range(d)
    ]
    covariances, system_logdet = inverse_and_logdet(lower)
    means, u_solved = [], None
    for i in range(d):
        solved = covariances[i][0] * u[0]
        for j in range(1, d):
            solved = solved + covariances[i][j] * u[j]
        means.append(terms.means[:, i][None, :] + solved)
        u_solved = u[i] * solved if u_solved is None else u_solved + u[i] * solved
    return PosteriorGrids(logits(terms, parts, u_solved, system_logdet), means, covariances)


def observable_sums(
    generative: tuple[Any, Any, Any],
    xs: Any,
    observed: Any,
    weights: Any,
    latent: Any,
    latent_second: Any,
) -> tuple[Any, Any, Any]:
    """Row sums of the expected observable statistics, from each row's latent moments.

    A missing entry ``j`` contributes ``E[x_j] = a_jᵀ E[y] + b_j``,
    ``E[x_j²] = a_jᵀ E[yyᵀ] a_j + 2 b_j a_jᵀ E[y] + b_j² + ψ_j`` and
    ``E[x_j y] = E[yyᵀ] a_j + b_j E[y]``; an observed entry contributes itself. Summed over
    rows these are GEMMs of the missing-entry indicator with the latent moments.

    Parameters
    ----------
    generative : tuple of arrays
        The loadings ``A`` (p, d), the bias ``b`` (p,) and the noise variances ``ψ`` (p,).
    xs : array, shape (m, p)
        Observations (entries where ``observed`` is False: any finite value).
    observed : array of bool, shape (m, p)
        Which entries are observed.
    weights : array, shape (m,)
        Row weights ``w``.
    latent : array, shape (m, d)
        ``w E[y | x_O]``.
    latent_second : array, shape (m, d (d + 1) / 2)
        ``w E[yyᵀ | x_O]``, packed lower triangles (:func:`lower_pairs` order).

    Returns
    -------
    tuple of arrays
        ``(Σ w E[x], Σ w E[x²], Σ w E[x yᵀ])``, shapes ``(p,)``, ``(p,)``, ``(p, d)``.
    """
    xp = B.array_namespace(xs)
    loadings, bias, noise = generative
    d = loadings.shape[-1]
    mask = xp.astype(observed, xs.dtype)
    seen = mask * xs
    # Over the rows missing entry j: Σ w E[y], Σ w E[yyᵀ] and Σ w, in one GEMM.
    gathered = xp.matrix_transpose(1.0 - mask) @ xp.concat(
        [latent, latent_second, weights[:, None]], axis=-1
    )
    missing_latent = gathered[:, :d]
    second_loadings = xp.sum(
        unpack(gathered[:, d:-1], d) * loadings[:, None, :], axis=-1
    )  # Σ w E[yyᵀ] a_j, (p, d)
    missing_weight = gathered[:, -1]
    loaded_latent = xp.sum(loadings * missing_latent, axis=-1)  # Σ w a_jᵀ E[y], (p,)
    seen_weighted = weights @ seen, weights @ (seen * seen)
    values = seen_weighted[0] + loaded_latent + missing_weight * bias
    squares = (
        seen_weighted[1]
        + xp.sum(second_loadings * loadings, axis=-1)
        + 2.0 * bias * loaded_latent
        + missing_weight * (bias * bias + noise)
    )
    cross = xp.matrix_transpose(seen) @ latent + second_loadings + bias[:, None] * missing_latent
    return values, squares, cross
