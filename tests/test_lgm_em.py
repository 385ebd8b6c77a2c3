"""Linear Gaussian models: whitening, EM, starting points, scikit-learn, cross-backend identity.

Oracles: the EM step written in NumPy from the textbook E-step (posterior moments) and the
closed-form M-step with a free latent prior (DESIGN §4.4), compared through rotation-invariant
quantities (``p(x)``, ``AAᵀ``, ``Ψ``); ``sklearn.decomposition.FactorAnalysis`` and ``PCA``
(whose ``score`` is the probabilistic-PCA log-likelihood) for the fitted maxima;
``scipy.stats.multivariate_normal`` for ``log p(x)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import given
from scipy import stats
from sklearn.datasets import load_wine
from sklearn.decomposition import PCA, FactorAnalysis

import hmog_xp as hx
from hmog_xp._backend import namespace_for
from hmog_xp.harmoniums import (
    AnalyticLinearGaussianModel,
    LinearGaussianModel,
    factor_analysis,
    principal_component_analysis,
)
from tests.helpers import assert_close, to_numpy
from tests.strategies import REPS
from tests.test_lgm import (
    FEW,
    STRUCTURE_IDS,
    STRUCTURES,
    LGMCase,
    asarray,
    lgm_cases,
    make_case,
    readable_noise,
    statistic_np,
)

REP_IDS = [type(r).__name__ for r in REPS]


def project_np(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """Frobenius projection onto the rep: keep / diagonal / mean of the diagonal times I."""
    if isinstance(rep, hx.PositiveDefinite):
        return matrix
    diagonal = np.diag(matrix)
    if isinstance(rep, hx.Diagonal):
        return np.diag(diagonal)
    return diagonal.mean() * np.eye(len(matrix))


def em_step_np(case: LGMCase, xs: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One EM step from the generative form: ``(marginal mean, marginal covariance, Ψ)``."""
    mean, cov = case.posterior_moments(xs)
    n = len(xs)
    obs_mean, lat_mean = xs.mean(axis=0), mean.mean(axis=0)
    lat_cov = cov + mean.T @ mean / n - np.outer(lat_mean, lat_mean)
    cross = xs.T @ mean / n - np.outer(obs_mean, lat_mean)
    loadings = cross @ np.linalg.inv(lat_cov)
    centred = xs - obs_mean
    noise = project_np(case.model.obs_rep, centred.T @ centred / n - loadings @ cross.T)
    return obs_mean, loadings @ lat_cov @ loadings.T + noise, noise


def assert_standard_prior(model: Any, params: Any, xp: Any) -> None:
    generative = model.to_generative(params)
    assert_close(generative.latent_mean, np.zeros(model.lat_dim), xp=xp, atol=1e-9)
    assert_close(generative.latent_covariance, np.eye(model.lat_dim), xp=xp, atol=1e-9)


# -- whitening and one EM step --------------------------------------------------------------------


@FEW
@given(case=lgm_cases(analytic=True))
def test_whiten_prior_preserves_p_x_and_standardises_the_prior(xp: Any, case: LGMCase) -> None:
    model, d = case.model, case.model.lat_dim
    means = asarray(xp, case.means)
    whitened = model.whiten_prior(means)
    obs, cross, lat = model.split_coords(whitened)
    assert_close(obs, case.means[: model.obs_man.dim], xp=xp)
    assert_close(
        lat,
        np.concatenate([np.zeros(d), statistic_np(hx.PositiveDefinite(), np.eye(d))]),
        xp=xp,
        atol=1e-12,
    )
    # the whitened cross moment C L⁻ᵀ satisfies (C L⁻ᵀ)(C L⁻ᵀ)ᵀ = C S⁻¹ Cᵀ = A S Aᵀ
    a, s = case.loadings, case.latent_covariance
    assert_close(cross @ xp.matrix_transpose(cross), a @ s @ a.T, xp=xp, rtol=1e-6, atol=1e-9)
    params = model.to_natural(whitened)
    assert_standard_prior(model, params, xp)
    expected = stats.multivariate_normal(*case.marginal).logpdf(case.points).reshape(-1)
    assert_close(
        model.log_observable_density(params, asarray(xp, case.points)), expected, xp=xp, rtol=1e-6
    )


@FEW
@given(case=lgm_cases(analytic=True))
def test_em_step_is_the_closed_form_m_step(xp: Any, case: LGMCase) -> None:
    model = case.model
    params, xs = asarray(xp, case.natural), asarray(xp, case.points)
    new = model.expectation_maximization(params, xs)
    composed = model.to_natural(model.whiten_prior(model.mean_posterior_statistics(params, xs)))
    assert_close(new, composed, xp=xp, rtol=1e-12, atol=1e-12)
    assert_standard_prior(model, new, xp)
    marginal_mean, marginal_cov, noise = em_step_np(case, case.points)
    generative = model.to_generative(new)
    assert_close(generative.bias, marginal_mean, xp=xp, rtol=1e-6, atol=1e-9)
    assert_close(
        generative.noise, readable_noise(model.obs_rep, noise), xp=xp, rtol=1e-6, atol=1e-9
    )
    gram = generative.loadings @ xp.matrix_transpose(generative.loadings)
    assert_close(gram, marginal_cov - noise, xp=xp, rtol=1e-6, atol=1e-9)
    before = model.average_log_observable_density(params, xs)
    after = model.average_log_observable_density(new, xs)
    expected_after = stats.multivariate_normal(marginal_mean, marginal_cov).logpdf(case.points)
    assert_close(after, np.asarray(expected_after.mean()), xp=xp, rtol=1e-6)
    assert float(after) >= float(before) - 1e-10 * abs(float(before))


@FEW
@given(case=lgm_cases(analytic=True))
def test_em_never_decreases_the_log_likelihood(xp: Any, case: LGMCase) -> None:
    model = case.model
    params, xs = asarray(xp, case.natural), asarray(xp, case.points)
    trajectory = [float(model.average_log_observable_density(params, xs))]
    for _ in range(10):
        params = model.expectation_maximization(params, xs)
        trajectory.append(float(model.average_log_observable_density(params, xs)))
    steps = np.diff(trajectory)
    assert np.all(steps >= -1e-10 * np.abs(trajectory[1:])), trajectory
    assert trajectory[-1] > trajectory[0]  # the data were not drawn from the model


# -- starting points -------------------------------------------------------------------------------


@pytest.mark.parametrize(("obs_rep", "pst_rep"), STRUCTURES, ids=STRUCTURE_IDS)
def test_initialize(xp: Any, obs_rep: hx.CovarianceRep, pst_rep: hx.CovarianceRep) -> None:
    model = LinearGaussianModel(4, obs_rep, 2, pst_rep)
    params = model.initialize(3, xp=xp)
    assert tuple(params.shape) == (model.dim,)
    assert_close(params, model.initialize(3, xp=xp), xp=xp, rtol=0, atol=0)
    assert not np.allclose(to_numpy(params), to_numpy(model.initialize(4, xp=xp)))
    loadings, bias, noise, mean, cov = (to_numpy(a) for a in model.to_generative(params))
    assert np.all(np.isfinite(loadings))
    assert 0 < np.abs(loadings).max() < 1.0
    np.testing.assert_allclose(bias, np.zeros(4), atol=1e-12)
    np.testing.assert_allclose(noise, readable_noise(obs_rep, np.eye(4)), atol=1e-12)
    assert np.all(np.linalg.eigvalsh(cov) > 0)
    if isinstance(pst_rep, hx.PositiveDefinite):  # the prior is exactly N(0, I)
        np.testing.assert_allclose(mean, np.zeros(2), atol=1e-12)
        np.testing.assert_allclose(cov, np.eye(2), atol=1e-12)
    zero = model.to_generative(model.initialize(3, 0.0, xp=xp)).loadings
    assert_close(zero, np.zeros((4, 2)), xp=xp, atol=0)


def ppca_np(xs: np.ndarray, d: int) -> tuple[np.ndarray, np.ndarray, float]:
    """Tipping & Bishop's ML fit: ``(b, A Aᵀ, σ²)`` from the 1/N sample covariance."""
    mean = xs.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(xs.T, bias=True))
    values, vectors = values[::-1], vectors[:, ::-1]
    variance = values[d:].mean()
    top = vectors[:, :d] * (values[:d] - variance)
    return mean, top @ vectors[:, :d].T, variance


@pytest.mark.parametrize(("obs_rep", "pst_rep"), STRUCTURES, ids=STRUCTURE_IDS)
def test_initialize_from_sample_is_the_ppca_fit(
    xp: Any, obs_rep: hx.CovarianceRep, pst_rep: hx.CovarianceRep
) -> None:
    rng = np.random.default_rng(8)
    xs = rng.normal(size=(60, 4)) @ rng.normal(size=(4, 4)) + 3.0  # not centred
    model = LinearGaussianModel(4, obs_rep, 2, pst_rep)
    bias, gram, variance = ppca_np(xs, 2)
    params = model.initialize_from_sample(0, asarray(xp, xs), shape=0.0)
    generative = model.to_generative(params)
    loadings = generative.loadings
    assert_close(generative.bias, bias, xp=xp)
    assert_close(loadings @ xp.matrix_transpose(loadings), gram, xp=xp)
    assert_close(generative.noise, readable_noise(obs_rep, variance * np.eye(4)), xp=xp)
    if isinstance(pst_rep, hx.PositiveDefinite):  # latent prior N(0, I): p(x) is the PPCA fit
        assert_close(generative.latent_mean, np.zeros(2), xp=xp, atol=1e-10)
        assert_close(generative.latent_covariance, np.eye(2), xp=xp)
        expected = stats.multivariate_normal(bias, gram + variance * np.eye(4)).logpdf(xs)
        assert_close(
            model.average_log_observable_density(params, asarray(xp, xs)),
            np.asarray(expected.mean()),
            xp=xp,
        )
    # jitter moves the loadings only
    jittered = model.to_generative(model.initialize_from_sample(0, asarray(xp, xs), shape=0.5))
    assert_close(jittered.bias, bias, xp=xp)
    assert not np.allclose(to_numpy(jittered.loadings), to_numpy(loadings))


# -- agreement with scikit-learn ------------------------------------------------------------------


def synthetic_fa_data() -> np.ndarray:
    """400 draws of a known 6-dimensional, 2-factor model (not centred)."""
    rng = np.random.default_rng(1)
    loadings = rng.normal(size=(6, 2))
    noise = rng.uniform(0.2, 1.0, size=6)
    bias = rng.normal(size=6)
    factors = rng.normal(size=(400, 2))
    return factors @ loadings.T + bias + rng.normal(size=(400, 6)) * np.sqrt(noise)


def wine_data() -> np.ndarray:
    data = load_wine().data
    return (data - data.mean(axis=0)) / data.std(axis=0)


DATASETS = {"synthetic": synthetic_fa_data, "wine": wine_data}


def fit_by_em(
    model: AnalyticLinearGaussianModel, xs: Any, max_steps: int
) -> tuple[Any, list[float]]:
    """EM from the PPCA start until the log-likelihood changes by < 1e-12 (or max_steps)."""
    params = model.initialize_from_sample(0, xs, shape=0.0)
    trajectory = [float(model.average_log_observable_density(params, xs))]
    for _ in range(max_steps):
        params = model.expectation_maximization(params, xs)
        trajectory.append(float(model.average_log_observable_density(params, xs)))
        if abs(trajectory[-1] - trajectory[-2]) < 1e-12:
            break
    return params, trajectory


# NumPy only: convergence takes ~100-200 EM steps (about 0.1 s on NumPy, tens of seconds on
# eager JAX); test_em_trajectory_identical_across_backends runs EM on every backend.
@pytest.mark.parametrize("dataset", DATASETS)
def test_factor_analysis_em_reaches_the_sklearn_maximum(dataset: str) -> None:
    xs = DATASETS[dataset]()
    model = factor_analysis(xs.shape[1], 2)
    params, trajectory = fit_by_em(model, xs, max_steps=3000)
    assert len(trajectory) < 3001, "EM did not converge"
    assert np.all(np.diff(trajectory) >= -1e-12 * abs(trajectory[-1]))
    sklearn_fa = FactorAnalysis(2, tol=1e-12, max_iter=20000, svd_method="lapack").fit(xs)
    reference = sklearn_fa.score(xs)
    assert abs(trajectory[-1] - reference) <= 1e-6 * abs(reference)
    generative = model.to_generative(params)
    covariance = generative.loadings @ generative.loadings.T + np.diag(generative.noise)
    np.testing.assert_allclose(covariance, sklearn_fa.get_covariance(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(generative.bias, xs.mean(axis=0), atol=1e-9)


# NumPy only (eager JAX spends seconds compiling for these shapes); the PPCA start itself is
# checked on every backend by test_initialize_from_sample_is_the_ppca_fit.
@pytest.mark.parametrize("dataset", DATASETS)
def test_ppca_start_is_the_em_fixed_point_and_matches_sklearn(dataset: str) -> None:
    data = DATASETS[dataset]()
    n, p = data.shape
    model, xs = principal_component_analysis(p, 2), data
    params = model.initialize_from_sample(0, xs, shape=0.0)
    start = float(model.average_log_observable_density(params, xs))
    stepped = model.expectation_maximization(params, xs)
    assert abs(float(model.average_log_observable_density(stepped, xs)) - start) <= 1e-10 * abs(
        start
    )
    pca = PCA(2, svd_solver="full").fit(data)
    # scikit-learn normalises the sample covariance by n - 1, maximum likelihood by n
    ratio = (n - 1) / n
    np.testing.assert_allclose(
        model.to_generative(params).noise, pca.noise_variance_ * ratio, rtol=1e-9
    )
    covariance = ratio * pca.get_covariance()
    expected = stats.multivariate_normal(pca.mean_, covariance).logpdf(data).mean()
    assert abs(start - expected) <= 1e-10 * abs(expected)
    assert abs(start - pca.score(data)) <= 1e-5 * abs(start)


def test_em_trajectory_identical_across_backends(xp: Any) -> None:
    """Twenty EM steps on every backend follow the NumPy trajectory."""
    data = synthetic_fa_data()
    model = factor_analysis(6, 2)
    loadings = np.random.default_rng(0).normal(size=(6, 2))  # the same start everywhere

    def run(namespace: Any) -> tuple[Any, list[float]]:
        xs = namespace.asarray(data)
        params = model.from_generative(
            namespace.asarray(loadings), namespace.mean(xs, axis=0), namespace.asarray(np.ones(6))
        )
        trajectory = []
        for _ in range(20):
            params = model.expectation_maximization(params, xs)
            trajectory.append(float(model.average_log_observable_density(params, xs)))
        return params, trajectory

    reference_params, reference = run(namespace_for("numpy"))
    params, trajectory = run(xp)
    np.testing.assert_allclose(trajectory, reference, rtol=1e-8)
    assert_close(params, to_numpy(reference_params), xp=xp, rtol=1e-8, atol=1e-8)
    assert np.all(np.diff(reference) >= 0)


# -- cross-backend identity -----------------------------------------------------------------------


def _lgm_outputs(rep: hx.CovarianceRep, xp: Any) -> dict[str, Any]:
    model = AnalyticLinearGaussianModel(4, rep, 2)
    case = make_case(model, seed=REPS.index(rep), n_points=10)
    params, xs = xp.asarray(case.natural), xp.asarray(case.points)
    means = model.to_mean(params)
    general = make_case(LinearGaussianModel(4, rep, 2, hx.Diagonal()), seed=3, n_points=10)
    return {
        "log density": model.log_observable_density(params, xs),
        "to_mean": means,
        "to_natural": model.to_natural(xp.asarray(case.means)),
        "whiten_prior": model.whiten_prior(means),
        "em step": model.expectation_maximization(params, xs),
        "posterior statistics": model.mean_posterior_statistics(params, xs),
        "restricted log density": general.model.log_observable_density(
            xp.asarray(general.natural), xs
        ),
        "restricted to_mean": general.model.to_mean(xp.asarray(general.natural)),
    }


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_lgm_identical_across_backends(xp: Any, rep: hx.CovarianceRep) -> None:
    reference = _lgm_outputs(rep, namespace_for("numpy"))
    actual = _lgm_outputs(rep, xp)
    for name, value in actual.items():
        try:
            assert_close(value, to_numpy(reference[name]), xp=xp, rtol=1e-10, atol=1e-10)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
