"""The estimator beyond one in-memory array: Dask arrays and streaming ``partial_fit``.

``fit`` on a ``dask.array`` runs :func:`hmog_xp.scale.fit_em_dask` (per-chunk sums on the
workers, the M-step on the client), after initialising on the rows
:func:`~hmog_xp.estimator._rows.init_rows` chooses (at most :data:`INIT_ROWS`, brought to the
client): the rows an in-memory fit of the same data and seed starts from, so both give the
same fit. A Dask array with unknown chunk sizes (after boolean indexing, say) has them
computed first, at the cost of one pass over the data. Inference methods given a Dask array
return lazy Dask arrays (with the input's row chunks, known or not). ``partial_fit`` runs
online EM (:func:`hmog_xp.scale.online_em_update`) with the step sizes
``γ_t = (t + learning_offset)^(−learning_decay)``.
"""

from __future__ import annotations

import bisect
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from array_api_compat import is_dask_array
from sklearn.utils import check_random_state

from hmog_xp import _backend as B
from hmog_xp._backend.transfer import backend_of_array, transfer
from hmog_xp.estimator._inputs import check_fit_data
from hmog_xp.estimator._missing import (
    average_log_density_shift,
    check_observed_columns,
    has_missing_entries,
    mean_filled,
)
from hmog_xp.estimator._params import check_hyperparameters, model_for
from hmog_xp.estimator._rows import INIT_ROWS, init_rows
from hmog_xp.estimator._training import (
    RunResult,
    em_regularization,
    initial_params,
    standardization_for,
)
from hmog_xp.hmog import MarginalizedHMoG, Standardization

if TYPE_CHECKING:
    from hmog_xp.estimator._estimator import HMoG
    from hmog_xp.hmog import HierarchicalMixtureOfGaussians

__all__ = [
    "INIT_ROWS",
    "is_dask_array",
    "known_chunks",
    "lazy_impute",
    "lazy_method",
    "n_rows",
    "partial_fit",
    "prepare_dask",
]

#: ``run(seed, callback)``: one initialisation and training run.
Runner = Callable[[int, Callable[[int, float], object] | None], RunResult]


def known_chunks(X: Any) -> Any:
    """Return a Dask array with its chunk sizes known (computed, one pass, when unknown).

    Parameters
    ----------
    X : dask.array.Array
        A Dask array (e.g. after boolean indexing, whose chunk sizes are unknown).

    Returns
    -------
    dask.array.Array
        ``X`` when its chunk sizes are known, else a copy whose sizes are (``X`` itself is
        not modified).
    """
    from hmog_xp.scale._dask import with_known_chunks

    return with_known_chunks(X)


def n_rows(X: Any) -> int:
    """Return the number of rows of data given to an inference method.

    Parameters
    ----------
    X : array-like or dask.array.Array, shape (n_samples, n_features)
        Data (a Dask array's unknown chunk sizes are computed: one pass).

    Returns
    -------
    int
        ``n_samples``.
    """
    if is_dask_array(X):
        X = known_chunks(X)
    return len(X) if not hasattr(X, "shape") else int(X.shape[0])


def _require_analytic(estimator: HMoG, what: str) -> None:
    if estimator.variant != "analytic":
        msg = f"{what} needs variant='analytic' (closed-form EM); got {estimator.variant!r}"
        raise ValueError(msg)


def prepare_dask(
    estimator: HMoG, X: Any, hyper: HMoG | None = None
) -> tuple[HierarchicalMixtureOfGaussians, Runner, ModuleType, Standardization, float]:
    """Check a Dask array for fitting and return the model and a per-restart runner.

    Parameters
    ----------
    estimator : HMoG
        The estimator (``n_features_in_`` is recorded on it).
    X : dask.array.Array, shape (n_samples, n_features)
        Data chunked along rows (unknown chunk sizes are computed: one pass).
    hyper : HMoG, optional
        The hyper-parameters as :func:`check_hyperparameters` returns them (default: checked
        here).

    Returns
    -------
    model : AnalyticHMoG
        The model.
    run : callable
        ``run(seed, callback)``: initialise on a sample of rows, then ``fit_em_dask``.
    xp : module
        The chunks' namespace (where the parameters live).
    standardization : Standardization
        Column moments of ``X`` (one pass over the data); the fit runs on the standardised,
        still lazy, array.
    shift : float
        The average log-Jacobian from the standardised coordinates back to ``X``'s
        (over each row's observed columns).
    """
    from hmog_xp.scale import check_dask_sample, fit_em_dask

    hyper = check_hyperparameters(estimator) if hyper is None else hyper
    _require_analytic(hyper, "fitting a Dask array")
    if X.ndim != 2:
        msg = f"Expected 2D array, got {X.ndim}D array instead"
        raise ValueError(msg)
    X = known_chunks(X)
    n_obs, n_features = (int(size) for size in X.shape)
    model = model_for(hyper, n_obs, n_features, "analytic")
    check_dask_sample(model, X)
    xp = B.namespace_for(backend_of_array(X._meta) or "numpy")
    if hyper.backend is not None and B.backend_name_of(xp) != hyper.backend:
        msg = (
            f"a Dask array is fitted in its chunks' backend ({B.backend_name_of(xp)}); "
            f"backend={hyper.backend!r} differs: convert the chunks with map_blocks"
        )
        raise ValueError(msg)
    estimator.n_features_in_ = n_features
    marginalize = hyper.missing == "marginalize"
    standardization, observed = dask_standardization(estimator, X, marginalize)
    standardized = standardization.standardize(X)
    missing = bool(B.array_namespace(observed).any(observed < 1.0))
    # Mean over rows of the observed columns' log-Jacobian: Σ_j (fraction observed) log D_j.
    shift = -float(observed @ B.array_namespace(observed).log(standardization.scale))
    em_model = MarginalizedHMoG(model) if missing else model

    def run(seed: int, callback: Callable[[int, float], object] | None) -> RunResult:
        rows = init_rows(n_obs, seed)
        subset = (X[rows] if len(rows) < n_obs else X).compute()
        _name_non_finite_chunk(X, subset, rows, marginalize)
        start = standardization.standardize(subset)
        if missing:
            start = mean_filled(start)
        fit = fit_em_dask(
            em_model,
            initial_params(hyper, model, start, seed, standardization),
            standardized,
            max_iter=hyper.max_iter,
            tol=hyper.tol,
            regularization=em_regularization(hyper, subset.dtype, xp),
            callback=callback,
            accelerate=hyper.accelerate,
        )
        return RunResult(fit.params, fit.log_likelihoods, fit.n_iter, fit.converged)

    return model, run, xp, standardization, shift


def dask_standardization(
    estimator: HMoG, X: Any, marginalize: bool = False
) -> tuple[Standardization, Any]:
    """The estimator's standardisation from a Dask array's column moments (two passes).

    Parameters
    ----------
    estimator : HMoG
        The estimator (``noise``: isotropic noise gets one common scale).
    X : dask.array.Array, shape (n_samples, n_features)
        Data chunked along rows.
    marginalize : bool, optional
        Whether NaN entries are missing values (the moments of the observed entries).

    Returns
    -------
    standardization : Standardization
        Column means and standard deviations, in the chunks' namespace.
    observed : array, shape (n_features,)
        The fraction of every column's entries that are observed (all ones without
        ``marginalize``).

    Raises
    ------
    ValidationError
        Naming the chunks that hold infinite values (or NaN, unless ``marginalize``).
    ValueError
        With ``marginalize``, naming a column with no observed entry.
    """
    import dask
    import dask.array as da

    common = estimator.noise == "isotropic"
    if marginalize:
        observed = da.logical_not(da.isnan(X)).sum(axis=0)
        moments = (da.nanmean(X, axis=0), da.nanmin(X, axis=0), da.nanmax(X, axis=0), observed)
        mean, low, high, counts = dask.compute(*moments)
    else:
        mean, low, high = dask.compute(X.mean(axis=0), X.min(axis=0), X.max(axis=0))
    xp = B.array_namespace(mean)
    if marginalize and bool(xp.any(counts == 0)):
        column = int(xp.argmax(xp.astype(counts == 0, xp.int32)))
        msg = f"column {column} of X has no observed entry (every entry is NaN)"
        raise ValueError(msg)
    if not bool(xp.all(xp.isfinite(mean))):
        from hmog_xp.scale._dask import chunk_bounds, non_finite_chunks_error

        bad = da.isinf(X).any(axis=1) if marginalize else da.logical_not(da.isfinite(X).all(axis=1))
        (bad_rows_mask,) = dask.compute(bad)
        bounds = chunk_bounds(X)
        bad_rows = [int(row) for row in xp.nonzero(bad_rows_mask)[0]]
        flagged = sorted({bisect.bisect_right(bounds, row) - 1 for row in bad_rows})
        what = "infinite values" if marginalize else "non-finite values (NaN or inf)"
        raise non_finite_chunks_error(X, flagged, what)
    if marginalize:
        centred = da.where(da.isnan(X), 0.0, X - mean)
        (spread,) = dask.compute((centred**2).sum(axis=0))
        variance = spread / counts
        observed = xp.astype(counts, mean.dtype) / X.shape[0]
    else:
        (variance,) = dask.compute(((X - mean) ** 2).mean(axis=0))
        observed = xp.ones_like(mean)
    standardization = Standardization.from_moments(mean, variance, low == high, common_scale=common)
    return standardization, observed


def _name_non_finite_chunk(X: Any, subset: Any, rows: list[int], marginalize: bool) -> None:
    """Raise naming the chunk of the first sampled row that holds an invalid value.

    Invalid: an infinity, or a NaN unless ``marginalize`` (then a row of NaN only).
    """
    from hmog_xp.scale._dask import chunk_bounds, non_finite_chunks_error

    xp = B.array_namespace(subset)
    if marginalize:
        bad = xp.any(xp.isinf(subset), axis=1) | xp.all(xp.isnan(subset), axis=1)
        what = MarginalizedHMoG.invalid_rows_description
    else:
        bad = xp.logical_not(xp.all(xp.isfinite(subset), axis=1))
        what = "non-finite values (NaN or inf)"
    if not bool(xp.any(bad)):
        return  # rows outside the sample are checked, chunk by chunk, by fit_em_dask
    row = rows[int(xp.argmax(xp.astype(bad, xp.int8)))]
    raise non_finite_chunks_error(X, [bisect.bisect_right(chunk_bounds(X), row) - 1], what)


def lazy_method(estimator: HMoG, X: Any, method: str) -> Any:
    """Apply an inference method chunk-wise to a Dask array, lazily.

    Parameters
    ----------
    estimator : HMoG
        A fitted estimator.
    X : dask.array.Array, shape (n_samples, n_features)
        Data chunked along rows.
    method : {'predict', 'predict_proba', 'transform', 'score_samples'}
        The method.

    Returns
    -------
    dask.array.Array
        Lazy result, chunked like ``X`` along rows.
    """
    from hmog_xp import scale

    model = estimator._inference_model()
    scale.check_dask_sample(model, X)
    chunk_xp = B.namespace_for(backend_of_array(X._meta) or "numpy")
    params = transfer(estimator._standard_params, chunk_xp)
    standardization = Standardization(
        *(transfer(part, chunk_xp) for part in estimator._standardization)
    )
    result = getattr(scale, f"dask_{method}")(model, params, standardization.standardize(X))
    if method == "score_samples" and estimator.missing == "marginalize":
        result = result + X.map_blocks(
            standardization.row_log_density_shift, drop_axis=1, dtype=X.dtype
        )
    elif method == "score_samples":
        result = result + standardization.log_density_shift()
    return result


def _impute_block(block: Any, estimator: HMoG, seed: int | None, block_id: Any = None) -> Any:
    """``estimator.impute`` of one chunk (its own seed, from the chunk's index, when drawing)."""
    if seed is None:
        return estimator.impute(block)
    chunk_seed = (seed + 7919 * int(block_id[0])) % (2**31 - 1)
    return estimator.impute(block, sample=True, random_state=chunk_seed)


def lazy_impute(estimator: HMoG, X: Any, seed: int | None) -> Any:
    """Impute a Dask array chunk-wise, lazily (see :meth:`HMoG.impute`).

    Parameters
    ----------
    estimator : HMoG
        A fitted estimator.
    X : dask.array.Array, shape (n_samples, n_features)
        Data chunked along rows (NaN: missing).
    seed : int or None
        None: conditional means; else the seed of the draws (each chunk its own stream).

    Returns
    -------
    dask.array.Array
        The completed data, chunked like ``X``.
    """
    from hmog_xp import scale

    scale.check_dask_sample(estimator.model_, X)
    return X.map_blocks(_impute_block, estimator, seed, dtype=X.dtype, meta=X._meta)


def partial_fit(estimator: HMoG, X: Any) -> None:
    """Update the fit with one mini-batch by online EM (initialising on the first batch).

    Parameters
    ----------
    estimator : HMoG
        The estimator.
    X : array-like, shape (n_samples, n_features)
        A mini-batch (a Dask array is computed first).
    """
    from hmog_xp.scale import StepSize, online_em_init, online_em_update

    _require_analytic(estimator, "partial_fit")
    if is_dask_array(X):
        X = X.compute()
    state = getattr(estimator, "_online_state", None)
    if state is None:
        hyper = check_hyperparameters(estimator)  # Python numbers, not NumPy scalars
        xs, caller_xp = check_fit_data(estimator, X)
        model = model_for(hyper, xs.shape[0], xs.shape[1], "analytic")
        seed = int(check_random_state(estimator.random_state).randint(2**31 - 1))
        missing = hyper.missing == "marginalize" and has_missing_entries(xs)
        if missing:
            check_observed_columns(xs)
        standardization = standardization_for(hyper, xs, missing)
        xs = standardization.standardize(xs)
        # Later batches may have holes when the first has none: marginalise all of them.
        em_model = MarginalizedHMoG(model) if hyper.missing == "marginalize" else model
        start = mean_filled(xs) if missing else xs
        state = online_em_init(
            em_model,
            initial_params(hyper, model, start, seed, standardization),
            step_size=StepSize(1.0, hyper.learning_offset, hyper.learning_decay),
            regularization=em_regularization(hyper, xs.dtype, B.array_namespace(xs)),
        )
        history: list[float] = []
    else:
        xs, caller_xp = estimator._data(X)
        standardization = estimator._standardization
        xs = standardization.standardize(xs)
        history = list(estimator.log_likelihood_)
    state = online_em_update(state, xs)
    estimator._online_state = state
    model = state.model.model if isinstance(state.model, MarginalizedHMoG) else state.model
    estimator._set_fitted(model, state.params, caller_xp, standardization)
    missing = estimator.missing == "marginalize"
    shift = average_log_density_shift(standardization, xs, missing)
    history.append(float(state.log_likelihood) + shift)
    estimator.log_likelihood_ = history
    estimator.lower_bound_ = history[-1]
    estimator.n_iter_ = int(state.n_updates)
    estimator.converged_ = False
