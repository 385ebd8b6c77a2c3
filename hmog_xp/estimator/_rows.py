"""The rows a restart's starting point is computed from: the same for in-memory and Dask data.

A starting point needs a few passes over its data (PPCA, k-means++ and Lloyd), so it is
computed from at most :data:`INIT_ROWS` rows, chosen from the seed alone. In-memory and Dask
fits of the same data with the same seed therefore start, and end, at the same parameters.
"""

from __future__ import annotations

import random
from typing import Any

from hmog_xp import _backend as B

__all__ = ["INIT_ROWS", "init_rows", "init_sample"]

#: Most rows a starting point is computed from (brought to the client for a Dask array).
INIT_ROWS = 20_000


def init_rows(n_obs: int, seed: int) -> list[int]:
    """Return the sorted rows a restart with this seed initialises on.

    Parameters
    ----------
    n_obs : int
        Number of observations ``N``.
    seed : int
        Seed of the restart.

    Returns
    -------
    list of int
        All rows ``0 .. N-1`` when ``N <= INIT_ROWS``, else ``INIT_ROWS`` distinct rows
        drawn uniformly from the seed (host-side, so every backend and container agree),
        in increasing order.
    """
    if n_obs <= INIT_ROWS:
        return list(range(n_obs))
    return sorted(random.Random(seed).sample(range(n_obs), INIT_ROWS))


def init_sample(xs: Any, seed: int) -> Any:
    """Return the rows of an in-memory array a restart with this seed initialises on.

    Parameters
    ----------
    xs : array, shape (N, p)
        Data.
    seed : int
        Seed of the restart.

    Returns
    -------
    array, shape (min(N, INIT_ROWS), p)
        ``xs`` itself when ``N <= INIT_ROWS``, else its rows :func:`init_rows` (a copy).
    """
    n_obs = int(xs.shape[0])
    if n_obs <= INIT_ROWS:
        return xs
    xp = B.array_namespace(xs)
    rows = xp.asarray(init_rows(n_obs, seed), dtype=xp.int64, device=B.device_of(xs))
    return xp.take(xs, rows, axis=0)
