"""EM and predictions on Dask arrays equal the in-memory results; the data are never gathered.

Needs ``dask[array]`` and ``distributed`` (the ``dask`` extra; ``nox -s tests-dask``); the
module is skipped without them.
"""

from __future__ import annotations

import itertools
import tracemalloc

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp.em import fit_em
from hmog_xp.scale import (
    dask_predict,
    dask_predict_proba,
    dask_score_samples,
    dask_transform,
    fit_em_dask,
)
from tests.helpers import to_numpy

da = pytest.importorskip("dask.array", reason="dask is not installed (pip install hmog_xp[dask])")
dask = pytest.importorskip("dask")


def _problem(obs_rep=hx.Diagonal, n: int = 2000, seed: int = 4):
    rng = np.random.default_rng(seed)
    model = hx.analytic_hmog(5, obs_rep, 2, 3)
    centres = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    latent = centres[rng.integers(0, 3, size=n)] + 0.5 * rng.normal(size=(n, 2))
    data = latent @ rng.normal(size=(5, 2)).T + 0.4 * rng.normal(size=(n, 5))
    return model, model.initialize_from_sample(1, data), data


def _assert_same_fit(fit, reference) -> None:
    assert fit.n_iter == reference.n_iter
    assert fit.converged == reference.converged
    np.testing.assert_allclose(fit.log_likelihoods, reference.log_likelihoods, rtol=1e-10)
    np.testing.assert_allclose(fit.params, reference.params, rtol=1e-8, atol=1e-8)


@pytest.mark.parametrize("obs_rep", [hx.Diagonal, hx.Scale, hx.PositiveDefinite])
def test_fit_em_dask_equals_fit_em(obs_rep) -> None:
    model, params, data = _problem(obs_rep)
    reference = fit_em(model, params, data, max_iter=15, tol=0.0)
    xs = da.from_array(data, chunks=((300, 700, 1, 999), (5,)))
    fit = fit_em_dask(model, params, xs, max_iter=15, tol=0.0, scheduler="threads")
    _assert_same_fit(fit, reference)
    assert not fit.converged


@pytest.mark.parametrize("kind", ["factor analysis", "gaussian mixture"])
def test_fit_em_dask_serves_every_closed_form_model(kind) -> None:
    """Factor analysis and Gaussian mixtures on Dask arrays, through the same engine."""
    data = _problem()[2]
    if kind == "factor analysis":
        model = hx.factor_analysis(5, 2)
        params = model.initialize_from_sample(0, data, 0.0)
    else:
        model = hx.AnalyticMixture(hx.Normal(5, hx.PositiveDefinite()), 3)
        params = model.initialize_from_sample(0, data)
    reference = fit_em(model, params, data, max_iter=12, tol=0.0)
    xs = da.from_array(data, chunks=((300, 700, 1, 999), (5,)))
    fit = fit_em_dask(model, params, xs, max_iter=12, tol=0.0, scheduler="threads")
    _assert_same_fit(fit, reference)


def test_fit_em_dask_stops_like_fit_em() -> None:
    model, params, data = _problem()
    reference = fit_em(model, params, data, max_iter=300, tol=1e-7)
    seen = []
    fit = fit_em_dask(
        model,
        params,
        da.from_array(data, chunks=(450, 5)),
        max_iter=300,
        tol=1e-7,
        chunk_size=64,
        scheduler="synchronous",
        callback=lambda iteration, value: seen.append((iteration, value)),
    )
    assert reference.converged
    _assert_same_fit(fit, reference)
    assert [i for i, _ in seen] == list(range(1, fit.n_iter + 1))
    np.testing.assert_allclose([v for _, v in seen], fit.log_likelihoods[:-1], rtol=0)


def test_fit_em_dask_regularization_matches_fit_em() -> None:
    regularize = pytest.importorskip("hmog_xp.hmog._regularize")
    model, params, data = _problem()
    stabilisers = regularize.Regularization(reg_covar=1e-3, min_variance=1e-3, min_weight=1e-3)
    reference = fit_em(model, params, data, max_iter=8, tol=0.0, regularization=stabilisers)
    fit = fit_em_dask(
        model,
        params,
        da.from_array(data, chunks=(500, 5)),
        max_iter=8,
        tol=0.0,
        regularization=stabilisers,
    )
    _assert_same_fit(fit, reference)


def test_lazy_predictions_equal_the_model_methods() -> None:
    model, params, data = _problem(n=1000)
    params = fit_em(model, params, data, max_iter=10).params
    xs = da.from_array(data, chunks=(300, 5))
    cases = [
        (dask_predict, "posterior_hard_assignment", (1000,)),
        (dask_predict_proba, "posterior_soft_assignments", (1000, 3)),
        (dask_transform, "posterior_latent_mean", (1000, 2)),
        (dask_score_samples, "log_observable_density", (1000,)),
    ]
    for function, method, shape in cases:
        lazy = function(model, params, xs)
        assert isinstance(lazy, da.Array)
        assert lazy.shape == shape
        assert lazy.chunks[0] == xs.chunks[0]
        expected = getattr(model, method)(params, data)
        computed = lazy.compute(scheduler="threads")
        assert computed.dtype == expected.dtype
        np.testing.assert_allclose(computed, expected, rtol=1e-12, atol=1e-12)


def _unknown_chunks(data: np.ndarray, how: str):
    """``data``'s rows with a positive first column, as a Dask array of unknown chunk sizes."""
    keep = data[:, 0] > 0
    if how == "boolean index":
        xs = da.from_array(data, chunks=(300, data.shape[1]))
        return xs[xs[:, 0] > 0], data[keep]
    bounds = [0, 450, 450, 1200, len(data)]  # one chunk holds no rows at all
    parts = [
        da.from_delayed(
            dask.delayed(lambda a, b: data[a:b][data[a:b, 0] > 0])(a, b),
            shape=(np.nan, data.shape[1]),
            dtype=data.dtype,
        )
        for a, b in itertools.pairwise(bounds)
    ]
    return da.concatenate(parts), data[keep]


@pytest.mark.parametrize("how", ["boolean index", "from_delayed"])
def test_unknown_chunk_sizes_are_handled(how: str) -> None:
    """Fit: sizes computed (one pass, the input untouched); predictions: lazy, sizes unknown."""
    model, params, data = _problem(n=1500)
    xs, kept = _unknown_chunks(data, how)
    assert np.isnan(xs.shape[0])
    reference = fit_em(model, params, kept, max_iter=6, tol=0.0)
    fit = fit_em_dask(model, params, xs, max_iter=6, tol=0.0, scheduler="threads")
    _assert_same_fit(fit, reference)
    assert np.isnan(xs.shape[0])  # the caller's array is not modified
    for function, method in [
        (dask_predict, "posterior_hard_assignment"),
        (dask_predict_proba, "posterior_soft_assignments"),
        (dask_transform, "posterior_latent_mean"),
        (dask_score_samples, "log_observable_density"),
    ]:
        lazy = function(model, fit.params, xs)
        assert np.isnan(lazy.shape[0]), function.__name__
        expected = getattr(model, method)(fit.params, kept)
        np.testing.assert_allclose(lazy.compute(), expected, rtol=1e-12, atol=1e-12)


def test_columns_split_across_chunks_are_rejected() -> None:
    model, params, data = _problem(n=400)
    xs = da.from_array(data, chunks=(100, 2))
    with pytest.raises(
        hx.ValidationError, match=r"chunked along columns.*xs\.rechunk\(\{1: -1\}\)"
    ):
        fit_em_dask(model, params, xs, max_iter=2)
    with pytest.raises(hx.ValidationError, match="rechunk"):
        dask_predict(model, params, xs)


def test_non_finite_values_name_the_chunk() -> None:
    model, params, data = _problem(n=6000)
    data = data.copy()
    data[3500, 2] = np.nan
    data[5999, 0] = np.inf
    xs = da.from_array(data, chunks=(1000, 5))
    with pytest.raises(
        hx.ValidationError,
        match=r"chunk 3 \(rows 3000-3999\) contains non-finite values .*1 more chunks",
    ):
        fit_em_dask(model, params, xs, max_iter=2)


def test_other_bad_inputs_are_rejected() -> None:
    model, params, data = _problem(n=400)
    with pytest.raises(hx.ValidationError, match=r"dask\.array\.Array"):
        fit_em_dask(model, params, data)
    with pytest.raises(hx.ValidationError, match=r"shape \(N, 5\)"):
        fit_em_dask(model, params, da.from_array(data[:, :4], chunks=(100, 4)))
    nothing = da.from_array(data, chunks=(100, 5))
    nothing = nothing[nothing[:, 0] > 1e9]  # unknown chunk sizes, all of them zero
    with pytest.raises(hx.ValidationError, match="at least one row"):
        fit_em_dask(model, params, nothing)
    with pytest.raises(hx.ValidationError, match="floating"):
        fit_em_dask(model, params, da.from_array(data.astype(np.int64), chunks=(100, 5)))
    gradient_only = hx.differentiable_hmog(5, hx.Diagonal, 2, hx.Diagonal, 3)
    with pytest.raises(hx.ValidationError, match="no closed-form EM"):
        fit_em_dask(gradient_only, gradient_only.initialize(0), da.from_array(data))


def test_the_client_never_materialises_the_data() -> None:
    """A lazily generated 160 MB data set is fitted with a small fraction of it in memory."""
    n_rows, n_cols = 2_000_000, 10
    xs = da.random.default_rng(7).standard_normal((n_rows, n_cols), chunks=(40_000, n_cols))
    model = hx.analytic_hmog(n_cols, hx.Diagonal, 2, 3)
    params = model.initialize_from_sample(0, xs[:2000].compute())
    data_bytes = n_rows * n_cols * 8
    tracemalloc.start()
    try:
        with dask.config.set(num_workers=2):  # two chunks in flight, whatever the machine
            fit = fit_em_dask(
                model, params, xs, max_iter=2, tol=0.0, chunk_size=10_000, scheduler="threads"
            )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert fit.n_iter == 2
    assert np.isfinite(fit.log_likelihoods).all()
    assert peak < data_bytes / 8, f"peak {peak / 2**20:.1f} MiB for {data_bytes / 2**20:.0f} MiB"


def test_local_cluster_fit_equals_fit_em() -> None:
    """Two worker processes on loopback; the default scheduler is the active Client."""
    distributed = pytest.importorskip("distributed", reason="distributed is not installed")
    model, params, data = _problem(n=3000)
    reference = fit_em(model, params, data, max_iter=10, tol=0.0)
    xs = da.from_array(data, chunks=(500, 5))
    with (
        distributed.LocalCluster(
            n_workers=2,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        xs = client.persist(xs)
        fit = fit_em_dask(model, params, xs, max_iter=10, tol=0.0)
        labels = dask_predict(model, fit.params, xs).compute()
        by_address = fit_em_dask(
            model, params, xs, max_iter=3, tol=0.0, scheduler=cluster.scheduler_address
        )
    _assert_same_fit(fit, reference)
    np.testing.assert_array_equal(labels, model.posterior_hard_assignment(fit.params, data))
    np.testing.assert_allclose(
        by_address.log_likelihoods, reference.log_likelihoods[:4], rtol=1e-10
    )


def test_parameters_stay_in_their_namespace(xp) -> None:
    """NumPy chunks on the workers, parameters of any backend on the client."""
    model, params, data = _problem(n=800)
    reference = fit_em(model, params, data, max_iter=4, tol=0.0)
    fit = fit_em_dask(
        model, xp.asarray(params), da.from_array(data, chunks=(300, 5)), max_iter=4, tol=0.0
    )
    assert type(fit.params) is type(xp.asarray(params))
    np.testing.assert_allclose(to_numpy(fit.params), reference.params, rtol=1e-8, atol=1e-8)
    np.testing.assert_allclose(fit.log_likelihoods, reference.log_likelihoods, rtol=1e-10)
