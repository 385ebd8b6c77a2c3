"""Products whose fastest memory layout depends on the backend.

The E-step's per-row work on ``(N, d)`` blocks is a few element-wise products and GEMMs;
which layout runs them fastest differs between libraries (measured with one thread on
``(3847, 10)`` float64 blocks of ``benchmarks/bench_em.py``'s case L). The results are the
same on every backend; only the way there differs.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from hmog_xp._backend._registry import backend_name_of

__all__ = ["column_products"]


def column_products(x: Any, first: Any, second: Any, /, *, xp: ModuleType) -> Any:
    """Multiply pairs of columns: ``x[..., first] * x[..., second]``.

    PyTorch gathers whole rows much faster than columns (0.37 ms against 0.84 ms for the 55
    pairs of 10 columns of a 3847-row block): a 2-D ``x`` is gathered from its transposed
    copy, and the result is that product's transposed view (GEMMs take it as it is).

    Parameters
    ----------
    x : array, shape (..., n)
        Rows of values.
    first, second : array of int, shape (m,)
        Column indices, paired.
    xp : module
        Namespace of the inputs.

    Returns
    -------
    array, shape (..., m)
        ``x[..., first[j]] * x[..., second[j]]`` in column ``j``.
    """
    if x.ndim == 2 and backend_name_of(xp) == "torch":
        rows = x.mT.contiguous()
        return (rows.index_select(0, first) * rows.index_select(0, second)).mT
    return xp.take(x, first, axis=-1) * xp.take(x, second, axis=-1)
