"""Many small symmetric positive definite systems, factorised entry by entry.

The missing-value E-step solves one ``d × d`` system ``M = Σ_k⁻¹ + G_n`` per row and
component: ``N K`` tiny matrices. Batched LAPACK calls pay a per-matrix overhead that dwarfs
the ``d³`` arithmetic when ``d`` is small, so here a matrix is a *grid* of arrays, one per
entry, each holding that entry for every matrix of the batch, and the Cholesky factorisation,
the triangular inverse and the inverse run as ``O(d³)`` element-wise operations on whole
batches (fused into a few loops by XLA on JAX). The arithmetic is the unblocked Cholesky
algorithm, the same as LAPACK's for such sizes.
"""

from __future__ import annotations

from typing import Any

from hmog_xp import _backend as B

__all__ = ["inverse_and_logdet"]

Grid = list[list[Any]]


def _cholesky(lower: Grid, xp: Any) -> tuple[Grid, list[Any]]:
    """Lower Cholesky factor ``L`` (entries ``j <= i``) and the reciprocals of its diagonal."""
    d = len(lower)
    factor: Grid = [[None] * d for _ in range(d)]
    reciprocal: list[Any] = [None] * d
    for j in range(d):
        pivot = lower[j][j]
        for k in range(j):
            pivot = pivot - factor[j][k] * factor[j][k]
        factor[j][j] = xp.sqrt(pivot)
        reciprocal[j] = 1.0 / factor[j][j]
        for i in range(j + 1, d):
            entry = lower[i][j]
            for k in range(j):
                entry = entry - factor[i][k] * factor[j][k]
            factor[i][j] = entry * reciprocal[j]
    return factor, reciprocal


def inverse_and_logdet(lower: Grid) -> tuple[Grid, Any]:
    """Inverse and log-determinant of a batch of small SPD matrices given as entry grids.

    Parameters
    ----------
    lower : list of lists of arrays
        ``lower[i][j]`` for ``j <= i`` is entry ``(i, j)`` of every matrix, all of one
        batch shape ``(...)``; entries above the diagonal are not read.

    Returns
    -------
    inverse : list of lists of arrays
        The full ``d × d`` grid of ``A⁻¹`` (symmetric: ``inverse[i][j] is inverse[j][i]``).
    logdet : array, shape (...)
        ``log det A``.

    Notes
    -----
    Matrices that are not positive definite give NaN (no error is raised).
    """
    xp = B.array_namespace(lower[0][0])
    d = len(lower)
    factor, reciprocal = _cholesky(lower, xp)
    logdet = xp.log(reciprocal[0])
    for j in range(1, d):
        logdet = logdet + xp.log(reciprocal[j])
    # R = L⁻¹, lower triangular: R_ii = 1 / L_ii, R_ij = −(Σ_{j<=k<i} L_ik R_kj) / L_ii.
    inverse_factor: Grid = [[None] * d for _ in range(d)]
    for j in range(d):
        inverse_factor[j][j] = reciprocal[j]
        for i in range(j + 1, d):
            total = factor[i][j] * inverse_factor[j][j]
            for k in range(j + 1, i):
                total = total + factor[i][k] * inverse_factor[k][j]
            inverse_factor[i][j] = -total * reciprocal[i]
    # A⁻¹ = Rᵀ R: (A⁻¹)_ij = Σ_{k >= max(i, j)} R_ki R_kj.
    inverse: Grid = [[None] * d for _ in range(d)]
    for i in range(d):
        for j in range(i + 1):
            total = inverse_factor[i][i] * inverse_factor[i][j]
            for k in range(i + 1, d):
                total = total + inverse_factor[k][i] * inverse_factor[k][j]
            inverse[i][j] = total
            inverse[j][i] = total
    return inverse, -2.0 * logdet
