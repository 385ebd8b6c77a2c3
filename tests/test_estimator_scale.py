"""The estimator beyond one array: ``fit`` on a Dask array and streaming ``partial_fit``.

Oracles: the in-memory fit of the same data (same seed, so the same initialisation rows, for
any number of rows) and the batch EM optimum.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

from hmog_xp import HMoG
from tests.conftest import load_namespace
from tests.test_estimator import generative_sample


@pytest.fixture(autouse=True)
def _numpy_selected() -> None:
    load_namespace("numpy")


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, HMoG]:
    observed, _ = generative_sample(5, n=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return observed, HMoG(3, 2, random_state=0, max_iter=40, accelerate=False).fit(observed)


def test_dask_fit_equals_the_in_memory_fit(data: Any) -> None:
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    observed, in_memory = data
    chunked = da.from_array(observed, chunks=(300, observed.shape[1]))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = HMoG(3, 2, random_state=0, max_iter=40, accelerate=False).fit(chunked)
    np.testing.assert_allclose(est.log_likelihood_, in_memory.log_likelihood_, rtol=1e-10)
    np.testing.assert_allclose(est.params_, in_memory.params_, rtol=1e-8, atol=1e-10)
    for method in ("predict", "predict_proba", "transform", "score_samples"):
        lazy = getattr(est, method)(chunked)
        assert isinstance(lazy, da.Array), method
        np.testing.assert_allclose(lazy.compute(), getattr(in_memory, method)(observed), atol=1e-8)
    assert est.score(chunked) == pytest.approx(in_memory.score(observed), rel=1e-10)
    assert est.bic(chunked) == pytest.approx(in_memory.bic(observed), rel=1e-10)


def _assert_same_estimates(est: HMoG, reference: HMoG) -> None:
    np.testing.assert_allclose(est.log_likelihood_, reference.log_likelihood_, rtol=1e-10)
    for name in ("weights_", "means_", "covariances_", "loadings_", "bias_", "noise_"):
        # Sums in another order differ by rounding: relative to each attribute's size.
        value, expected = getattr(est, name), getattr(reference, name)
        atol = 1e-8 * float(np.max(np.abs(expected)))
        np.testing.assert_allclose(value, expected, rtol=1e-8, atol=atol, err_msg=name)
    # Natural parameters include large precisions: compare them relative to their size.
    scale = float(np.max(np.abs(reference.params_)))
    np.testing.assert_allclose(est.params_, reference.params_, rtol=1e-8, atol=1e-8 * scale)


def test_dask_fit_equals_the_in_memory_fit_beyond_init_rows() -> None:
    """N > INIT_ROWS: both containers initialise on the same seeded rows, so they agree."""
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    from hmog_xp.estimator._rows import INIT_ROWS, init_rows

    n_obs = 25_000
    assert n_obs > INIT_ROWS
    rows = init_rows(n_obs, 7)
    assert len(rows) == INIT_ROWS == len(set(rows))
    assert rows == sorted(rows)
    assert rows == init_rows(n_obs, 7) != init_rows(n_obs, 8)
    assert init_rows(100, 7) == list(range(100))
    observed, _ = generative_sample(11, n=n_obs)
    chunked = da.from_array(observed, chunks=(4000, observed.shape[1]))
    settings = {"random_state": 0, "max_iter": 6, "tol": 0.0, "n_init": 2, "accelerate": False}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        in_memory = HMoG(3, 2, **settings).fit(observed)
        on_dask = HMoG(3, 2, **settings).fit(chunked)
    _assert_same_estimates(on_dask, in_memory)


def test_unknown_chunk_sizes_fit_and_predict(data: Any) -> None:
    """Boolean indexing leaves chunk sizes unknown: fit computes them, predictions stay lazy."""
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    observed, _ = data
    chunked = da.from_array(observed, chunks=(300, observed.shape[1]))
    filtered = chunked[chunked[:, 0] > 0]
    kept = observed[observed[:, 0] > 0]
    assert np.isnan(filtered.shape[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = HMoG(3, 2, random_state=0, max_iter=10, accelerate=False).fit(filtered)
        reference = HMoG(3, 2, random_state=0, max_iter=10, accelerate=False).fit(kept)
    _assert_same_estimates(est, reference)
    assert np.isnan(filtered.shape[0])  # the caller's array is not modified
    for method in ("predict", "predict_proba", "transform", "score_samples"):
        lazy = getattr(est, method)(filtered)
        assert isinstance(lazy, da.Array), method
        assert np.isnan(lazy.shape[0]), method
        np.testing.assert_allclose(lazy.compute(), getattr(reference, method)(kept), atol=1e-8)
    assert est.score(filtered) == pytest.approx(reference.score(kept), rel=1e-10)
    assert est.bic(filtered) == pytest.approx(reference.bic(kept), rel=1e-10)
    assert est.aic(filtered) == pytest.approx(reference.aic(kept), rel=1e-10)


def test_dask_fit_errors_are_clear(data: Any) -> None:
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    observed, _ = data
    by_columns = da.from_array(observed, chunks=(500, 3))
    with pytest.raises(ValueError, match=r"rechunk\(\{1: -1\}\)"):
        HMoG(3, 2).fit(by_columns)
    with pytest.raises(ValueError, match="needs variant='analytic'"):
        HMoG(3, 2, variant="differentiable").fit(da.from_array(observed, chunks=(500, 6)))
    holes = observed.copy()
    holes[1234, 0] = np.nan
    with pytest.raises(ValueError, match=r"chunk 2 \(rows 1000-1499\) contains non-finite"):
        HMoG(3, 2, max_iter=3).fit(da.from_array(holes, chunks=(500, 6)))


def test_partial_fit_approaches_the_batch_optimum(data: Any) -> None:
    observed, batch_fit = data
    rng = np.random.default_rng(0)
    online = HMoG(3, 2, random_state=0)
    for _ in range(4):  # epochs
        for part in np.array_split(observed[rng.permutation(len(observed))], 20):
            online.partial_fit(part)
    assert online.n_iter_ == 80
    assert len(online.log_likelihood_) == 80
    assert online.score(observed) == pytest.approx(batch_fit.score(observed), abs=5e-3)
    assert online.score(observed) <= batch_fit.score(observed) + 1e-9


def test_partial_fit_checks_later_batches() -> None:
    observed, _ = generative_sample(6, n=200)
    online = HMoG(3, 2, random_state=0).partial_fit(observed[:100])
    with pytest.raises(ValueError, match="X has 5 features, but HMoG is expecting 6"):
        online.partial_fit(observed[100:, :5])
    with pytest.raises(ValueError, match="partial_fit needs variant='analytic'"):
        HMoG(3, 2, variant="symmetric").partial_fit(observed)
    with pytest.raises(ValueError, match=r"learning_decay must be in \(0.5, 1\]"):
        HMoG(3, 2, learning_decay=0.4).partial_fit(observed)
    # fit starts afresh: the online state is dropped.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        online.fit(observed)
    assert online.n_iter_ <= online.max_iter
    assert online.partial_fit(observed[:50]).n_iter_ == 1
