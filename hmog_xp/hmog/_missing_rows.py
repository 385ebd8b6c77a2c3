"""The per-row work of the missing-value E-step, shaped for GEMMs and small-system grids.

Every row ``n`` needs ``G_n = Aᵀ diag(ω_n) A``, ``G_n μ_k``, ``μ_kᵀ G_n μ_k``,
``Σ_O log ψ_j`` and ``|O|``: each is ``Σ_j 1[j observed] c_j`` for a column ``c_j`` built from
the loadings, the component means and the noise, so for a chunk of rows they are one GEMM of
the observed-entry indicator. The ``m K`` systems ``M = Σ_k⁻¹ + G_n`` are then factorised
entry by entry (:mod:`._small_spd`): the posteriors are a grid of ``(K, m)`` arrays, one per
entry (component-major, so that sums over components and over rows are both contiguous), and
the chunk sums reduce them as they are, without any ``(m, K, d, d)`` array.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp.hmog._small_spd import inverse_and_logdet

if TYPE_CHECKING:
    from hmog_xp.hmog._missing import ComponentTerms
    from hmog_xp.hmog._missing_patterns import PatternTerms

__all__ = [
    "RowParts",
    "batched_posteriors",
    "grid_posteriors",
    "grid_sums",
    "lower_pairs",
    "observable_sums",
    "observed_products",
    "packed_position",
    "row_parts",
    "system_grids",
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
    """What each row contributes before any ``d × d`` system is solved (rows last).

    Attributes
    ----------
    mask : array, shape (m, p)
        1 where observed, 0 where missing.
    products : array, shape (T + d K + K + 2, m), ``T = d (d + 1) / 2``
        ``G_n`` (packed lower triangle, :func:`lower_pairs` order), ``G_n μ_k`` (entry ``i``
        of component ``k`` in row ``T + i K + k``), ``μ_kᵀ G_n μ_k``, ``Σ_O log ψ_j``, ``|O|``.
    shift : array, shape (d, m)
        ``s = Aᵀ (ω ∘ (x − b))``.
    energy : array, shape (m,)
        ``q = Σ ω (x − b)²``.
    """

    mask: Any
    products: Any
    shift: Any
    energy: Any


def observed_products(terms: ComponentTerms, mask: Any) -> Any:
    """``G``, ``G μ_k``, ``μ_kᵀ G μ_k``, ``Σ_O log ψ_j`` and ``|O|`` of observed-entry patterns.

    Parameters
    ----------
    terms : ComponentTerms
        The component terms.
    mask : array, shape (m, p)
        1 where an entry is observed, 0 where it is missing (floating).

    Returns
    -------
    array, shape (T + d K + K + 2, m)
        The ``products`` of :class:`RowParts`: one GEMM of the indicator.
    """
    xp = B.array_namespace(mask)
    means, loadings, variances = terms.means, terms.loadings, terms.noise
    (p, d), k = loadings.shape, means.shape[0]
    device = B.device_of(mask)
    inverse_noise = 1.0 / variances  # ω of an observed entry
    projected = loadings @ xp.matrix_transpose(means)  # A μ_k, (p, K)
    pairs = lower_pairs(d)
    rows = xp.asarray([i for i, _ in pairs], dtype=xp.int64, device=device)
    cols = xp.asarray([j for _, j in pairs], dtype=xp.int64, device=device)
    weighted = xp.concat(
        [
            xp.take(loadings, rows, axis=1) * xp.take(loadings, cols, axis=1),  # a_ji a_jl
            xp.reshape(loadings[:, :, None] * projected[:, None, :], (p, d * k)),
            projected * projected,
        ],
        axis=-1,
    )
    columns = xp.concat(
        [
            inverse_noise[:, None] * weighted,
            xp.log(variances)[:, None],
            xp.ones((p, 1), dtype=mask.dtype, device=device),
        ],
        axis=-1,
    )
    return xp.matrix_transpose(columns) @ xp.matrix_transpose(mask)


def row_parts(terms: ComponentTerms, xs: Any, observed: Any, products: Any = None) -> RowParts:
    """The GEMM-shaped per-row quantities of :class:`RowParts`.

    Parameters
    ----------
    terms : ComponentTerms
        The component terms.
    xs : array, shape (m, p)
        Observations (entries where ``observed`` is False: any finite value).
    observed : array of bool, shape (m, p)
        Which entries are observed.
    products : array, shape (T + d K + K + 2, m), optional
        :func:`observed_products` of the rows, when known (e.g. from their patterns).

    Returns
    -------
    RowParts
        The per-row quantities.
    """
    xp = B.array_namespace(xs)
    loadings, bias, variances = terms.loadings, terms.bias, terms.noise
    mask = xp.astype(observed, xs.dtype)
    residual = mask * (xs - bias)  # exact: 0 where missing, x − b where observed
    inverse_noise = 1.0 / variances  # ω of an observed entry
    return RowParts(
        mask,
        observed_products(terms, mask) if products is None else products,
        xp.matrix_transpose(inverse_noise[:, None] * loadings) @ xp.matrix_transpose(residual),
        (residual * residual) @ inverse_noise,
    )


def _logits(terms: ComponentTerms, parts: RowParts, u_solved: Any, system_logdet: Any) -> Any:
    """``log π_k + log N(x_O; A_O μ_k + b_O, C_k)``, shape (K, m), from ``u M⁻¹ u``, ``log|M|``."""
    xp = B.array_namespace(parts.products)
    d, k = terms.means.shape[-1], terms.means.shape[0]
    offset = d * (d + 1) // 2 + d * k
    quadratic = (
        parts.energy[None, :]
        - 2.0 * terms.means @ parts.shift
        + parts.products[offset : offset + k, :]  # μ_kᵀ G μ_k
        - u_solved
    )
    noise_logdet, n_observed = parts.products[-2, :], parts.products[-1, :]
    logdets = noise_logdet[None, :] + terms.covariance_logdets[:, None] + system_logdet
    return xp.log(terms.weights)[:, None] - 0.5 * (
        n_observed[None, :] * math.log(2.0 * math.pi) + logdets + quadratic
    )


class _Grids(NamedTuple):
    logits: Any  # (K, m)
    means: list[Any]  # d arrays (K, m): E[y_i | x_O, z = k]
    covariances: list[list[Any]]  # d × d grid of (K, m): Cov[y | x_O, z = k]


def system_grids(terms: ComponentTerms, products: Any) -> tuple[list[list[Any]], Any]:
    """Factorise the systems ``M = Σ_k⁻¹ + G_n`` entry by entry.

    Parameters
    ----------
    terms : ComponentTerms
        The component terms.
    products : array, shape (T + d K + K + 2, m)
        :func:`observed_products` of the rows (or patterns).

    Returns
    -------
    covariances : list of lists of arrays
        The ``d × d`` grid of ``M⁻¹ = Cov[y | x_O, z = k]``, each entry shape ``(K, m)``.
    logdet : array, shape (K, m)
        ``log |M|``.
    """
    inverse_covariances = terms.inverse_covariances
    d = inverse_covariances.shape[-1]
    lower = [
        [
            inverse_covariances[:, i, j][:, None] + products[packed_position(i, j), :][None, :]
            for j in range(i + 1)
        ]
        for i in range(d)
    ]
    return inverse_and_logdet(lower)


def _posterior_grids(
    terms: ComponentTerms,
    parts: RowParts,
    factorised: tuple[list[list[Any]], Any] | None = None,
) -> _Grids:
    products, shift = parts.products, parts.shift
    d, k = shift.shape[0], terms.means.shape[0]
    offset = d * (d + 1) // 2
    u = [  # u_k = s − G μ_k
        shift[i : i + 1, :] - products[offset + i * k : offset + (i + 1) * k, :] for i in range(d)
    ]
    if factorised is None:
        factorised = system_grids(terms, products)
    covariances, system_logdet = factorised
    means, u_solved = [], None
    for i in range(d):
        solved = covariances[i][0] * u[0]
        for j in range(1, d):
            solved = solved + covariances[i][j] * u[j]
        means.append(terms.means[:, i][:, None] + solved)
        u_solved = u[i] * solved if u_solved is None else u_solved + u[i] * solved
    return _Grids(_logits(terms, parts, u_solved, system_logdet), means, covariances)


def grid_posteriors(terms: ComponentTerms, xs: Any, observed: Any) -> tuple[Any, Any, Any]:
    """Logits, latent means and covariances of every row and component, entry by entry.

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
    logits : array, shape (m, K)
        The component log-terms.
    means : array, shape (m, K, d)
        ``E[y | x_O, z = k]``.
    covariances : array, shape (m, K, d, d)
        ``Cov[y | x_O, z = k]``.
    """
    xp = B.array_namespace(xs)
    grids = _posterior_grids(terms, row_parts(terms, xs, observed))
    (k, m), d = grids.logits.shape, len(grids.means)
    entries = xp.stack([entry for row in grids.covariances for entry in row], axis=-1)
    return (
        xp.matrix_transpose(grids.logits),
        xp.permute_dims(xp.stack(grids.means, axis=-1), (1, 0, 2)),
        xp.permute_dims(xp.reshape(entries, (k, m, d, d)), (1, 0, 2, 3)),
    )


def batched_posteriors(terms: ComponentTerms, xs: Any, observed: Any) -> tuple[Any, Any, Any]:
    """:func:`grid_posteriors` by batched Cholesky factorisations (for larger ``d``).

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
    logits : array, shape (m, K)
        The component log-terms.
    means : array, shape (m, K, d)
        ``E[y | x_O, z = k]``.
    covariances : array, shape (m, K, d, d)
        ``Cov[y | x_O, z = k]``.
    """
    xp = B.array_namespace(xs)
    parts = row_parts(terms, xs, observed)
    means, inverse_covariances = terms.means, terms.inverse_covariances
    m, d, k = xs.shape[0], means.shape[-1], means.shape[0]
    offset = d * (d + 1) // 2
    gram = unpack(xp.matrix_transpose(parts.products[:offset, :]), d)  # G, (m, d, d)
    g_mu = xp.reshape(parts.products[offset : offset + d * k, :], (d, k, m))
    u = xp.matrix_transpose(parts.shift)[:, None, :] - xp.permute_dims(g_mu, (2, 1, 0))
    system = inverse_covariances[None, :, :, :] + gram[:, None, :, :]  # M_k, (m, K, d, d)
    factor = B.cholesky(system, xp=xp)
    solved = B.cholesky_solve(factor, u[..., None], xp=xp)[..., 0]
    u_solved = xp.matrix_transpose(xp.sum(u * solved, axis=-1))
    logdet = xp.matrix_transpose(B.cholesky_logdet(factor, xp=xp))
    identity = xp.eye(d, dtype=xs.dtype, device=B.device_of(xs))
    covariances = B.cholesky_solve(factor, xp.broadcast_to(identity, system.shape), xp=xp)
    logits = xp.matrix_transpose(_logits(terms, parts, u_solved, logdet))
    return logits, means[None, :, :] + solved, covariances


def grid_sums(
    terms: ComponentTerms,
    xs: Any,
    observed: Any,
    weights: Any,
    grouped: PatternTerms | None = None,
) -> tuple[Any, ...]:
    """The chunk sums of :func:`~._missing.chunk_sums`, entry by entry.

    Parameters
    ----------
    terms : ComponentTerms
        The component terms.
    xs : array, shape (m, p)
        Observations (entries where ``observed`` is False: any finite value).
    observed : array of bool, shape (m, p)
        Which entries are observed.
    weights : array, shape (m,)
        Row weights.
    grouped : PatternTerms, optional
        The pattern-dependent parts of the missingness patterns of these rows, computed
        once per parameter vector (:func:`~._missing_patterns.pattern_terms`); rows then
        gather them instead of forming and factorising their own systems.

    Returns
    -------
    tuple of arrays
        The six totals of :func:`~._missing.row_sums`, then ``Σ w log p(x_O)``.
    """
    xp = B.array_namespace(xs)
    if grouped is None:
        parts = row_parts(terms, xs, observed)
        grids = _posterior_grids(terms, parts)
    else:
        products, covariances, logdet = grouped.gather(grouped.row_patterns(observed))
        parts = row_parts(terms, xs, observed, products)
        grids = _posterior_grids(terms, parts, (covariances, logdet))
    d = len(grids.means)
    peak = xp.max(grids.logits, axis=0)  # finite: the logits are
    scaled = xp.exp(grids.logits - peak[None, :])
    total = xp.sum(scaled, axis=0)  # >= 1
    probs = scaled * (weights / total)[None, :]  # w r, (K, m)
    means, covariances = grids.means, grids.covariances
    entries = [probs * mean for mean in means] + [
        probs * (covariances[i][j] + means[i] * means[j]) for i, j in lower_pairs(d)
    ]  # w r E[y | k] and the lower triangle of w r E[yyᵀ | k]
    per_row = xp.stack([xp.sum(entry, axis=0) for entry in entries], axis=-1)  # (m, F)
    per_component = xp.stack([xp.sum(entry, axis=1) for entry in entries], axis=-1)  # (K, F)
    generative = terms.loadings, terms.bias, terms.noise
    return (
        *observable_sums(generative, xs, parts.mask, weights, per_row[:, :d], per_row[:, d:]),
        xp.sum(probs, axis=1),
        per_component[:, :d],
        unpack(per_component[:, d:], d),
        weights @ (xp.log(total) + peak),
    )


def observable_sums(
    generative: tuple[Any, Any, Any],
    xs: Any,
    mask: Any,
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
        Observations (entries where ``mask`` is 0: any finite value).
    mask : array, shape (m, p)
        1 where observed, 0 where missing (``xs``'s dtype).
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
    values = weights @ seen + loaded_latent + missing_weight * bias
    squares = (
        weights @ (seen * seen)
        + xp.sum(second_loadings * loadings, axis=-1)
        + 2.0 * bias * loaded_latent
        + missing_weight * (bias * bias + noise)
    )
    cross = xp.matrix_transpose(seen) @ latent + second_loadings + bias[:, None] * missing_latent
    return values, squares, cross
