"""Thread limits for small computations: one intra-op thread when more cannot pay.

A small fit (hundreds of rows, a few features) runs hundreds of tiny array operations per EM
step. Each one that a thread pool parallelises pays for waking and joining its threads, and
on a machine whose cores are busy the waiting threads spin against other work: a wine fit
(178 × 13, ``K = 3``, ``d = 2``) on PyTorch took 7.0 s with its default two threads and
1.1 s with one. :func:`compute_threads` runs such work single-threaded and leaves larger
work to the user's setting.

What it limits, by backend:

* PyTorch: the intra-op thread count (``torch.set_num_threads``; the inter-op pool is
  untouched), and NumPy's BLAS (which the estimator's host-side steps use).
* NumPy and array-api-strict: the BLAS thread pools, through ``threadpoolctl``.
* JAX: nothing. XLA sizes its CPU thread pool once, when the backend starts, and offers no
  run-time control; set ``XLA_FLAGS`` before importing JAX to change it.
* CuPy and anything else: nothing (the work runs on the GPU, or in a library we do not know).

The settings are process-wide: limits taken in one Python thread hold for the others until
the context exits.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from types import ModuleType
from typing import Any

from threadpoolctl import threadpool_limits

from hmog_xp._backend._registry import BACKEND_NAMES, backend_name_of
from hmog_xp._errors import BackendError

__all__ = ["SMALL_WORK", "compute_threads", "step_work"]

#: Work (see :func:`step_work`) below which :func:`compute_threads` runs one thread. On the
#: 2-core development machine, shared with other jobs, one thread was faster at every size
#: measured (up to 6e8, the 200 000 × 100, K 20, d 10 case); 1e7 is a step of about 20 ms on
#: one core, below which per-operation overhead dominates on any machine.
SMALL_WORK = 10_000_000

#: Backends whose intra-op threads this module controls.
_LIMITED = ("numpy", "array_api_strict", "torch")


def step_work(X: Any, n_components: int, n_factors: int) -> float:
    """Return the work of one EM step on ``X``: ``N · (p · d + K · d²)``.

    The two data products (``N · p · d`` each) and the per-component posterior moments
    (``N · K · d²``) are what a step computes (constant factors dropped).

    Parameters
    ----------
    X : array or array-like, shape (n_samples, n_features)
        The data (an array of any library, a frame, or a list of rows).
    n_components : int
        ``K``.
    n_factors : int
        ``d``.

    Returns
    -------
    float
        The work; ``inf`` when the shape is unknown (a Dask array with unknown chunks) or
        not two-dimensional (left to the caller's validation).
    """
    shape = getattr(X, "shape", None)
    if shape is None:  # a list of rows
        try:
            shape = (len(X), len(X[0]) if len(X) else 0)
        except (TypeError, IndexError, KeyError):
            return math.inf  # not a table: the caller's validation will say so
    if len(shape) != 2 or any(size is None or math.isnan(size) for size in shape):
        return math.inf
    n_samples, n_features = (float(size) for size in shape)
    return n_samples * (n_features * n_factors + n_components * n_factors**2)


def _name(xp: ModuleType | str | None) -> str | None:
    if isinstance(xp, str) and xp not in BACKEND_NAMES:
        msg = f"unknown backend {xp!r}; expected one of {list(BACKEND_NAMES)} or None"
        raise BackendError(msg)
    if xp is None or isinstance(xp, str):
        return xp
    try:
        return backend_name_of(xp)
    except BackendError:  # e.g. Dask's namespace: its scheduler decides
        return None


@contextmanager
def compute_threads(
    xp: ModuleType | str | None, work: float, *, threshold: float = SMALL_WORK
) -> Iterator[None]:
    """Run the block with one intra-op thread when its work is below ``threshold``.

    Only lowers thread counts, never raises them (a user's ``torch.set_num_threads(1)`` or
    ``threadpool_limits(1)`` stays), and restores every setting it changed on exit, also
    when the block raises. Large work, ``xp=None`` and backends other than NumPy,
    array-api-strict and PyTorch run with the settings unchanged (see the module notes:
    JAX's threads cannot be changed at run time).

    Parameters
    ----------
    xp : module, str or None
        The namespace (or backend name) the block computes with; None changes nothing.
    work : float
        The block's work per step, e.g. from :func:`step_work`.
    threshold : float, default=SMALL_WORK
        Work from which the user's settings are kept (0 keeps them always).

    Yields
    ------
    None
        Control, with the limits in place.

    Raises
    ------
    BackendError
        For a backend name hmog_xp does not know.
    ValueError
        For a negative or NaN ``work``.

    Examples
    --------
    >>> import numpy as np
    >>> from hmog_xp._backend.threads import compute_threads, step_work
    >>> X = np.zeros((178, 13))
    >>> with compute_threads(np, step_work(X, 3, 2)):
    ...     pass  # NumPy's BLAS runs one thread here
    """
    if not work >= 0:  # also NaN
        msg = f"work must be a non-negative number; got {work!r}"
        raise ValueError(msg)
    name = _name(xp)
    if name not in _LIMITED or not work < threshold:
        yield
        return
    with ExitStack() as stack:
        if name == "torch" and "torch" in sys.modules:
            torch = sys.modules["torch"]
            previous = int(torch.get_num_threads())
            if previous > 1:
                torch.set_num_threads(1)
                stack.callback(torch.set_num_threads, previous)
        stack.enter_context(threadpool_limits(limits=1, user_api="blas"))
        yield
