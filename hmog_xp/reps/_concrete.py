"""The three covariance representations (see :mod:`hmog_xp.reps._base` for the contract)."""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import Any, ClassVar

from hmog_xp import _backend as B
from hmog_xp.reps._base import CovarianceRep


@functools.lru_cache(maxsize=64)
def _upper_indices(n: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Row and column of each packed upper-triangle position, row by row."""
    rows = tuple(i for i in range(n) for _ in range(i, n))
    cols = tuple(j for i in range(n) for j in range(i, n))
    return rows, cols


@functools.lru_cache(maxsize=64)
def _packed_position_of_entry(n: int) -> tuple[int, ...]:
    """For each entry ``(i, j)`` of an ``n x n`` matrix, row-major, its packed position."""
    position = {}
    for k, (i, j) in enumerate(zip(*_upper_indices(n), strict=True)):
        position[i, j] = position[j, i] = k
    return tuple(position[i, j] for i in range(n) for j in range(n))


@functools.lru_cache(maxsize=64)
def _flat_upper_entries(n: int) -> tuple[int, ...]:
    """Row-major flat index ``i * n + j`` of each packed position."""
    return tuple(i * n + j for i, j in zip(*_upper_indices(n), strict=True))


@functools.lru_cache(maxsize=64)
def _packed_diagonal_positions(n: int) -> tuple[int, ...]:
    return tuple(k for k, (i, j) in enumerate(zip(*_upper_indices(n), strict=True)) if i == j)


@functools.lru_cache(maxsize=64)
def _off_diagonal_doubled(n: int) -> tuple[float, ...]:
    """Quadratic-form weight of each packed position: 1 on the diagonal, 2 off it."""
    rows, cols = _upper_indices(n)
    return tuple(1.0 if i == j else 2.0 for i, j in zip(rows, cols, strict=True))


@dataclass(frozen=True)
class PositiveDefinite(CovarianceRep):
    """Full symmetric matrices, stored as the upper triangle row by row, ``n(n+1)/2`` values."""

    generality: ClassVar[int] = 2

    def size(self, n: int) -> int:
        return n * (n + 1) // 2

    def pack(self, matrix: Any, /) -> Any:
        xp = B.array_namespace(matrix)
        n = matrix.shape[-1]
        flat = xp.reshape(matrix, (*matrix.shape[:-2], n * n))
        return B.take_fixed_columns(flat, _flat_upper_entries(n), xp=xp)

    def unpack(self, packed: Any, n: int, /) -> Any:
        xp = B.array_namespace(packed)
        flat = B.take_fixed_columns(packed, _packed_position_of_entry(n), xp=xp)
        return xp.reshape(flat, (*packed.shape[:-1], n, n))

    def outer_statistic(self, x: Any, /) -> Any:
        xp = B.array_namespace(x)
        rows, cols = _upper_indices(x.shape[-1])
        return B.fixed_column_products(x, rows, cols, xp=xp)

    def readable_shape(self, n: int) -> tuple[int, ...]:
        return (n, n)

    def _to_readable(self, packed: Any, n: int) -> Any:
        return self.unpack(packed, n)

    def _from_readable(self, value: Any, n: int) -> Any:
        return self.pack(value)

    def _statistic_weights(self, n: int) -> float:
        return 1.0

    def _quadratic_weights(self, n: int) -> tuple[float, ...]:
        return _off_diagonal_doubled(n)

    def diagonal(self, packed: Any, n: int, /) -> Any:
        xp = B.array_namespace(packed)
        return B.take_fixed_columns(packed, _packed_diagonal_positions(n), xp=xp)

    def add_diagonal(self, packed: Any, values: Any, n: int, /) -> Any:
        xp = B.array_namespace(packed, values)
        values = xp.broadcast_to(
            xp.asarray(values, dtype=packed.dtype, device=B.device_of(packed)),
            (*packed.shape[:-1], n),
        )
        eye = B.identity(n, packed, xp=xp)
        return packed + self.pack(values[..., :, None] * eye)

    def matvec(self, packed: Any, x: Any, /) -> Any:
        n = x.shape[-1]
        matrix = self.unpack(packed, n)
        if matrix.ndim == 2:  # one matrix, many vectors: a single GEMM (M is symmetric)
            return x @ matrix
        return (matrix @ x[..., None])[..., 0]

    def cholesky(self, packed: Any, n: int, /) -> Any:
        xp = B.array_namespace(packed)
        return B.cholesky(self.unpack(packed, n), xp=xp)

    def factor_diagonal(self, factor: Any, /) -> Any:
        return B.array_namespace(factor).linalg.diagonal(factor)

    def factor_solve(self, factor: Any, b: Any, /, *, transpose: bool = False) -> Any:
        xp = B.array_namespace(factor, b)
        if factor.ndim == 2 and b.ndim > 1:  # one factor, many vectors: one multi-RHS solve
            n = factor.shape[-1]
            columns = xp.matrix_transpose(xp.reshape(b, (-1, n)))
            solved = B.solve_triangular(factor, columns, transpose=transpose, xp=xp)
            return xp.reshape(xp.matrix_transpose(solved), b.shape)
        return B.solve_triangular(factor, b[..., None], transpose=transpose, xp=xp)[..., 0]

    def factor_solve_matrix(self, factor: Any, b: Any, /, *, transpose: bool = False) -> Any:
        xp = B.array_namespace(factor, b)
        return B.solve_triangular(factor, b, transpose=transpose, xp=xp)

    def congruence_statistic(self, left: Any, middle: Any, /) -> Any:
        return self.pack(left @ middle @ B.array_namespace(left).matrix_transpose(left))

    def matvec_all(self, packed: Any, vectors: Any, /) -> Any:
        xp = B.array_namespace(packed, vectors)
        k, n = packed.shape[0], vectors.shape[-1]
        # columns ordered (row of M_k, k): the (N, K, n) result is a view of (N, n, K) rows,
        # whose K-sums (responsibility-weighted means) PyTorch's batched GEMMs run about twice
        # as fast; NumPy runs both layouts alike.
        stacked = xp.reshape(xp.permute_dims(self.unpack(packed, n), (1, 2, 0)), (n, n * k))
        products = xp.reshape(vectors @ stacked, (vectors.shape[0], n, k))
        return xp.permute_dims(products, (0, 2, 1))

    def sandwich_statistic(
        self, packed: Any, weights: Any, vectors: Any, statistics: Any = None, /
    ) -> Any:
        xp = B.array_namespace(packed, weights, vectors)
        n = vectors.shape[-1]
        outers = self.outer_statistic(vectors) if statistics is None else statistics
        # Σ_i w_ik v_i v_iᵀ for every k: one (K, N) x (N, n(n+1)/2) GEMM on packed outers.
        scatter = self.unpack(xp.matrix_transpose(weights) @ outers, n)
        matrices = self.unpack(packed, n)
        return self.pack(matrices @ scatter @ matrices)

    def factor_logdet(self, factor: Any, n: int, /) -> Any:
        return B.cholesky_logdet(factor, xp=B.array_namespace(factor))

    def factor_inverse(self, factor: Any, n: int, /) -> Any:
        return self.pack(B.cholesky_inverse(factor, xp=B.array_namespace(factor)))


@dataclass(frozen=True)
class _ElementwiseRep(CovarianceRep):
    """Shared code of the reps whose factors and inverses act elementwise on storage."""

    def matvec(self, packed: Any, x: Any, /) -> Any:
        return packed * x

    def cholesky(self, packed: Any, n: int, /) -> Any:
        xp = B.array_namespace(packed)
        # Non-positive entries give NaN factors (as JAX's Cholesky does), without a warning;
        # callers that validate check the factor's diagonal.
        return xp.sqrt(xp.where(packed > 0, packed, xp.full_like(packed, math.nan)))

    def factor_diagonal(self, factor: Any, /) -> Any:
        return factor

    def factor_solve(self, factor: Any, b: Any, /, *, transpose: bool = False) -> Any:
        return b / factor

    def factor_solve_matrix(self, factor: Any, b: Any, /, *, transpose: bool = False) -> Any:
        return b / factor[..., :, None]

    def factor_inverse(self, factor: Any, n: int, /) -> Any:
        return 1.0 / (factor * factor)

    def diagonal(self, packed: Any, n: int, /) -> Any:
        return packed

    def matvec_all(self, packed: Any, vectors: Any, /) -> Any:
        return vectors[:, None, :] * packed[None, :, :]

    def sandwich_statistic(
        self, packed: Any, weights: Any, vectors: Any, statistics: Any = None, /
    ) -> Any:
        xp = B.array_namespace(packed, weights, vectors)
        outers = self.outer_statistic(vectors) if statistics is None else statistics
        return packed * packed * (xp.matrix_transpose(weights) @ outers)

    def add_diagonal(self, packed: Any, values: Any, n: int, /) -> Any:
        return packed + values

    def _congruence_diagonal(self, left: Any, middle: Any) -> Any:
        return B.array_namespace(left).sum((left @ middle) * left, axis=-1)

    def unpack(self, packed: Any, n: int, /) -> Any:
        xp = B.array_namespace(packed)
        return packed[..., :, None] * B.identity(n, packed, xp=xp)


@dataclass(frozen=True)
class Diagonal(_ElementwiseRep):
    """Diagonal matrices, stored as their diagonal, ``n`` values."""

    generality: ClassVar[int] = 1

    def size(self, n: int) -> int:
        return n

    def pack(self, matrix: Any, /) -> Any:
        return B.array_namespace(matrix).linalg.diagonal(matrix)

    def outer_statistic(self, x: Any, /) -> Any:
        return x * x

    def readable_shape(self, n: int) -> tuple[int, ...]:
        return (n,)

    def _to_readable(self, packed: Any, n: int) -> Any:
        return packed

    def _from_readable(self, value: Any, n: int) -> Any:
        return value

    def _statistic_weights(self, n: int) -> float:
        return 1.0

    def _quadratic_weights(self, n: int) -> float:
        return 1.0

    def factor_logdet(self, factor: Any, n: int, /) -> Any:
        xp = B.array_namespace(factor)
        return 2.0 * xp.sum(xp.log(factor), axis=-1)

    def congruence_statistic(self, left: Any, middle: Any, /) -> Any:
        return self._congruence_diagonal(left, middle)


@dataclass(frozen=True)
class Scale(_ElementwiseRep):
    """Multiples of the identity ``s * I``, stored as ``s``, one value.

    The statistic storage of a second moment ``S`` is its trace (``sum x_i²`` for ``x xᵀ``).
    """

    generality: ClassVar[int] = 0

    def size(self, n: int) -> int:
        return 1

    def pack(self, matrix: Any, /) -> Any:
        xp = B.array_namespace(matrix)
        return xp.mean(xp.linalg.diagonal(matrix), axis=-1, keepdims=True)

    def outer_statistic(self, x: Any, /) -> Any:
        return B.array_namespace(x).sum(x * x, axis=-1, keepdims=True)

    def readable_shape(self, n: int) -> tuple[int, ...]:
        return ()

    def _to_readable(self, packed: Any, n: int) -> Any:
        return packed[..., 0]

    def _from_readable(self, value: Any, n: int) -> Any:
        return value[..., None]

    def _statistic_weights(self, n: int) -> float:
        return float(n)

    def _quadratic_weights(self, n: int) -> float:
        return 1.0

    def factor_logdet(self, factor: Any, n: int, /) -> Any:
        return 2.0 * n * B.array_namespace(factor).log(factor[..., 0])

    def congruence_statistic(self, left: Any, middle: Any, /) -> Any:
        xp = B.array_namespace(left)
        return xp.sum(self._congruence_diagonal(left, middle), axis=-1, keepdims=True)
