"""The estimator's starting points: partitions, factor analysis, cluster moments.

Oracles: scikit-learn's ``FactorAnalysis`` (the profile-likelihood iteration reaches its
optimum), the Tipping-Bishop closed form of probabilistic PCA (NumPy), the pooled group
scatter by a NumPy loop, and the NumPy start for every other backend (same seed, same
start).
"""

from __future__ import annotations

import random
import warnings
from typing import Any

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp.estimator._init import _candidate, starting_point
from hmog_xp.estimator._partition import factor_loadings, random_partition, within_covariance
from hmog_xp.estimator._training import build_model
from tests.helpers import assert_close, to_numpy


def _factor_sample(n: int = 400, p: int = 8, d: int = 2, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    loadings = rng.normal(size=(p, d))
    noise = rng.uniform(0.2, 1.0, size=p)
    return rng.normal(size=(n, d)) @ loadings.T + rng.normal(size=(n, p)) * np.sqrt(noise)


def _mixture_sample(n: int = 240, seed: int = 5) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    latent = centres[rng.integers(0, 3, size=n)] + 0.5 * rng.normal(size=(n, 2))
    data = latent @ rng.normal(size=(6, 2)).T + 0.4 * rng.normal(size=(n, 6))
    return (data - data.mean(axis=0)) / data.std(axis=0)


def test_factor_loadings_reach_the_factor_analysis_optimum(xp: Any) -> None:
    from sklearn.decomposition import FactorAnalysis

    data = _factor_sample()
    centred = data - data.mean(axis=0)
    covariance = centred.T @ centred / data.shape[0]
    loadings, noise = factor_loadings(xp.asarray(covariance), 2, True, 1e-6, 3000)
    fa = FactorAnalysis(2, tol=1e-12, max_iter=10_000, svd_method="lapack").fit(data)
    expected = fa.components_.T @ fa.components_ + np.diag(fa.noise_variance_)
    ours = to_numpy(loadings) @ to_numpy(loadings).T + np.diag(to_numpy(noise))
    np.testing.assert_allclose(ours, expected, rtol=1e-5, atol=1e-6)
    assert_close(noise, fa.noise_variance_, rtol=1e-4)


def test_isotropic_loadings_are_the_ppca_closed_form(xp: Any) -> None:
    data = _factor_sample()
    centred = data - data.mean(axis=0)
    covariance = centred.T @ centred / data.shape[0]
    loadings, noise = factor_loadings(xp.asarray(covariance), 2, False, 1e-6, 30)
    values, vectors = np.linalg.eigh(covariance)
    variance = values[:-2].mean()
    expected = vectors[:, -2:] @ np.diag(values[-2:] - variance) @ vectors[:, -2:].T
    dense = to_numpy(loadings) @ to_numpy(loadings).T
    np.testing.assert_allclose(dense, expected, rtol=1e-10, atol=1e-12)
    assert_close(noise, np.full(8, variance), rtol=1e-10)


def test_more_factors_than_columns_pad_with_zero_loadings(xp: Any) -> None:
    covariance = np.array([[2.0, 0.5], [0.5, 1.0]])
    loadings, noise = factor_loadings(xp.asarray(covariance), 3, True, 1e-6, 10)
    assert tuple(loadings.shape) == (2, 3)
    assert_close(loadings[:, 2], np.zeros(2))
    assert np.all(to_numpy(noise) >= 1e-6)


def test_within_covariance_is_the_pooled_group_scatter(xp: Any) -> None:
    data = _factor_sample(n=60)
    labels = np.arange(60) % 3
    one_hot = (labels[:, None] == np.arange(3)[None, :]).astype(np.float64)
    expected = np.zeros((8, 8))
    for group in range(3):
        residual = data[labels == group] - data[labels == group].mean(axis=0)
        expected += residual.T @ residual
    actual = within_covariance(xp.asarray(data), xp.asarray(one_hot))
    assert_close(actual, expected / 60, rtol=1e-12, atol=1e-14)


def test_random_partition_is_one_hot_and_depends_on_the_seed_only(xp: Any) -> None:
    like = xp.asarray(np.zeros((1, 1)))
    labels = random_partition(50, 4, random.Random(11), like)
    reference = random_partition(50, 4, random.Random(11), np.zeros((1, 1)))
    assert_close(labels, reference)
    assert_close(xp.sum(labels, axis=1), np.ones(50))


@pytest.mark.star_on_jax
@pytest.mark.parametrize("noise", ["diagonal", "isotropic", "full"])
@pytest.mark.parametrize("variant", ["analytic", "symmetric", "differentiable"])
@pytest.mark.parametrize("init", ["kmeans++", "random"])
def test_every_backend_starts_where_numpy_does(
    xp: Any, variant: str, noise: str, init: str
) -> None:
    data = _mixture_sample()
    model = build_model(variant, noise, "diagonal", 6, 2, 3)
    reference = starting_point(model, data, init, 17, 1e-6, 1e-6)
    params = starting_point(model, xp.asarray(data), init, 17, 1e-6, 1e-6)
    assert_close(params, reference, rtol=1e-8, atol=1e-10)
    assert np.isfinite(float(model.average_log_observable_density(params, xp.asarray(data))))


def test_kmeans_start_is_the_more_likely_of_its_two_candidates() -> None:
    data = _mixture_sample()
    model = hx.analytic_hmog(6, hx.Diagonal(), 2, 3)
    chosen = starting_point(model, data, "kmeans++", 4, 1e-6, 1e-6)
    candidates = [_candidate(model, data, kind, 4, 1e-6, 1e-6) for kind in ("partition", "scores")]
    scores = [float(model.average_log_observable_density(c, data)) for c in candidates]
    np.testing.assert_array_equal(chosen, candidates[int(np.argmax(scores))])
    assert not np.array_equal(candidates[0], candidates[1])


def test_float32_data_start_where_float64_data_do(xp: Any) -> None:
    data = _mixture_sample()
    model = hx.analytic_hmog(6, hx.Diagonal(), 2, 3)
    reference = starting_point(model, data, "kmeans++", 2, 1e-6, 1e-6)
    single = starting_point(model, xp.asarray(data, dtype=xp.float32), "kmeans++", 2, 1e-6, 1e-6)
    assert single.dtype == xp.float32
    assert_close(single, reference.astype(np.float32), rtol=2e-4, atol=2e-4)


def test_breast_cancer_factor_analysis_start_reaches_sklearns_maximum(numpy_selected: None) -> None:
    # EM from the PPCA loadings stops 0.95 nats/obs below this optimum (docs/performance.md).
    datasets = pytest.importorskip("sklearn.datasets")
    from sklearn.decomposition import FactorAnalysis
    from sklearn.exceptions import ConvergenceWarning

    raw = datasets.load_breast_cancer().data
    data = (raw - raw.mean(axis=0)) / raw.std(axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        reference = FactorAnalysis(4, tol=1e-8, max_iter=10_000).fit(data).score(data)
    model = hx.analytic_hmog(30, hx.Diagonal(), 4, 1)
    start = starting_point(model, data, "kmeans++", 0, 1e-6, 1e-6)
    fit = hx.fit_em(model, start, data, max_iter=300, tol=0.0, accelerate=True)
    assert fit.log_likelihoods[-1] > reference - 1e-3
