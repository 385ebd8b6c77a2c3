"""Covariance representations: how a symmetric ``n x n`` matrix is stored as a flat vector.

Three representations, from most to least general:

===================== ===================== ==========================================
rep                   storage, shape        matrices it holds
===================== ===================== ==========================================
``PositiveDefinite``  ``(..., n(n+1)/2)``   any symmetric matrix; upper triangle, row
                                            by row: ``M[0,0], M[0,1], .., M[1,1], ..``
``Diagonal``          ``(..., n)``          diagonal matrices; the diagonal
``Scale``             ``(..., 1)``          ``s * I``; the scalar ``s``
===================== ===================== ==========================================

``pack`` maps a dense symmetric matrix to storage by orthogonal (Frobenius) projection onto
the rep's matrices (``Scale`` keeps the mean of the diagonal), ``unpack`` maps back. Two more
storages sit beside the plain one, related to it by fixed weights, so that for a matrix ``M``
of the rep and *any* symmetric ``S``:

    ``sum(pack_quadratic(M) * pack_statistic(S)) == trace(M @ S)``

* ``pack_statistic(S)`` is how a second-moment statistic is stored (``Scale``: the trace).
* ``pack_quadratic(M)`` are the coefficients of a quadratic form (``PositiveDefinite``:
  off-diagonal entries doubled), so ``xᵀ M x == sum(pack_quadratic(M) * outer_statistic(x))``.

Square-root factors (``cholesky``) are dense lower triangular for ``PositiveDefinite`` and the
elementwise square root of the storage otherwise. Every method broadcasts over leading axes.
A representation holds no arrays: it is a frozen, hashable dataclass.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from types import ModuleType
from typing import Any, ClassVar

from hmog_xp import _backend as B
from hmog_xp._backend.linalg import constant
from hmog_xp._errors import ValidationError
from hmog_xp.reps._factors import FactorOperations


def _constant(values: tuple[float, ...], like: Any, xp: ModuleType) -> Any:
    return constant(values, like, dtype=like.dtype, xp=xp)


@dataclass(frozen=True)
class CovarianceRep(FactorOperations):
    """Base class of the covariance representations (see the module docstring)."""

    #: Position in the generality order ``Scale < Diagonal < PositiveDefinite``.
    generality: ClassVar[int] = 0

    @abstractmethod
    def size(self, n: int) -> int:
        """Return the storage length for ``n x n`` matrices.

        Parameters
        ----------
        n : int
            Matrix dimension.

        Returns
        -------
        int
            Length of the last storage axis.
        """

    def includes(self, other: CovarianceRep) -> bool:
        """Return whether every matrix of ``other`` is a matrix of this rep.

        Parameters
        ----------
        other : CovarianceRep
            Another representation.

        Returns
        -------
        bool
            True for ``PositiveDefinite ⊇ Diagonal ⊇ Scale``.
        """
        return self.generality >= other.generality

    @abstractmethod
    def pack(self, matrix: Any, /) -> Any:
        """Project dense symmetric matrices onto the rep and return their storage.

        Parameters
        ----------
        matrix : array, shape (..., n, n)
            Symmetric matrices.

        Returns
        -------
        array, shape (..., size(n))
            Storage.
        """

    @abstractmethod
    def unpack(self, packed: Any, n: int, /) -> Any:
        """Return the dense matrices stored in ``packed``.

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Storage.
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (..., n, n)
            Dense symmetric matrices.
        """

    @abstractmethod
    def outer_statistic(self, x: Any, /) -> Any:
        """Return ``pack_statistic(x xᵀ)`` without forming ``x xᵀ``.

        Parameters
        ----------
        x : array, shape (..., n)
            Vectors.

        Returns
        -------
        array, shape (..., size(n))
            The rep's second-moment statistic of ``x``.
        """

    @abstractmethod
    def matvec_all(self, packed: Any, vectors: Any, /) -> Any:
        """Multiply every stored matrix with every vector.

        Parameters
        ----------
        packed : array, shape (K, size(n))
            ``K`` matrices in plain storage.
        vectors : array, shape (N, n)
            ``N`` vectors.

        Returns
        -------
        array, shape (N, K, n)
            ``M_k @ v_i`` for every pair (one GEMM for ``PositiveDefinite``).
        """

    @abstractmethod
    def sandwich_statistic(
        self, packed: Any, weights: Any, vectors: Any, statistics: Any = None, /
    ) -> Any:
        """Weighted second-moment statistics of transformed vectors, one per matrix.

        Parameters
        ----------
        packed : array, shape (K, size(n))
            ``K`` symmetric matrices ``M_k`` in plain storage.
        weights : array, shape (N, K)
            Weights ``w_ik``.
        vectors : array, shape (N, n)
            Vectors ``v_i``.
        statistics : array, shape (N, size(n)), optional
            ``outer_statistic(vectors)``, where the caller has it already.

        Returns
        -------
        array, shape (K, size(n))
            ``Σ_i w_ik outer_statistic(M_k v_i) = stat(M_k (Σ_i w_ik v_i v_iᵀ) M_k)``, from
            one ``(K, N) x (N, size(n))`` GEMM with the vectors' own statistics.
        """

    @abstractmethod
    def congruence_statistic(self, left: Any, middle: Any, /) -> Any:
        """Return ``pack_statistic(left @ middle @ left.mT)``.

        ``Diagonal`` and ``Scale`` compute only the diagonal of the product.

        Parameters
        ----------
        left : array, shape (..., n, m)
            Outer factor.
        middle : array, shape (..., m, m)
            Symmetric inner matrix.

        Returns
        -------
        array, shape (..., size(n))
            Statistic storage of the congruence.
        """

    @abstractmethod
    def _statistic_weights(self, n: int) -> tuple[float, ...] | float: ...

    @abstractmethod
    def _quadratic_weights(self, n: int) -> tuple[float, ...] | float: ...

    def pack_statistic(self, matrix: Any, /) -> Any:
        """Store a second-moment matrix the way the sufficient statistic stores it.

        Parameters
        ----------
        matrix : array, shape (..., n, n)
            Symmetric matrices (e.g. ``E[x xᵀ]``).

        Returns
        -------
        array, shape (..., size(n))
            Statistic storage (``Scale``: the trace).
        """
        packed = self.pack(matrix)
        return _scaled(packed, self._statistic_weights(matrix.shape[-1]), divide=False)

    def statistic_to_packed(self, statistic: Any, n: int, /) -> Any:
        """Convert statistic storage to plain storage (inverse of the statistic weights).

        Parameters
        ----------
        statistic : array, shape (..., size(n))
            Statistic storage.
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (..., size(n))
            Plain storage of the same matrix.
        """
        return _scaled(statistic, self._statistic_weights(n), divide=True)

    def packed_to_statistic(self, packed: Any, n: int, /) -> Any:
        """Convert plain storage to statistic storage.

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Plain storage.
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (..., size(n))
            Statistic storage of the same matrix.
        """
        return _scaled(packed, self._statistic_weights(n), divide=False)

    def packed_to_quadratic(self, packed: Any, n: int, /) -> Any:
        """Convert plain storage of ``M`` to the coefficients of the form ``xᵀ M x``.

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Plain storage.
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (..., size(n))
            Coefficients pairing with :meth:`outer_statistic`.
        """
        return _scaled(packed, self._quadratic_weights(n), divide=False)

    def quadratic_to_packed(self, coefficients: Any, n: int, /) -> Any:
        """Inverse of :meth:`packed_to_quadratic`.

        Parameters
        ----------
        coefficients : array, shape (..., size(n))
            Quadratic-form coefficients.
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (..., size(n))
            Plain storage.
        """
        return _scaled(coefficients, self._quadratic_weights(n), divide=True)

    def convert(self, packed: Any, n: int, target: CovarianceRep, /) -> Any:
        """Re-store matrices in another rep.

        Into a more general rep this is an exact embedding; onto a less general one, the
        orthogonal (Frobenius) projection.

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Plain storage in this rep.
        n : int
            Matrix dimension.
        target : CovarianceRep
            The rep to store in.

        Returns
        -------
        array, shape (..., target.size(n))
            Plain storage in ``target``.
        """
        if target == self:
            return packed
        return target.pack(self.unpack(packed, n))

    def to_readable(self, packed: Any, n: int, /) -> Any:
        """Return the matrices in the rep's natural user-facing form.

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Plain storage.
        n : int
            Matrix dimension.

        Returns
        -------
        array
            ``(..., n, n)`` dense for ``PositiveDefinite``, the ``(..., n)`` diagonal for
            ``Diagonal``, the ``(...)`` scalar for ``Scale``.
        """
        return self._to_readable(packed, n)

    def from_readable(self, value: Any, n: int, name: str = "matrix", /) -> Any:
        """Inverse of :meth:`to_readable`, checking the shape.

        Parameters
        ----------
        value : array
            ``(..., n, n)``, ``(..., n)`` or ``(...)`` as :meth:`to_readable` returns.
        n : int
            Matrix dimension.
        name : str, optional
            What the value is, for the error message.

        Returns
        -------
        array, shape (..., size(n))
            Plain storage.
        """
        core = self.readable_shape(n)
        shape = tuple(getattr(value, "shape", ()))
        if len(shape) < len(core) or shape[len(shape) - len(core) :] != core:
            msg = (
                f"{name} for {type(self).__name__}() must have trailing shape {core} "
                f"(dense matrix, diagonal, or scalar by rep); got {shape}"
            )
            raise ValidationError(msg)
        return self._from_readable(value, n)

    @abstractmethod
    def readable_shape(self, n: int) -> tuple[int, ...]:
        """Trailing shape of :meth:`to_readable`'s output.

        Parameters
        ----------
        n : int
            Matrix dimension.

        Returns
        -------
        tuple of int
            ``(n, n)``, ``(n,)`` or ``()``.
        """

    @abstractmethod
    def _to_readable(self, packed: Any, n: int) -> Any: ...

    @abstractmethod
    def _from_readable(self, value: Any, n: int) -> Any: ...

    def identity(self, n: int, /, *, xp: ModuleType, dtype: Any, device: Any = None) -> Any:
        """Return the storage of the identity matrix.

        Parameters
        ----------
        n : int
            Matrix dimension.
        xp : module
            Namespace to create it in.
        dtype : dtype
            Floating dtype.
        device : object, optional
            Device.

        Returns
        -------
        array, shape (size(n),)
            Plain storage of ``I_n``.
        """
        return self.pack(xp.eye(n, dtype=dtype, device=device))

    @abstractmethod
    def diagonal(self, packed: Any, n: int, /) -> Any:
        """Return the diagonal in the rep's own form.

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Plain storage.
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (..., n) or (..., 1)
            The diagonal entries; ``Scale`` returns its single scalar.
        """

    @abstractmethod
    def add_diagonal(self, packed: Any, values: Any, n: int, /) -> Any:
        """Add ``values`` to the diagonal.

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Plain storage.
        values : array, shape like :meth:`diagonal`'s result
            Amounts to add (broadcast).
        n : int
            Matrix dimension.

        Returns
        -------
        array, shape (..., size(n))
            Plain storage of ``M + diag(values)``.
        """

    @abstractmethod
    def matvec(self, packed: Any, x: Any, /) -> Any:
        """Multiply the stored matrices with vectors.

        Parameters
        ----------
        packed : array, shape (..., size(n))
            Plain storage.
        x : array, shape (..., n)
            Vectors.

        Returns
        -------
        array, shape (..., n)
            ``M @ x``.
        """


def _scaled(values: Any, weights: tuple[float, ...] | float, *, divide: bool) -> Any:
    """``values`` times (or divided by) per-position storage weights; unit weights: itself.

    ``PositiveDefinite`` statistics and ``Diagonal`` storage have weight one everywhere, and a
    multiplication by one is still an operation (and a new array) on every backend.
    """
    if isinstance(weights, tuple):
        factor = _constant(weights, values, B.array_namespace(values))
    elif weights == 1.0:
        return values
    else:
        factor = weights
    return values / factor if divide else values * factor
