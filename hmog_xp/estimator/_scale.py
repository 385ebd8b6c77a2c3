"""The estimator beyond one in-memory array: Dask arrays and streaming ``partial_fit``.

``fit`` on a ``dask.array`` runs :func:`hmog_xp.scale.fit_em_dask` (per-chunk sums on the
workers, the M-step on the client), after initialising on a random sample of at most
:data:`INIT_ROWS` rows brought to the client. Inference methods given a Dask array return
lazy Dask arrays. ``partial_fit`` runs online EM (:func:`hmog_xp.scale.online_em_update`)
with the step sizes ``γ_t = (t + learning_offset)^(−learning_decay)``.
"""

from __future__ import annotations

import bisect
import random
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

from array_api_compat import is_dask_array
from sklearn.utils import check_random_state

from hmog_xp import _backend as B
from hmog_xp._backend.transfer import backend_of_array, transfer
from hmog_xp.estimator._inputs import check_fit_data
from hmog_xp.estimator._params import model_for
from hmog_xp.estimator._training import RunResult, em_regularization, initial_params

if TYPE_CHECKING:
    from hmog_xp.estimator._estimator import HMoG
    from hmog_xp.hmog import HierarchicalMixtureOfGaussians

__all__ = ["INIT_ROWS", "is_dask_array", "lazy_method", "partial_fit", "prepare_dask"]

#: Rows sampled to the client to initialise a fit on a Dask array.
INIT_ROWS = 20_000

#: ``run(seed, callback)``: one initialisation and training run.
Runner = Callable[[int, Callable[[int, float], object] | None], RunResult]


def _require_analytic(estimator: HMoG, what: str) -> None:
    if estimator.variant != "analytic":
        msg = f"{what} needs variant='analytic' (closed-form EM); got {estimator.variant!r}"
        raise ValueError(msg)


def prepare_dask(
    estimator: HMoG, X: Any
) -> tuple[HierarchicalMixtureOfGaussians, Runner, ModuleType]:
    """Check a Dask array for fitting and return the model and a per-restart runner.

    Parameters
    ----------
    estimator : HMoG
        The estimator (hyper-parameters checked; ``n_features_in_`` is recorded).
    X : dask.array.Array, shape (n_samples, n_features)
        Data chunked along rows.

    Returns
    -------
    model : AnalyticHMoG
        The model.
    run : callable
        ``run(seed, callback)``: initialise on a sample of rows, then ``fit_em_dask``.
    xp : module
        The chunks' namespace (where the parameters live).
    """
    from hmog_xp.scale import check_dask_sample, fit_em_dask

    _require_analytic(estimator, "fitting a Dask array")
    if X.ndim != 2:
        msg = f"Expected 2D array, got {X.ndim}D array instead"
        raise ValueError(msg)
    n_obs, n_features = (int(size) for size in X.shape)
    model = model_for(estimator, n_obs, n_features, "analytic")
    check_dask_sample(model, X)
    xp = B.namespace_for(backend_of_array(X._meta) or "numpy")
    if estimator.backend is not None and B.backend_name_of(xp) != estimator.backend:
        msg = (
            f"a Dask array is fitted in its chunks' backend ({B.backend_name_of(xp)}); "
            f"backend={estimator.backend!r} differs: convert the chunks with map_blocks"
        )
        raise ValueError(msg)
    estimator.n_features_in_ = n_features

    def run(seed: int, callback: Callable[[int, float], object] | None) -> RunResult:
        rows = sorted(random.Random(seed).sample(range(n_obs), min(n_obs, INIT_ROWS)))
        subset = X[rows].compute()
        _name_non_finite_chunk(X, subset, rows)
        fit = fit_em_dask(
            model,
            initial_params(estimator, model, subset, seed),
            X,
            max_iter=estimator.max_iter,
            tol=estimator.tol,
            regularization=em_regularization(estimator, subset.dtype, xp),
            callback=callback,
        )
        return RunResult(fit.params, fit.log_likelihoods, fit.n_iter, fit.converged)

    return model, run, xp


def _name_non_finite_chunk(X: Any, subset: Any, rows: list[int]) -> None:
    """Raise naming the chunk of the first sampled row that holds a NaN or an infinity."""
    from hmog_xp.scale._dask import chunk_bounds, non_finite_chunks_error

    xp = B.array_namespace(subset)
    finite = xp.all(xp.isfinite(subset), axis=1)
    if bool(xp.all(finite)):
        return  # rows outside the sample are checked, chunk by chunk, by fit_em_dask
    row = rows[int(xp.argmin(xp.astype(finite, xp.int8)))]
    raise non_finite_chunks_error(X, [bisect.bisect_right(chunk_bounds(X), row) - 1])


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

    scale.check_dask_sample(estimator.model_, X)
    params = transfer(estimator.params_, B.namespace_for(backend_of_array(X._meta) or "numpy"))
    return getattr(scale, f"dask_{method}")(estimator.model_, params, X)


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
        xs, caller_xp = check_fit_data(estimator, X)
        model = model_for(estimator, xs.shape[0], xs.shape[1], "analytic")
        seed = int(check_random_state(estimator.random_state).randint(2**31 - 1))
        state = online_em_init(
            model,
            initial_params(estimator, model, xs, seed),
            step_size=StepSize(1.0, estimator.learning_offset, estimator.learning_decay),
            regularization=em_regularization(estimator, xs.dtype, B.array_namespace(xs)),
        )
        history: list[float] = []
    else:
        xs, caller_xp = estimator._data(X)
        history = list(estimator.log_likelihood_)
    state = online_em_update(state, xs)
    estimator._online_state = state
    estimator._set_fitted(state.model, state.params, caller_xp)
    history.append(float(state.log_likelihood))
    estimator.log_likelihood_ = history
    estimator.lower_bound_ = history[-1]
    estimator.n_iter_ = int(state.n_updates)
    estimator.converged_ = False
