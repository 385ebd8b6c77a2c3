"""Rows that share a pattern of missing entries share their ``d × d`` systems.

Everything in a row's posterior that does not involve its values depends only on *which*
entries are observed: ``G = Aᵀ diag(ω) A``, ``G μ_k``, ``μ_kᵀ G μ_k``, ``Σ_O log ψ_j``, ``|O|``
and the factorised systems ``M_k = Σ_k⁻¹ + G`` (their inverses and log-determinants). When
the data have few distinct patterns (a block of sensors that fail together, survey sections
skipped together, mostly complete rows), these are computed once per pattern and E-step
(:func:`pattern_terms`), and every row picks its pattern's by a GEMM with a one-hot
matrix: the per-row work drops from ``O(p d² + K d³)`` to ``O(p d + K d² + U (d K + K d²))``
for ``U`` patterns, a saving while ``U`` is small (:func:`worthwhile_patterns`).

A row finds its pattern by comparing codes: the observed-entry indicator read as binary
numbers, one GEMM with a matrix of powers of two (exact integers in the data's floating dtype,
23 columns per float32 word and 52 per float64 word).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp.hmog._missing_rows import observed_products, system_grids

if TYPE_CHECKING:
    from hmog_xp.hmog._missing import ComponentTerms

__all__ = [
    "MissingPatterns",
    "PatternTerms",
    "pattern_codes",
    "pattern_terms",
    "worthwhile_patterns",
]


def pattern_codes(observed: Any, dtype: Any) -> Any:
    """Encode each row's observed-entry pattern as a few exact floating-point integers.

    Parameters
    ----------
    observed : array of bool, shape (m, p)
        Which entries are observed.
    dtype : dtype
        Floating dtype of the codes: each word packs as many columns as its significand
        holds exactly (23 in float32, 52 in float64).

    Returns
    -------
    array, shape (m, W)
        Word ``w`` is ``Σ_j 2^j · observed[:, B w + j]`` (one GEMM with a matrix of powers
        of two); two rows have the same codes exactly when they have the same pattern.
    """
    xp = B.array_namespace(observed)
    p = observed.shape[-1]
    bits = 23 if dtype == xp.float32 else 52
    powers = [[0.0] * (-(-p // bits)) for _ in range(p)]
    for j in range(p):
        powers[j][j // bits] = float(2 ** (j % bits))
    device = B.device_of(observed)
    return xp.astype(observed, dtype) @ xp.asarray(powers, dtype=dtype, device=device)


@dataclass(frozen=True)
class MissingPatterns:  # numpydoc ignore=PR02
    """The distinct observed-entry patterns of a data set (hashable: a static model part).

    Parameters
    ----------
    rows : tuple of tuples of bool
        One tuple of ``p`` flags (True: observed) per distinct pattern.
    """

    rows: tuple[tuple[bool, ...], ...]

    @classmethod
    def of(cls, xs: Any, max_patterns: int) -> MissingPatterns | None:
        """The patterns of ``xs`` (NaN: missing), if there are at most ``max_patterns``.

        Parameters
        ----------
        xs : array, shape (N, p)
            Data (copied to the host once, as booleans).
        max_patterns : int
            The most patterns worth grouping by.

        Returns
        -------
        MissingPatterns or None
            None when the rows have more distinct patterns than ``max_patterns``.
        """
        xp = B.array_namespace(xs)
        rows = B.distinct_rows(xp.logical_not(xp.isnan(xs)), max_patterns)
        return None if rows is None else cls(rows)

    @property
    def n_patterns(self) -> int:
        """Number of distinct patterns ``U``."""
        return len(self.rows)

    def to_array(self, like: Any) -> Any:
        """The patterns as an array in the namespace and on the device of ``like``.

        Parameters
        ----------
        like : array
            Any array of the target namespace and device.

        Returns
        -------
        array of bool, shape (U, p)
            True where a pattern observes an entry.
        """
        xp = B.array_namespace(like)
        return xp.asarray(self.rows, dtype=xp.bool, device=B.device_of(like))


class PatternTerms(NamedTuple):
    """The pattern-dependent parts of the posteriors, once per pattern and parameter vector.

    Attributes
    ----------
    codes : array, shape (U, W)
        :func:`pattern_codes` of the patterns.
    products : array, shape (T + d K + K + 2, U)
        :func:`~._missing_rows.observed_products` of the patterns.
    covariances : list of lists of arrays
        The ``d × d`` grid of ``M⁻¹``, each entry shape ``(K, U)``.
    logdet : array, shape (K, U)
        ``log |M|``.
    """

    codes: Any
    products: Any
    covariances: list[list[Any]]
    logdet: Any

    def row_patterns(self, observed: Any) -> Any:
        """Return each row's pattern as a one-hot matrix.

        Parameters
        ----------
        observed : array of bool, shape (m, p)
            Which entries of the rows are observed (every row's pattern must be listed;
            a row whose pattern is not gets zeros).

        Returns
        -------
        array, shape (U, m)
            1 where row ``n`` has pattern ``u``, in the dtype of the terms.
        """
        xp = B.array_namespace(observed)
        codes = pattern_codes(observed, self.codes.dtype)
        same = self.codes[:, None, 0] == codes[None, :, 0]  # (U, m)
        for word in range(1, self.codes.shape[-1]):
            same = same & (self.codes[:, None, word] == codes[None, :, word])
        return xp.astype(same, self.codes.dtype)

    def gather(self, one_hot: Any) -> tuple[Any, list[list[Any]], Any]:
        """The products and factorised systems of rows with the patterns ``one_hot``.

        Rows pick their pattern's values by GEMMs with the one-hot matrix (fast on every
        backend, where gathers are not).

        Parameters
        ----------
        one_hot : array, shape (U, m)
            From :meth:`row_patterns`.

        Returns
        -------
        products : array, shape (T + d K + K + 2, m)
            The rows' :func:`~._missing_rows.observed_products`.
        covariances : list of lists of arrays
            The grid of ``M⁻¹``, each entry shape ``(K, m)`` (symmetric entries shared).
        logdet : array, shape (K, m)
            ``log |M|``.
        """
        xp = B.array_namespace(self.logdet)
        d = len(self.covariances)
        pairs = [(i, j) for i in range(d) for j in range(i + 1)]
        k = self.logdet.shape[0]
        stacked = xp.concat([self.covariances[i][j] for i, j in pairs] + [self.logdet], axis=0)
        picked = stacked @ one_hot  # ((T + 1) K, m)
        grid: list[list[Any]] = [[None] * d for _ in range(d)]
        for index, (i, j) in enumerate(pairs):
            grid[i][j] = grid[j][i] = picked[index * k : (index + 1) * k, :]
        return self.products @ one_hot, grid, picked[len(pairs) * k :, :]


def worthwhile_patterns(n_features: int, n_factors: int, n_components: int) -> int:
    """The most distinct patterns for which grouping rows by pattern still saves time.

    A grouped row picks its pattern's ``F = T + d K + K + 2`` products and ``(T + 1) K``
    system entries (``T = d (d + 1) / 2``) by GEMMs with a one-hot matrix, ``U (F + (T + 1)
    K)`` multiply-adds, instead of forming them (``p F``) and factorising ``K`` systems
    (about ``K d³`` element-wise operations, several times dearer per operation than a
    GEMM's): grouping pays while the first is below about four times the second (measured
    on NumPy and JAX: break-even near 90 patterns for p 50, d 5, K 8 and beyond 100 for
    p 100, d 10, K 20).

    Parameters
    ----------
    n_features : int
        ``p``.
    n_factors : int
        ``d``.
    n_components : int
        ``K``.

    Returns
    -------
    int
        The break-even number of patterns (at least 1).
    """
    p, d, k = n_features, n_factors, n_components
    packed = d * (d + 1) // 2
    products = packed + d * k + k + 2
    saved = p * products + k * d**3
    return max(1, 4 * saved // (products + (packed + 1) * k))


def pattern_terms(terms: ComponentTerms, patterns: MissingPatterns) -> PatternTerms:
    """Compute the pattern-dependent parts of the posteriors for every pattern.

    Parameters
    ----------
    terms : ComponentTerms
        The component terms of the current parameters.
    patterns : MissingPatterns
        The data's patterns.

    Returns
    -------
    PatternTerms
        What the rows gather.
    """
    xp = B.array_namespace(terms.loadings)
    observed = patterns.to_array(terms.loadings)
    mask = xp.astype(observed, terms.loadings.dtype)
    products = observed_products(terms, mask)
    covariances, logdet = system_grids(terms, products)
    return PatternTerms(pattern_codes(observed, mask.dtype), products, covariances, logdet)
