"""``HMoG(missing='marginalize')``: fits, inference and imputation on rows with holes.

Oracles: the dense Gaussian-mixture marginal of each row's observed entries built with SciPy
from the fitted generative parameters (``weights_``, ``means_``, ``covariances_``,
``loadings_``, ``bias_``, ``noise_``; in the data's units), the textbook Gaussian
conditioning formulas, the complete-data estimator (data without holes), EM's monotonicity,
the in-memory fit (Dask), the law of large numbers (imputation draws) and the true labels of
a generated sample (adjusted Rand index).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from scipy.special import logsumexp, softmax
from scipy.stats import multivariate_normal
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from hmog_xp import HMoG
from tests.helpers import assert_close, backend_of, to_numpy, xp_name

FAST = {"max_iter": 40, "tol": 1e-10, "random_state": 0}


def clustered_sample(seed: int, n: int = 400, p: int = 10) -> tuple[np.ndarray, np.ndarray]:
    """Three latent clusters in ``d = 2`` seen through ``p`` noisy correlated features."""
    rng = np.random.default_rng(seed)
    means = 2.2 * np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.5]])
    labels = rng.integers(0, 3, size=n)
    latent = means[labels] + 0.6 * rng.normal(size=(n, 2))
    loadings = rng.normal(size=(p, 2))
    noise_sd = rng.uniform(0.8, 1.5, size=p)
    return latent @ loadings.T + 3.0 + noise_sd * rng.normal(size=(n, p)), labels


def with_holes(X: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """``X`` with entries missing completely at random (no row left empty)."""
    rng = np.random.default_rng(seed)
    holes = rng.random(X.shape) < fraction
    holes[np.all(holes, axis=1), 0] = False
    return np.where(holes, np.nan, X)


def _fit(est: HMoG, X: Any) -> HMoG:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return est.fit(X)


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    X, labels = clustered_sample(0, n=150, p=6)
    return with_holes(X, 0.2, 1), labels


def dense_oracle(est: HMoG, row: np.ndarray) -> dict[str, Any]:
    """Density, responsibilities, factor scores and conditional mean of one row, densely."""
    weights, means, covs = (to_numpy(v) for v in (est.weights_, est.means_, est.covariances_))
    A, b, noise = (to_numpy(v) for v in (est.loadings_, est.bias_, est.noise_))
    psi = np.broadcast_to(noise, b.shape)
    obs = ~np.isnan(row)
    logits, latent, filled = [], [], []
    for k in range(len(weights)):
        mean = A @ means[k] + b
        cov = A @ covs[k] @ A.T + np.diag(psi)
        c_oo = cov[np.ix_(obs, obs)]
        resid = np.linalg.solve(c_oo, row[obs] - mean[obs])
        logits.append(np.log(weights[k]) + multivariate_normal(mean[obs], c_oo).logpdf(row[obs]))
        latent.append(means[k] + covs[k] @ A[obs].T @ resid)
        filled.append(mean[~obs] + cov[np.ix_(~obs, obs)] @ resid)
    probs = softmax(np.array(logits))
    completed = row.copy()
    completed[~obs] = probs @ np.array(filled)
    return {
        "log_density": logsumexp(logits),
        "proba": probs,
        "latent": probs @ np.array(latent),
        "completed": completed,
    }


def test_nan_is_refused_by_default_naming_the_option(xp: Any, sample: Any) -> None:
    X = xp.asarray(sample[0])
    with pytest.raises(ValueError, match="missing='marginalize'"):
        HMoG(3, 2).fit(X)
    est = _fit(HMoG(3, 2, **FAST), clustered_sample(0, n=150, p=6)[0])  # X's checks only
    with pytest.raises(ValueError, match="missing='marginalize'"):
        est.predict(X)


def test_infinity_is_never_missing(xp: Any, sample: Any) -> None:
    X = sample[0].copy()
    X[3, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        HMoG(3, 2, missing="marginalize").fit(xp.asarray(X))


@pytest.mark.parametrize(("axis", "what"), [(0, "column 4"), (1, "row 7")])
def test_empty_rows_and_columns_are_refused_by_name(
    numpy_selected: None, sample: Any, axis: int, what: str
) -> None:
    X = sample[0].copy()
    if axis == 0:
        X[:, 4] = np.nan
    else:
        X[7, :] = np.nan
    with pytest.raises(ValueError, match=what):
        HMoG(3, 2, missing="marginalize").fit(X)


def test_new_rows_need_an_observed_entry_but_columns_may_be_empty(
    numpy_selected: None, sample: Any
) -> None:
    est = _fit(HMoG(3, 2, missing="marginalize", **FAST), sample[0])
    rows = sample[0][:5].copy()
    rows[:, 1] = np.nan
    assert np.all(np.isfinite(est.score_samples(rows)))
    rows[2] = np.nan
    with pytest.raises(ValueError, match="row 2"):
        est.predict(rows)


@pytest.mark.parametrize(
    ("settings", "name"),
    [({"variant": "differentiable"}, "variant='analytic'"), ({"noise": "full"}, "noise")],
)
def test_settings_that_cannot_marginalise_are_refused(
    numpy_selected: None, sample: Any, settings: dict[str, Any], name: str
) -> None:
    with pytest.raises(ValueError, match=name):
        HMoG(3, 2, missing="marginalize", **settings).fit(sample[0])
    with pytest.raises(ValueError, match="missing"):
        HMoG(missing="drop").fit(sample[0])


def test_without_holes_the_results_equal_the_complete_data_path(xp: Any) -> None:
    X = xp.asarray(clustered_sample(2, n=150, p=6)[0])
    plain = _fit(HMoG(3, 2, **FAST), X)
    marginal = _fit(HMoG(3, 2, missing="marginalize", **FAST), X)
    assert marginal.log_likelihood_ == plain.log_likelihood_
    np.testing.assert_array_equal(to_numpy(marginal.params_), to_numpy(plain.params_))
    for method in ("predict", "predict_proba", "transform", "score_samples"):
        expected = to_numpy(getattr(plain, method)(X))
        np.testing.assert_array_equal(to_numpy(getattr(marginal, method)(X)), expected)
    np.testing.assert_array_equal(to_numpy(marginal.impute(X)), to_numpy(X))


@pytest.mark.parametrize("noise", ["diagonal", "isotropic"])
def test_inference_matches_the_dense_marginal_of_the_observed_entries(
    xp: Any, sample: Any, noise: str
) -> None:
    X = xp.asarray(sample[0])
    est = _fit(HMoG(3, 2, noise=noise, missing="marginalize", **FAST), X)
    rows = sample[0][:25]
    oracle = [dense_oracle(est, row) for row in rows]
    subset = xp.asarray(rows)
    log_density = est.score_samples(subset)
    assert backend_of(log_density) == xp_name(xp)
    assert_close(log_density, np.array([o["log_density"] for o in oracle]), rtol=1e-9)
    assert_close(est.predict_proba(subset), np.array([o["proba"] for o in oracle]), atol=1e-9)
    assert_close(est.transform(subset), np.array([o["latent"] for o in oracle]), atol=1e-8)
    assert_close(est.impute(subset), np.array([o["completed"] for o in oracle]), rtol=1e-9)
    labels = np.array([np.argmax(o["proba"]) for o in oracle])
    np.testing.assert_array_equal(to_numpy(est.predict(subset)), labels)
    average = np.mean([o["log_density"] for o in oracle])
    assert est.score(subset) == pytest.approx(average, rel=1e-10)


def test_imputation_keeps_observed_entries_bit_for_bit(xp: Any, sample: Any) -> None:
    X = xp.asarray(sample[0])
    est = _fit(HMoG(3, 2, missing="marginalize", **FAST), X)
    holes = np.isnan(sample[0])
    for completed in (est.impute(X), est.impute(X, sample=True, random_state=3)):
        values = to_numpy(completed)
        assert not np.any(np.isnan(values))
        np.testing.assert_array_equal(values[~holes], sample[0][~holes])


def test_imputation_draws_average_to_the_conditional_mean(numpy_selected: None) -> None:
    X, _ = clustered_sample(3, n=200, p=6)
    est = _fit(HMoG(3, 2, **FAST), X)
    row = X[0].copy()
    row[[1, 4]] = np.nan
    rows = np.tile(row, (20_000, 1))
    draws = est.impute(rows, sample=True, random_state=0)[:, [1, 4]]
    expected = dense_oracle(est, row)["completed"][[1, 4]]
    standard_error = draws.std(axis=0) / np.sqrt(len(draws))
    assert np.all(np.abs(draws.mean(axis=0) - expected) < 4.0 * standard_error)
    again = est.impute(rows, sample=True, random_state=0)[:, [1, 4]]
    np.testing.assert_array_equal(again, draws)  # seeded: reproducible


def test_em_on_the_observed_entries_never_decreases_their_likelihood(xp: Any, sample: Any) -> None:
    est = _fit(HMoG(3, 2, missing="marginalize", accelerate=False, **FAST), xp.asarray(sample[0]))
    history = np.array(est.log_likelihood_)
    assert np.all(np.diff(history) >= -1e-9 * np.abs(history[1:]))
    assert est.score(xp.asarray(sample[0])) == pytest.approx(est.lower_bound_, abs=1e-6)


def test_clusters_under_15_percent_missing_beat_mean_imputation(numpy_selected: None) -> None:
    X, labels = clustered_sample(0)
    complete = adjusted_rand_score(labels, _fit(HMoG(3, 2, n_init=2, **FAST), X).predict(X))
    marginal, imputed = [], []
    for seed in range(3):
        holed = with_holes(X, 0.15, seed)
        est = _fit(HMoG(3, 2, missing="marginalize", n_init=2, **FAST), holed)
        marginal.append(adjusted_rand_score(labels, est.predict(holed)))
        filled = np.where(np.isnan(holed), np.nanmean(holed, axis=0), holed)
        plain = _fit(HMoG(3, 2, n_init=2, **FAST), filled)
        imputed.append(adjusted_rand_score(labels, plain.predict(filled)))
    assert complete > 0.95
    assert min(marginal) > complete - 0.05
    assert np.mean(marginal) > np.mean(imputed) + 0.03


def test_dask_fit_and_inference_equal_the_in_memory_ones(numpy_selected: None, sample: Any) -> None:
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    X = sample[0]
    chunked = da.from_array(X, chunks=(40, X.shape[1]))
    memory = _fit(HMoG(3, 2, missing="marginalize", **FAST), X)
    lazy = _fit(HMoG(3, 2, missing="marginalize", **FAST), chunked)
    np.testing.assert_allclose(lazy.log_likelihood_, memory.log_likelihood_, rtol=1e-10)
    np.testing.assert_allclose(lazy.params_, memory.params_, rtol=1e-7, atol=1e-9)
    for method in ("predict_proba", "transform", "score_samples", "impute"):
        expected = getattr(memory, method)(X)
        np.testing.assert_allclose(getattr(memory, method)(chunked).compute(), expected)
    np.testing.assert_array_equal(memory.predict(chunked).compute(), memory.predict(X))
    drawn = memory.impute(chunked, sample=True, random_state=0).compute()
    np.testing.assert_array_equal(drawn[~np.isnan(X)], X[~np.isnan(X)])
    bad = X.copy()
    bad[45] = np.nan
    with pytest.raises(ValueError, match=r"chunk 1 \(rows 40-79\).*no observed entry"):
        _fit(HMoG(3, 2, missing="marginalize", **FAST), da.from_array(bad, chunks=(40, 6)))


def test_partial_fit_marginalises_every_batch(numpy_selected: None, sample: Any) -> None:
    X = sample[0]
    est = HMoG(3, 2, missing="marginalize", random_state=0)
    one_step = _fit(
        HMoG(3, 2, missing="marginalize", max_iter=1, accelerate=False, random_state=0), X
    )
    est.partial_fit(X)  # the first update is one EM step from the same start
    np.testing.assert_allclose(est.params_, one_step.params_, rtol=1e-9, atol=1e-12)
    for batch in np.array_split(X, 3):
        est.partial_fit(batch)
    assert np.all(np.isfinite(est.score_samples(X)))


def test_missing_is_saved_with_the_model(numpy_selected: None, sample: Any, tmp_path: Any) -> None:
    est = _fit(HMoG(3, 2, missing="marginalize", **FAST), sample[0])
    loaded = HMoG.load(est.save(tmp_path / "model.npz"))
    assert loaded.missing == "marginalize"
    np.testing.assert_allclose(loaded.score_samples(sample[0]), est.score_samples(sample[0]))
