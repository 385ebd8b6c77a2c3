"""Choosing K and d: ``HMoG.icl`` and :func:`hmog_xp.select_model`.

Oracles: SciPy's entropy of the posterior probabilities (ICL), the generating K and d of a
synthetic sample, each fit's own ``bic``/``aic`` (the table must report them), the moments of
a Gaussian mixture (the split start), and the NumPy run (Dask).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from scipy.stats import entropy
from sklearn.exceptions import ConvergenceWarning

import hmog_xp as hx
from hmog_xp import HMoG, select_model
from hmog_xp.estimator._selection import COLUMNS, split_start
from tests.conftest import load_namespace

FAST = {"n_init": 2, "max_iter": 60, "random_state": 0}


def three_clusters(seed: int = 0, n: int = 240) -> np.ndarray:
    """Three well-separated latent clusters in d = 2, seen through p = 6 features."""
    rng = np.random.default_rng(seed)
    means = np.array([[-5.0, 0.0], [5.0, 0.0], [0.0, 6.0]])
    latent = means[rng.integers(0, 3, size=n)] + 0.7 * rng.normal(size=(n, 2))
    return latent @ rng.normal(size=(2, 6)) + 0.3 * rng.normal(size=(n, 6))


@pytest.fixture(scope="module")
def sample() -> np.ndarray:
    return three_clusters()


@pytest.fixture(scope="module")
def selection(sample: np.ndarray) -> Any:
    load_namespace("numpy")  # a NumPy-only grid: its tests skip here, before it is fitted
    return select_model(sample, n_components=range(1, 5), n_factors=[1, 2], **FAST)


def test_icl_is_bic_plus_twice_the_assignment_entropy(xp: Any, sample: np.ndarray) -> None:
    X = xp.asarray(sample[:120])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = HMoG(3, 2, **FAST).fit(X)
        single = HMoG(1, 2, **FAST).fit(X)
    proba = np.asarray(est.predict_proba(X))
    total = float(np.sum(entropy(proba, axis=1)))
    assert est.assignment_entropy(X) == pytest.approx(total, rel=1e-9, abs=1e-9)
    assert est.icl(X) == pytest.approx(est.bic(X) + 2.0 * total, rel=1e-12)
    assert single.icl(X) == pytest.approx(single.bic(X), rel=1e-12)


def test_the_generating_k_and_d_are_chosen(selection: Any) -> None:
    assert selection.best_params_ == {"n_components": 3, "n_factors": 2}
    assert selection.best_estimator_.n_components == 3


def test_the_table_reports_each_fit(selection: Any, sample: np.ndarray) -> None:
    results = selection.results_
    assert tuple(results) == COLUMNS
    assert len(results["bic"]) == 8
    for i, est in enumerate(selection.estimators_):
        assert results["n_components"][i] == est.n_components
        assert results["bic"][i] == pytest.approx(est.bic(sample), rel=1e-12)
        assert results["aic"][i] == pytest.approx(est.aic(sample), rel=1e-12)
        assert results["icl"][i] == pytest.approx(est.icl(sample), rel=1e-9)
        assert results["log_likelihood"][i] == pytest.approx(est.score(sample), abs=1e-8)
    assert results["criterion"] == results["bic"]
    assert selection.best_index_ == int(np.argmin(results["bic"]))


def test_icl_ranks_by_icl(sample: np.ndarray, selection: Any) -> None:
    chosen = select_model(sample, n_components=[2, 3], n_factors=2, criterion="icl", **FAST)
    assert chosen.results_["criterion"] == chosen.results_["icl"]
    assert chosen.best_params_["n_components"] == 3
    reranked = selection.ranked_by("aic")
    assert reranked.results_["criterion"] == selection.results_["aic"]
    assert reranked.best_index_ == int(np.argmin(selection.results_["aic"]))
    assert reranked.estimators_ is selection.estimators_
    with pytest.raises(ValueError, match="criterion"):
        selection.ranked_by("bayes")


def test_warm_starts_never_end_below_the_cold_fits(
    numpy_selected: None, sample: np.ndarray
) -> None:
    grid = {"n_components": range(1, 5), "n_factors": 2, "n_init": 1, "random_state": 3}
    warm = select_model(sample, warm_start=True, **grid)
    cold = select_model(sample, warm_start=False, **grid)
    gains = np.subtract(warm.results_["log_likelihood"], cold.results_["log_likelihood"])
    assert np.all(gains >= -1e-12)


def test_the_split_start_keeps_the_latent_mixture_moments(
    numpy_selected: None, sample: np.ndarray
) -> None:
    est = HMoG(2, 2, **FAST).fit(sample)
    start = split_start(est)
    assert start.weights.shape == (3,)

    def moments(weights: Any, means: Any, covs: Any) -> tuple[np.ndarray, np.ndarray]:
        mean = weights @ means
        second = np.einsum("k,kij->ij", weights, covs + means[:, :, None] * means[:, None, :])
        return mean, second - np.outer(mean, mean)

    before = moments(est.weights_, est.means_, est.covariances_)
    after = moments(start.weights, start.means, start.covariances)
    np.testing.assert_allclose(after[0], before[0], atol=1e-12)
    np.testing.assert_allclose(after[1], before[1], atol=1e-12)
    assert np.all(np.linalg.eigvalsh(start.covariances) > 0)


def test_the_plot_has_one_line_per_d_and_marks_the_best(selection: Any) -> None:
    pytest.importorskip("matplotlib")
    import matplotlib

    matplotlib.use("Agg")
    ax = selection.plot()
    assert len(ax.lines) == 3  # d = 1, d = 2, the best point
    assert "BIC" in ax.get_ylabel()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"criterion": "loglik"}, "criterion"),
        ({"n_components": [0, 2]}, "n_components"),
        ({"n_factors": []}, "n_factors"),
        ({"n_components": 2, "noise": "diagonal", "n_factors": 1, "n_init": "x"}, "n_init"),
    ],
)
def test_bad_arguments_are_refused_by_name(
    numpy_selected: None, sample: np.ndarray, kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        select_model(sample, **kwargs)


def test_the_criterion_is_keyword_only(numpy_selected: None, sample: np.ndarray) -> None:
    with pytest.raises(TypeError):
        hx.select_model(sample, [2], [1], "bic")


def test_dask_arrays_give_the_in_memory_selection(numpy_selected: None, sample: np.ndarray) -> None:
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    grid = {"n_components": [1, 2], "n_factors": 1, "n_init": 1, "random_state": 0}
    memory = select_model(sample, **grid)
    lazy = select_model(da.from_array(sample, chunks=(60, 6)), **grid)
    np.testing.assert_allclose(lazy.results_["bic"], memory.results_["bic"], rtol=1e-9)
    assert lazy.best_params_ == memory.best_params_
