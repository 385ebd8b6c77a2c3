"""Square-root factors of stored matrices: the part of the rep contract used to solve.

``cholesky`` returns a factor ``L`` with ``M = L Lᵀ`` (dense lower triangular for
``PositiveDefinite``, the elementwise square root of the storage otherwise); the other
methods use it to solve, invert and take log-determinants without forming inverses.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class FactorOperations(ABC):
    """Operations on square-root factors (mixed into :class:`CovarianceRep`)."""

    @abstractmethod
    def cholesky(self, packed: Any, n: int, /) -> Any:
        """Return a square-root factor ``L`` with ``M = L Lᵀ``.

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Plain storage of positive definite matrices.
        n : int
            Matrix dimension.

        Returns
        -------
        array
            ``(..., n, n)`` lower triangular for ``PositiveDefinite``; the elementwise
            square root of the storage, ``(..., size(n))``, otherwise.
        """

    @abstractmethod
    def factor_diagonal(self, factor: Any, /) -> Any:
        """Return the diagonal of a factor (positive iff the matrix is positive definite).

        Parameters
        ----------
        factor : array
            Output of :meth:`cholesky`.

        Returns
        -------
        array, shape (..., n) or (..., 1)
            Diagonal of ``L``.
        """

    @abstractmethod
    def factor_solve(self, factor: Any, b: Any, /, *, transpose: bool = False) -> Any:
        """Solve ``L z = b`` (or ``Lᵀ z = b``) with the factor from :meth:`cholesky`.

        Parameters
        ----------
        factor : array
            Output of :meth:`cholesky`.
        b : array, shape (..., n)
            Right-hand sides.
        transpose : bool, optional
            Solve with ``Lᵀ``.

        Returns
        -------
        array, shape (..., n)
            ``L⁻¹ b`` (or ``L⁻ᵀ b``).
        """

    @abstractmethod
    def factor_solve_matrix(self, factor: Any, b: Any, /, *, transpose: bool = False) -> Any:
        """Solve ``L Z = b`` (or ``Lᵀ Z = b``) for matrices ``b``, column by column.

        Parameters
        ----------
        factor : array
            Output of :meth:`cholesky`.
        b : array, shape (..., n, k)
            Right-hand sides, as columns.
        transpose : bool, optional
            Solve with ``Lᵀ``.

        Returns
        -------
        array, shape (..., n, k)
            ``L⁻¹ b`` (or ``L⁻ᵀ b``).
        """

    @abstractmethod
    def factor_logdet(self, factor: Any, n: int, /) -> Any:
        """Return ``log det M`` from the factor.

        Parameters
        ----------
        factor : array
            Output of :meth:`cholesky`.
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (...)
            Log-determinants.
        """

    @abstractmethod
    def factor_inverse(self, factor: Any, n: int, /) -> Any:
        """Return the plain storage of ``M⁻¹`` from the factor.

        Parameters
        ----------
        factor : array
            Output of :meth:`cholesky`.
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (..., size(n))
            Storage of the inverse.
        """

    def inverse(self, packed: Any, n: int, /) -> Any:
        """Return the storage of ``M⁻¹`` (``M`` positive definite).

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Plain storage.
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (..., size(n))
            Storage of the inverse.
        """
        return self.factor_inverse(self.cholesky(packed, n), n)

    def logdet(self, packed: Any, n: int, /) -> Any:
        """Return ``log det M`` (``M`` positive definite).

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Plain storage.
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (...)
            Log-determinants.
        """
        return self.factor_logdet(self.cholesky(packed, n), n)
