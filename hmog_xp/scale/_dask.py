"""EM on Dask arrays (``dask.array``), without gathering the data.

The E-step is a sum over observations, so it splits exactly over the row chunks of a Dask
array. Per EM iteration every chunk (a NumPy or CuPy array, on a worker) is reduced by the
same backend-neutral kernel as the in-memory :func:`hmog_xp.fit_em`
(the model's :meth:`~hmog_xp.harmoniums.closed_form.ChunkedEStep.estep_sums`) to one small row
of numbers (``O(K d² + p d)`` for an HMoG), the
rows are added by Dask's tree reduction, and the M-step runs on the client. ``mean s_x(x)``
is computed once per fit, in a first pass that also locates chunks holding non-finite
values. A Dask array with unknown chunk sizes (from boolean indexing, or ``from_delayed``
without a shape) is handled: :func:`fit_em_dask` computes the sizes first (one extra pass
over the data), the lazy predictions keep them unknown (no pass at all). Dask is imported
only when these functions are called.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._backend import _dask_support as S
from hmog_xp._backend.chunks import sum_over_chunks
from hmog_xp._errors import ValidationError
from hmog_xp._validation import validation
from hmog_xp.em import (
    EMFit,
    as_regularization,
    check_acceleration,
    check_em_model,
    default_chunk_size,
    iterate_em,
    m_step,
    observable_statistics,
)

__all__ = [
    "check_dask_sample",
    "chunk_bounds",
    "fit_em_dask",
    "non_finite_chunks_error",
    "with_known_chunks",
]


def _dask_array() -> Any:
    try:
        import dask.array as da
    except ImportError as exc:  # pragma: no cover - exercised only without dask
        msg = "Dask support needs dask: python -m pip install 'hmog_xp[dask]'"
        raise ImportError(msg) from exc
    return da


def check_dask_sample(model: Any, xs: Any) -> None:
    """Check that ``xs`` is a Dask array of observations chunked along rows only.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model (gives the number of columns ``p``).
    xs : dask.array.Array, shape (N, p)
        Observations.

    Raises
    ------
    ValidationError
        If ``xs`` is not a 2-D floating Dask array with ``p`` columns, has no rows, or is
        split along columns. Unknown row chunk sizes are accepted (see
        :func:`with_known_chunks`).
    """
    da = _dask_array()
    if not isinstance(xs, da.Array):
        msg = f"xs must be a dask.array.Array; got {type(xs).__name__}"
        raise ValidationError(msg)
    p = model.data_dim
    if xs.ndim != 2 or xs.shape[1] != p:
        msg = f"xs must have shape (N, {p}); got {tuple(xs.shape)}"
        raise ValidationError(msg)
    if xs.shape[0] == 0:
        msg = "xs must have at least one row"
        raise ValidationError(msg)
    if len(xs.chunks[1]) != 1:
        msg = (
            f"xs is chunked along columns (column chunks {xs.chunks[1]}); every chunk must "
            f"hold whole rows: rechunk with xs = xs.rechunk({{1: -1}})"
        )
        raise ValidationError(msg)
    if getattr(xs.dtype, "kind", "f") != "f":
        msg = f"xs must have a real floating dtype; got {xs.dtype}"
        raise ValidationError(msg)


def with_known_chunks(xs: Any) -> Any:
    """Return ``xs`` with its row chunk sizes known, computing them if they are not.

    Boolean indexing (``xs[xs[:, 0] > 0]``) or ``da.from_delayed`` without a shape leave
    the row counts of the chunks unknown (NaN). Computing them costs one pass over the
    data; an array whose sizes are known is returned as it is, at no cost. ``xs`` itself is
    not modified (``dask.array.Array.compute_chunk_sizes`` would modify it in place).

    Parameters
    ----------
    xs : dask.array.Array, shape (N, p)
        Observations chunked along rows.

    Returns
    -------
    dask.array.Array, shape (N, p)
        The same lazy array, with known chunk sizes.
    """
    if not any(math.isnan(size) for sizes in xs.chunks for size in sizes):
        return xs
    da = _dask_array()
    fresh = da.Array(xs.dask, xs.name, xs.chunks, meta=xs._meta)
    return fresh.compute_chunk_sizes()


@contextmanager
def _scheduler(scheduler: Any) -> Iterator[Any]:
    """Yield what ``dask.compute(scheduler=...)`` takes; connect to an address if given one."""
    if isinstance(scheduler, str) and "://" in scheduler:
        from distributed import Client

        client = Client(scheduler)
        try:
            yield client
        finally:
            client.close()
    else:
        yield scheduler


def _compute(scheduler: Any, *collections: Any) -> tuple[Any, ...]:
    import dask

    return tuple(dask.compute(*collections, scheduler=scheduler))


def _rows(xs: Any, fn: Callable[..., Any], width: int, *args: Any) -> Any:
    """One host ``float64`` row of ``width`` numbers per row chunk of ``xs``."""
    return xs.map_blocks(
        fn,
        *args,
        chunks=((1,) * xs.numblocks[0], (width,)),
        dtype="float64",
        meta=S.host_meta(2),
    )


# -- worker-side functions (module level so that they pickle by reference) ---------------------


def _block_observable(block: Any, model: Any, chunk_size: int) -> Any:
    """``[number of rows the E-step cannot use, Σ s_x(x)]`` of one chunk."""
    xp = B.array_namespace(block)
    n_rows = block.shape[0]
    invalid = model.estep_invalid_rows(block)
    n_bad = 0
    if bool(S.to_host(xp.any(invalid))):
        n_bad = int(S.to_host(xp.sum(xp.astype(invalid, xp.int64))))
    if n_bad or n_rows == 0:
        row = S.host_zeros((1, 1 + model.obs_man.dim))
        row[0, 0] = n_bad
        return row
    total = observable_statistics(model, block, chunk_size) * n_rows
    return S.pack_row((S.host_zeros((1,)), total))


def _block_sums(block: Any, model: Any, params: Any, chunk_size: int, width: int) -> Any:
    """The E-step sums of one chunk, flattened into one host row."""
    if block.shape[0] == 0:
        return S.host_zeros((1, width))
    xp = B.array_namespace(block)
    local = S.like_chunk(params, block)
    sums = sum_over_chunks(model.estep_sums(local), block, chunk_size, xp=xp)
    return S.pack_row(sums)


# -- client side ---------------------------------------------------------------------------------


def _observable_statistics(
    model: Any, xs: Any, chunk_size: int, scheduler: Any, reference: Any
) -> Any:
    rows = _rows(xs, _block_observable, 1 + model.obs_man.dim, model, chunk_size)
    bad, total = _compute(scheduler, rows[:, 0], rows[:, 1:].sum(axis=0))
    flagged = [index for index, count in enumerate(bad) if count > 0]
    if flagged:
        raise non_finite_chunks_error(xs, flagged, model.invalid_rows_description)
    return S.from_host(total, reference) / xs.shape[0]


def chunk_bounds(xs: Any) -> list[int]:
    """Return the first row of every row chunk of ``xs``, then ``N``.

    Parameters
    ----------
    xs : dask.array.Array, shape (N, p)
        Observations chunked along rows.

    Returns
    -------
    list of int
        ``[0, n_0, n_0 + n_1, ..., N]``.
    """
    bounds = [0]
    for size in xs.chunks[0]:
        bounds.append(bounds[-1] + int(size))
    return bounds


def non_finite_chunks_error(
    xs: Any, flagged: list[int], what: str = "non-finite values (NaN or inf)"
) -> ValidationError:
    """Build the error naming the first of the chunks that hold NaN or infinite values.

    Parameters
    ----------
    xs : dask.array.Array, shape (N, p)
        Observations chunked along rows.
    flagged : list of int
        Indices of the chunks with non-finite values (at least one).
    what : str, optional
        What those chunks hold, for the message.

    Returns
    -------
    ValidationError
        The error to raise.
    """
    bounds = chunk_bounds(xs)
    first = flagged[0]
    others = f" (and {len(flagged) - 1} more chunks)" if len(flagged) > 1 else ""
    msg = (
        f"chunk {first} (rows {bounds[first]}-{bounds[first + 1] - 1}) contains "
        f"{what}{others}; clean or drop those rows first"
    )
    return ValidationError(msg)


def _layout(model: Any, params: Any) -> list[tuple[int, ...]]:
    """Shapes of the per-chunk E-step sums (from one zero-weight row on the client)."""
    xp = B.array_namespace(params)
    device = B.device_of(params)
    row = xp.zeros((1, model.data_dim), dtype=params.dtype, device=device)
    weight = xp.zeros((1,), dtype=params.dtype, device=device)
    return [tuple(part.shape) for part in model.estep_sums(params)(row, weight)]


def _unpack(vector: Any, layout: list[tuple[int, ...]], reference: Any) -> tuple[Any, ...]:
    xp = B.array_namespace(reference)
    values = S.from_host(vector, reference)
    parts, start = [], 0
    for shape in layout:
        size = math.prod(shape)
        parts.append(xp.reshape(values[start : start + size], shape))
        start += size
    return tuple(parts)


def _expectation(
    model: Any,
    params: Any,
    xs: Any,
    obs_statistics: Any,
    layout: list[tuple[int, ...]],
    chunk_size: int,
    scheduler: Any,
) -> tuple[Any, Any]:
    width = sum(math.prod(shape) for shape in layout)
    rows = _rows(xs, _block_sums, width, model, S.to_host(params), chunk_size, width)
    (total,) = _compute(scheduler, rows.sum(axis=0))
    sums = _unpack(total, layout, params)
    return model.estep_assemble(params, obs_statistics, sums, xs.shape[0])


def fit_em_dask(
    model: Any,
    params: Any,
    xs: Any,
    *,
    max_iter: int = 100,
    tol: float = 1e-8,
    chunk_size: int | None = None,
    scheduler: Any = None,
    regularization: Any = None,
    callback: Callable[[int, float], object] | None = None,
    accelerate: bool | str = False,
) -> EMFit:
    """Run EM on a Dask array: chunk sums on the workers, the M-step on the client.

    Same iterations, stopping rule and result as :func:`hmog_xp.fit_em` on the same data;
    the data are never gathered. Keep ``xs`` in the cluster's memory across iterations with
    ``xs = xs.persist()`` when it fits there (otherwise chunks are recomputed or reloaded
    every iteration).

    Parameters
    ----------
    model : ClosedFormEM
        Any model with closed-form EM (factor analysis or PPCA, a complete Gaussian
        mixture, an ``AnalyticHMoG``, a ``SymmetricHMoG`` with a complete upper mixture).
    params : array, shape (dim,)
        Starting natural parameters (any backend; the result is in the same namespace).
    xs : dask.array.Array, shape (N, p)
        Observations chunked along rows only (chunks may be NumPy or CuPy arrays). Unknown
        chunk sizes are computed first (:func:`with_known_chunks`: one pass over the data).
    max_iter : int, optional
        Maximum number of EM steps.
    tol : float, optional
        Stop when ``|ℓ_t − ℓ_{t−1}| <= tol · |ℓ_t|`` (average log-likelihood ``ℓ``).
    chunk_size : int, optional
        Rows per inner block on a worker (default: :func:`default_chunk_size` of the largest
        Dask chunk), bounding each task's working memory.
    scheduler : optional
        Passed to ``dask.compute``: ``None`` (the active ``distributed.Client`` if any, else
        Dask's default), ``"threads"``, ``"synchronous"``, a ``distributed.Client``, or a
        scheduler address such as ``"tcp://host:8786"`` (connected for this fit only).
    regularization : Regularization, optional
        Stabilisers of the M-step (as in :func:`hmog_xp.fit_em`; default: exact EM).
    callback : callable, optional
        Called as ``callback(iteration, log_likelihood)`` after each step.
    accelerate : bool or {'squarem', 'squarem-natural'}, optional
        SQUAREM, as in :func:`hmog_xp.fit_em` (one pass over the data per EM step either
        way; default: plain EM).

    Returns
    -------
    EMFit
        Final parameters, log-likelihood history, iterations and convergence flag.
    """
    check_em_model(model).check_estep_inputs(params)
    check_acceleration(accelerate)
    check_dask_sample(model, xs)
    xs = with_known_chunks(xs)
    check_dask_sample(model, xs)  # no rows at all, now that the sizes are known
    largest = max(int(size) for size in xs.chunks[0])
    size = default_chunk_size(model, largest) if chunk_size is None else int(chunk_size)
    if size < 1:
        msg = f"chunk_size must be >= 1; got {chunk_size}"
        raise ValidationError(msg)
    regularization = as_regularization(regularization)
    with _scheduler(scheduler) as active:
        obs_statistics = _observable_statistics(model, xs, size, active, params)
        layout = _layout(model, params)

        def expectation(theta: Any) -> tuple[Any, Any]:
            return _expectation(model, theta, xs, obs_statistics, layout, size, active)

        with validation(False):
            return iterate_em(
                expectation,
                lambda means: m_step(model, means, regularization),
                params,
                max_iter=max_iter,
                tol=tol,
                callback=callback,
                eps=float(B.array_namespace(params).finfo(params.dtype).eps),
                accelerate=accelerate,
            )
