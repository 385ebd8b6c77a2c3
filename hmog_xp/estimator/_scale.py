"""The estimator beyond one in-memory array: Dask arrays and streaming ``partial_fit``.

``fit`` on a ``dask.array`` runs :func:`hmog_xp.scale.fit_em_dask` (per-chunk sums on the
workers, the M-step on the client), after initialising on a random sample of at most
:data:`INIT_ROWS` rows brought to the client. Inference methods given a Dask array return
lazy Dask arrays. ``partial_fit`` runs online EM (:func:`hmog_xp.scale.online_em_update`)
with the step sizes ``γ_t = (t + learning_offset)^(−learning_decay)``.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from array_api_compat import is_dask_array

from hmog_xp import _backend as B
from hmog_xp.estimator._init import starting_point, user_starting_point
from hmog_xp.estimator._inputs import check_data
from hmog_xp.estimator._params import n_factors_for
from hmog_xp.estimator._training import RunResult, build_model
from hmog_xp.hmog._regularize import Regularization

if TYPE_CHECKING:
    from hmog_xp.estimator._estimator import HMoG

__all__ = ["INIT_ROWS", "fit_dask", "is_dask_array", "lazy_method", "partial_fit"]

#: Rows sampled to the client to initialise a fit on a Dask array.
INIT_ROWS = 20_000


def _regularization(estimator: HMoG, dtype: Any, xp: Any) -> Regularization:
    min_weight = 10.0 * float(xp.finfo(dtype).eps)
    return Regularization(estimator.reg_covar, estimator.noise_floor, min_weight)


def _start(estimator: HMoG, model: Any, xs: Any, seed: int) -> Any:
    if isinstance(estimator.init, str):
        return starting_point(
            model, xs, estimator.init, seed, estimator.reg_covar, estimator.noise_floor
        )
    return user_starting_point(model, xs, estimator.init, seed, B.array_namespace(xs))


def _require_analytic(estimator: HMoG, what: str) -> None:
    if estimator.variant != "analytic":
        msg = f"{what} needs variant='analytic' (closed-form EM); got {estimator.variant!r}"
        raise ValueError(msg)


def fit_dask(
    estimator: HMoG, X: Any, seed: int, callback: Callable[[int, float], object] | None
) -> tuple[Any, RunResult]:
    """Fit on a Dask array without gathering it (see the module docstring).

    Parameters
    ----------
    estimator : HMoG
        The estimator (hyper-parameters checked).
    X : dask.array.Array, shape (n_samples, n_features)
        Data chunked along rows.
    seed : int
        Seed of the initialisation.
    callback : callable or None
        ``callback(iteration, log_likelihood)`` after each step.

    Returns
    -------
    model : AnalyticHMoG
        The model.
    run : RunResult
        The fit (parameters in the chunks' namespace).
    """
    from hmog_xp.scale import check_dask_sample, fit_em_dask

    _require_analytic(estimator, "fitting a Dask array")
    if X.ndim != 2:
        msg = f"Expected 2D array, got {X.ndim}D array instead"
        raise ValueError(msg)
    n_obs, n_features = (int(size) for size in X.shape)
    n_factors = n_factors_for(estimator, n_obs, n_features)
    model = build_model(
        "analytic", estimator.noise, estimator.latent_rep, n_features, n_factors,
        estimator.n_components,
    )  # fmt: skip
    check_dask_sample(model, X)
    rows = sorted(random.Random(seed).sample(range(n_obs), min(n_obs, INIT_ROWS)))
    subset = X[rows].compute()
    xp = B.array_namespace(subset)
    _name_non_finite_chunk(X, subset, rows)
    if estimator.backend is not None and B.backend_name_of(xp) != estimator.backend:
        msg = (
            f"a Dask array is fitted in its chunks' backend ({B.backend_name_of(xp)}); "
            f"backend={estimator.backend!r} differs: convert the chunks with map_blocks"
        )
        raise ValueError(msg)
    estimator.n_features_in_ = n_features
    params = _start(estimator, model, subset, seed)
    fit = fit_em_dask(
        model,
        params,
        X,
        max_iter=estimator.max_iter,
        tol=estimator.tol,
        regularization=_regularization(estimator, subset.dtype, xp),
        callback=callback,
    )
    return model, RunResult(fit.params, fit.log_likelihoods, fit.n_iter, fit.converged)


def _name_non_finite_chunk(X: Any, subset: Any, rows: list[int]) -> None:
    """Raise naming the chunk of the first sampled row that holds a NaN or an infinity."""
    xp = B.array_namespace(subset)
    finite = xp.all(xp.isfinite(subset), axis=1)
    if bool(xp.all(finite)):
        return  # rows outside the sample are checked, chunk by chunk, by fit_em_dask
    row = rows[int(xp.argmin(xp.astype(finite, xp.int8)))]
    start = 0
    for index, size in enumerate(X.chunks[0]):
        if row < start + size:
            msg = (
                f"chunk {index} (rows {start}-{start + size - 1}) contains non-finite values "
                f"(NaN or inf), e.g. row {row}; clean or drop those rows first"
            )
            raise ValueError(msg)
        start += size


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
    params = estimator.params_
    chunk_backend = B.backend_name_of(B.namespace_for(_meta_backend(X)))
    if chunk_backend != B.backend_name_of(B.array_namespace(params)):
        from hmog_xp._backend.transfer import transfer

        params = transfer(params, B.namespace_for(chunk_backend))
    return getattr(scale, f"dask_{method}")(estimator.model_, params, X)


def _meta_backend(X: Any) -> str:
    from hmog_xp._backend.transfer import backend_of_array

    return backend_of_array(X._meta) or "numpy"


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
        xp = B.get_namespace(estimator.backend) if estimator.backend else None
        from hmog_xp.estimator._inputs import caller_namespace

        xs, caller_xp = check_data(estimator, X, reset=True, xp=xp or caller_namespace(X))
        n_obs, n_features = xs.shape
        n_factors = n_factors_for(estimator, n_obs, n_features)
        model = build_model(
            "analytic", estimator.noise, estimator.latent_rep, n_features, n_factors,
            estimator.n_components,
        )  # fmt: skip
        from sklearn.utils import check_random_state

        seed = int(check_random_state(estimator.random_state).randint(2**31 - 1))
        schedule = StepSize(1.0, estimator.learning_offset, estimator.learning_decay)
        state = online_em_init(
            model,
            _start(estimator, model, xs, seed),
            step_size=schedule,
            regularization=_regularization(estimator, xs.dtype, B.array_namespace(xs)),
        )
        history: list[float] = []
    else:
        xs, caller_xp = check_data(
            estimator, X, reset=False, xp=estimator._xp, dtype=estimator.params_.dtype
        )
        history = list(estimator.log_likelihood_)
    state = online_em_update(state, xs)
    estimator._online_state = state
    estimator._set_fitted(state.model, state.params, caller_xp)
    history.append(float(state.log_likelihood))
    estimator.log_likelihood_ = history
    estimator.lower_bound_ = history[-1]
    estimator.n_iter_ = int(state.n_updates)
    estimator.converged_ = False
