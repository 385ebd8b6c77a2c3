"""One EM engine for every model with closed-form EM: factor analysis, PPCA, Gaussian mixtures.

The chunked, GEMM-shaped E-step of each model is checked against its per-row dense
``mean_posterior_statistics`` and ``average_log_observable_density``; the engine's EM against
the models' own one-step ``expectation_maximization``, against scikit-learn's
``GaussianMixture`` (same algorithm from the same start: the same iterates) and
``FactorAnalysis`` (the same maximum), and across the in-memory, Dask and online drivers.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp.em import em_steps, expectation, fit_em, observable_statistics
from hmog_xp.harmoniums import AnalyticMixture, LinearGaussianModel, Mixture
from hmog_xp.scale import fit_online
from tests.helpers import assert_close, to_numpy

MODELS = ["fa", "ppca", "gmm-full", "gmm-diagonal"]


def _data(n: int = 240, p: int = 5, seed: int = 3) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[4.0, 0.0], [-4.0, 1.0], [0.0, -4.0]])
    latent = centres[rng.integers(0, 3, size=n)] + 0.6 * rng.normal(size=(n, 2))
    return latent @ rng.normal(size=(p, 2)).T + rng.uniform(0.3, 0.8, p) * rng.normal(size=(n, p))


def _problem(xp, kind: str, n: int = 240):
    data = _data(n)
    xs = xp.asarray(data)
    if kind == "fa":
        model = hx.factor_analysis(5, 2)
    elif kind == "ppca":
        model = hx.principal_component_analysis(5, 2)
    else:
        rep = hx.PositiveDefinite() if kind == "gmm-full" else hx.Diagonal()
        model = AnalyticMixture(hx.Normal(5, rep), 3)
    if isinstance(model, Mixture):
        params = model.initialize_from_sample(2, xs)
    else:
        params = model.initialize_from_sample(2, xs, 0.0)
    return model, params, xs


@pytest.mark.star_on_jax
@pytest.mark.parametrize("kind", MODELS)
@pytest.mark.parametrize("chunk_size", [1, 37, 10_000])
def test_chunked_estep_equals_the_per_row_formulas(xp, kind, chunk_size) -> None:
    model, params, xs = _problem(xp, kind)
    statistics = observable_statistics(model, xs, chunk_size)
    means, log_likelihood = expectation(model, params, xs, statistics, chunk_size)
    assert_close(
        means, to_numpy(model.mean_posterior_statistics(params, xs)), xp=xp, rtol=1e-9, atol=1e-11
    )
    reference = to_numpy(model.average_log_observable_density(params, xs))
    assert_close(log_likelihood, reference, xp=xp, rtol=1e-10, atol=1e-11)


@pytest.mark.parametrize("kind", MODELS)
def test_engine_em_follows_the_models_em_step_and_never_decreases(xp, kind) -> None:
    model, params, xs = _problem(xp, kind)
    fit = fit_em(model, params, xs, max_iter=8, tol=0.0, chunk_size=50)
    reference = params
    for _ in range(8):
        reference = model.expectation_maximization(reference, xs)
    assert fit.n_iter == 8
    assert_close(fit.params, to_numpy(reference), xp=xp, rtol=1e-7, atol=1e-9)
    assert_close(
        em_steps(model, params, xs, 8, chunk_size=50),
        to_numpy(reference),
        xp=xp,
        rtol=1e-7,
        atol=1e-9,
    )
    history = np.asarray(fit.log_likelihoods)
    assert np.all(np.diff(history) >= -1e-10 * np.abs(history[1:]))


def test_gaussian_mixture_em_equals_scikit_learn_from_the_same_start(xp) -> None:
    mixture_module = pytest.importorskip("sklearn.mixture")
    model, params, xs = _problem(xp, "gmm-full")
    weights, means, covariances = (to_numpy(part) for part in model.to_generative(params))
    reference = mixture_module.GaussianMixture(
        3,
        covariance_type="full",
        reg_covar=0.0,
        max_iter=5,
        tol=0.0,
        weights_init=weights,
        means_init=means,
        precisions_init=np.linalg.inv(covariances),
    )
    with pytest.warns(Warning, match="converge"):  # five iterations do not converge
        reference.fit(_data())
    # scikit-learn's fit ends with an E-step, then reports the M-step before it: its
    # parameters are those after five M-steps.
    fit = fit_em(model, params, xs, max_iter=5, tol=0.0)
    ours = model.to_generative(fit.params)
    assert_close(ours.weights, reference.weights_, xp=xp, rtol=1e-8, atol=1e-10)
    assert_close(ours.means, reference.means_, xp=xp, rtol=1e-8, atol=1e-9)
    assert_close(ours.covariances, reference.covariances_, xp=xp, rtol=1e-8, atol=1e-9)


@pytest.mark.parametrize("kind", ["fa", "gmm-full", "gmm-diagonal"])
def test_stabilisers_are_floors_that_leave_clear_variances_alone(xp, kind) -> None:
    model, params, xs = _problem(xp, kind)
    means = model.mean_posterior_statistics(params, xs)
    exact = model.to_generative(model.mstep(means))
    if kind == "fa":
        floor = float(np.sort(to_numpy(exact.noise))[1])  # between the two smallest variances
        floored = model.to_generative(model.mstep(means, hx.Regularization(0.5, floor, 0.0)))
        expected = np.maximum(to_numpy(exact.noise), floor)
        assert_close(floored.noise, expected, xp=xp, rtol=1e-9, atol=1e-12)
        assert_close(floored.loadings, to_numpy(exact.loadings), xp=xp, rtol=1e-9, atol=1e-12)
        return
    covariances = to_numpy(exact.covariances)
    floor = float(np.median(np.linalg.eigvalsh(covariances)))
    floored = model.to_generative(model.mstep(means, hx.Regularization(floor, 0.0, 0.0)))
    values, vectors = np.linalg.eigh(covariances)
    expected = (vectors * np.maximum(values, floor)[:, None, :]) @ np.swapaxes(vectors, -1, -2)
    assert_close(floored.covariances, expected, xp=xp, rtol=1e-9, atol=1e-12)
    assert_close(floored.means, to_numpy(exact.means), xp=xp, rtol=1e-9, atol=1e-12)
    tiny = model.to_generative(model.mstep(means, hx.Regularization(1e-12, 1e-12, 0.0)))
    assert_close(tiny.covariances, covariances, xp=xp, rtol=1e-9, atol=1e-12)


@functools.cache
def _sklearn_factor_analysis() -> Any:
    """scikit-learn's long factor-analysis run on ``_data()`` (4 s: once, not per backend)."""
    decomposition = pytest.importorskip("sklearn.decomposition")
    return decomposition.FactorAnalysis(2, tol=1e-12, max_iter=20_000).fit(_data())


def test_factor_analysis_em_reaches_scikit_learns_maximum(xp) -> None:
    model, params, xs = _problem(xp, "fa")
    fit = fit_em(model, params, xs, max_iter=5000, tol=1e-13, accelerate=True)
    reference = _sklearn_factor_analysis()
    ours = float(model.average_log_observable_density(fit.params, xs))
    # The surface is flat to 1e-9 nats along a ridge of the noise variances (scikit-learn's
    # own long run stops 1e-9 below ours): compare the maximum, and the noise loosely.
    assert ours >= reference.score(_data()) - 1e-8
    assert ours == pytest.approx(reference.score(_data()), abs=1e-7)
    generative = model.to_generative(fit.params)
    assert_close(generative.noise, reference.noise_variance_, xp=xp, rtol=1e-2, atol=1e-6)


@pytest.mark.parametrize("kind", ["fa", "gmm-diagonal"])
def test_standardized_em_equals_em_on_standardized_data(xp, kind) -> None:
    model, params, xs = _problem(xp, kind)
    scale = xp.asarray(np.array([1e-3, 1.0, 50.0, 2.0, 1e4]))
    moved = xs * scale + 7.0
    data_params = hx.Standardization(xp.asarray(np.full(5, 7.0)), scale).params_to_data(
        model, params
    )
    fit = fit_em(model, data_params, moved, max_iter=6, tol=0.0, standardize=True)
    standardization = hx.Standardization.from_data(moved)
    by_hand = fit_em(
        model,
        standardization.params_from_data(model, data_params),
        standardization.standardize(moved),
        max_iter=6,
        tol=0.0,
    )
    shift = standardization.log_density_shift()
    assert_close(
        model.log_observable_density(fit.params, moved),
        to_numpy(model.log_observable_density(by_hand.params, standardization.standardize(moved)))
        + shift,
        xp=xp,
        rtol=1e-8,
        atol=1e-8,
    )


@pytest.mark.parametrize("kind", ["ppca", "gmm-full"])
def test_online_em_with_whole_batches_is_batch_em(xp, kind) -> None:
    model, params, xs = _problem(xp, kind)
    # γ_t = min(1, 1e6 (t + 1)^−0.6) = 1: every update replaces the statistics.
    online = fit_online(
        model,
        params,
        xs,
        batch_size=xs.shape[0],
        n_epochs=4,
        shuffle=False,
        step_size=(1e6, 1.0, 0.6),
    )
    batch = fit_em(model, params, xs, max_iter=4, tol=0.0)
    assert_close(
        model.log_observable_density(online.params, xs),
        to_numpy(model.log_observable_density(batch.params, xs)),
        xp=xp,
        rtol=1e-9,
        atol=1e-9,
    )


def test_models_without_closed_form_em_get_a_type_error_naming_those_with_it(xp) -> None:
    xs = xp.asarray(_data())
    restricted = LinearGaussianModel(5, hx.Diagonal(), 2, hx.Diagonal())
    shared = Mixture(hx.Normal(5, hx.PositiveDefinite()), 3, sub_rep=hx.Diagonal())
    for model in (restricted, shared):
        params = model.initialize(0, xp=xp)
        with pytest.raises(TypeError, match="AnalyticLinearGaussianModel \\(factor_analysis"):
            fit_em(model, params, xs)
        with pytest.raises(hx.NoClosedFormEMError, match="train other models with fit_gradient"):
            fit_online(model, params, xs)
        assert not isinstance(model, hx.ClosedFormEM)
    assert isinstance(hx.factor_analysis(5, 2), hx.ClosedFormEM)
