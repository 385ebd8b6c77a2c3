"""Sums over row chunks with bounded memory, and repeated steps, per backend.

``sum_over_chunks(fn, xs, chunk_size)`` evaluates ``fn(chunk, weights)`` on consecutive row
blocks of ``xs`` and adds the results: a Python loop of slices on eager backends, one
``lax.scan`` over a padded ``(n_chunks, chunk, p)`` view on JAX (padded rows get weight 0), so
a jitted caller compiles once and never materialises per-observation arrays for all ``N``.
``fn`` must weight every per-row contribution by ``weights``. ``map_rows(fn, arrays,
chunk_size)`` applies a row-wise ``fn`` block by block and stacks the results (``lax.map``
over padded blocks on JAX), and ``repeat`` runs a fixed number of steps (``lax.fori_loop``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hmog_xp._backend._arrays import device_of
from hmog_xp._backend._registry import array_namespace, backend_name_of

Sums = tuple[Any, ...]


def sum_over_chunks(
    fn: Callable[[Any, Any], Sums], xs: Any, chunk_size: int, *, xp: ModuleType
) -> Sums:
    """Return ``Σ_chunks fn(chunk, weights)`` over row blocks of at most ``chunk_size`` rows.

    Parameters
    ----------
    fn : callable
        ``fn(chunk (m, p), weights (m,)) -> tuple of arrays``; contributions of a row must be
        multiplied by its weight (1 for real rows, 0 for padding).
    xs : array, shape (N, p)
        Observations.
    chunk_size : int
        Rows per block (``>= 1``).
    xp : module
        Namespace of ``xs``.

    Returns
    -------
    tuple of arrays
        Element-wise sums of ``fn``'s outputs.
    """
    n_obs = xs.shape[0]
    size = max(1, min(int(chunk_size), n_obs))
    if backend_name_of(xp) == "jax":
        return _scan_chunks(fn, xs, size)
    total: Sums | None = None
    for start in range(0, n_obs, size):
        chunk = xs[start : min(start + size, n_obs), ...]
        weights = xp.ones((chunk.shape[0],), dtype=xs.dtype, device=device_of(xs))
        part = fn(chunk, weights)
        total = part if total is None else tuple(a + b for a, b in zip(total, part, strict=True))
    if total is None:
        msg = "sum_over_chunks needs at least one row"
        raise ValueError(msg)
    return total


def _scan_chunks(fn: Callable[[Any, Any], Sums], xs: Any, size: int) -> Sums:
    import jax
    import jax.numpy as jnp

    n_obs, n_cols = xs.shape
    n_chunks, size = balanced_blocks(n_obs, size)
    padding = n_chunks * size - n_obs
    padded = jnp.concatenate([xs, jnp.zeros((padding, n_cols), dtype=xs.dtype)])
    weights = jnp.concatenate(
        [jnp.ones((n_obs,), dtype=xs.dtype), jnp.zeros((padding,), dtype=xs.dtype)]
    )
    blocks = padded.reshape(n_chunks, size, n_cols)
    block_weights = weights.reshape(n_chunks, size)
    if n_chunks == 1:
        return fn(blocks[0], block_weights[0])
    shapes = jax.eval_shape(fn, blocks[0], block_weights[0])
    start = tuple(jnp.zeros(s.shape, s.dtype) for s in shapes)

    def body(carry: Sums, block: tuple[Any, Any]) -> tuple[Sums, None]:
        part = fn(*block)
        return tuple(a + b for a, b in zip(carry, part, strict=True)), None

    total, _ = jax.lax.scan(body, start, (blocks, block_weights))
    return tuple(total)


def map_rows(fn: Callable[..., Any], arrays: tuple[Any, ...], chunk_size: int) -> Any:
    """Return ``fn(*blocks)`` for consecutive row blocks of ``arrays``, concatenated by row.

    Eager backends loop over slices; JAX runs one ``lax.map`` over zero-padded blocks
    (the padded rows' results are dropped), so a compiled caller traces ``fn`` once
    whatever the number of rows.

    Parameters
    ----------
    fn : callable
        ``fn(*blocks) -> array of shape (m, ...)``, one result row per input row; it must
        give finite results for rows of zeros (the padding).
    arrays : tuple of arrays
        Arrays with the same number ``N >= 1`` of rows (axis 0).
    chunk_size : int
        Rows per block (``>= 1``).

    Returns
    -------
    array, shape (N, ...)
        The results of every row, in order.
    """
    n_obs = arrays[0].shape[0]
    size = max(1, min(int(chunk_size), n_obs))
    if n_obs <= size:
        return fn(*arrays)
    if _is_jax(arrays[0]):
        return _map_blocks(fn, arrays, size)
    parts = [
        fn(*(a[start : min(start + size, n_obs), ...] for a in arrays))
        for start in range(0, n_obs, size)
    ]
    return array_namespace(parts[0]).concat(parts, axis=0)


def _map_blocks(fn: Callable[..., Any], arrays: tuple[Any, ...], size: int) -> Any:
    import jax
    import jax.numpy as jnp

    n_obs = arrays[0].shape[0]
    n_chunks, size = balanced_blocks(n_obs, size)
    padding = n_chunks * size - n_obs

    def blocks(a: Any) -> Any:
        padded = jnp.concatenate([a, jnp.zeros((padding, *a.shape[1:]), dtype=a.dtype)])
        return padded.reshape(n_chunks, size, *a.shape[1:])

    mapped = jax.lax.map(lambda block: fn(*block), tuple(blocks(a) for a in arrays))
    return mapped.reshape(n_chunks * size, *mapped.shape[2:])[:n_obs]


def balanced_blocks(n_obs: int, size: int) -> tuple[int, int]:
    """The fewest blocks of at most ``size`` rows, and the smallest size that holds them.

    JAX's blocks are equal in size, the last padded with rows of weight 0: 20,000 rows in
    blocks of at most 14,122 are two blocks of 10,000 (no padding), not two of 14,122 (8,244
    padding rows, 41 % more work).

    Parameters
    ----------
    n_obs : int
        Number of rows (``>= 1``).
    size : int
        Most rows per block (``>= 1``).

    Returns
    -------
    n_blocks : int
        ``ceil(n_obs / size)``.
    block_size : int
        ``ceil(n_obs / n_blocks) <= size``; fewer than ``n_blocks`` padding rows.
    """
    n_blocks = math.ceil(n_obs / size)
    return n_blocks, math.ceil(n_obs / n_blocks)


def _is_jax(array: Any) -> bool:
    return type(array).__module__.startswith(("jax", "jaxlib"))


def repeat(step: Callable[[Any], Any], n_steps: int, start: Any) -> Any:
    """Apply ``step`` ``n_steps`` times: ``lax.fori_loop`` on JAX, a loop elsewhere.

    Parameters
    ----------
    step : callable
        ``step(params) -> params``.
    n_steps : int
        Number of applications.
    start : array or tuple of arrays
        Initial value (a tuple is carried as is: ``step`` maps it to a tuple of the same
        shapes and dtypes).

    Returns
    -------
    array or tuple of arrays
        ``step`` applied ``n_steps`` times to ``start``.
    """
    if _is_jax(start[0] if isinstance(start, tuple) else start):
        import jax

        return jax.lax.fori_loop(0, n_steps, lambda _, value: step(value), start)
    value = start
    for _ in range(n_steps):
        value = step(value)
    return value
