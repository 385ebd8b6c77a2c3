"""float32 EM reaches the float64 optimum; the stopping rule resists rounding plateaus.

Oracles: float64 EM from the same start (the float32 fit's log-likelihood evaluated in
float64), and hand-made log-likelihood histories for the rule.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler

import hmog_xp as hx
from hmog_xp.em import (
    EM_NOISE_WINDOW,
    EM_WINDOW,
    NOISE_ULPS,
    expectation,
    fit_em,
    has_converged,
    observable_statistics,
)
from hmog_xp.harmoniums.stabilizers import Regularization
from tests.helpers import to_numpy, xp_name

EPS32 = float(np.finfo(np.float32).eps)


def _wine() -> tuple[Any, np.ndarray, np.ndarray]:
    data = StandardScaler().fit_transform(load_wine().data)
    model = hx.analytic_hmog(data.shape[1], hx.Diagonal(), 2, 3)
    return model, data, model.initialize_from_sample(0, data, 0.0)


def test_float32_em_ends_at_the_float64_optimum(xp: Any) -> None:
    model, data, start = _wine()
    regularization = Regularization(0.0, 1e-6, 0.0)
    wide = fit_em(model, start, data, max_iter=2000, tol=1e-8, regularization=regularization)
    xs = xp.asarray(data.astype(np.float32))
    narrow = fit_em(
        model,
        xp.asarray(start.astype(np.float32)),
        xs,
        max_iter=2000,
        tol=1e-8,
        regularization=regularization,
    )
    assert narrow.params.dtype == xp.float32
    assert narrow.converged
    reached = float(
        model.average_log_observable_density(to_numpy(narrow.params).astype(np.float64), data)
    )
    optimum = float(model.average_log_observable_density(wide.params, data))
    assert optimum - reached < 5e-4  # nats per observation
    # the float32 history is the float64-accumulated log-likelihood of the float32 iterates
    assert abs(narrow.log_likelihoods[-1] - reached) < 1e-5


def test_float64_em_is_still_monotone(xp: Any) -> None:
    model, data, start = _wine()
    fit = fit_em(model, xp.asarray(start), xp.asarray(data), max_iter=60, tol=0.0)
    assert np.all(np.diff(fit.log_likelihoods) >= -1e-10)


def test_rule_does_not_stop_on_a_rounding_plateau() -> None:
    level = -14.0
    rising = [level - 1e-3 * 0.9**t for t in range(40)]
    # one step that rounding made flat, then one tiny decrease, amid clear progress
    plateau = [*rising, rising[-1], rising[-1] - 2 * EPS32 * abs(level)]
    assert not has_converged(plateau[:-1], 1e-8, window=EM_WINDOW, eps=EPS32)
    assert not has_converged(plateau, 1e-8, window=EM_WINDOW, eps=EPS32)
    # the plain one-step test would have stopped on both
    assert has_converged(plateau[:-1], 1e-8)
    assert has_converged(plateau, 1e-6)


def test_rule_stops_at_the_optimum_below_the_dtypes_resolution() -> None:
    rng = np.random.default_rng(0)
    level = -14.0
    noise = 0.5 * EPS32 * abs(level) * rng.standard_normal(EM_WINDOW + 5)
    history = list(level + noise)  # converged: only rounding noise is left
    assert has_converged(history, 1e-12, window=EM_WINDOW, eps=EPS32)
    assert not has_converged(history, 1e-12)  # without the noise floor it never would
    floor = NOISE_ULPS * EPS32 * abs(level)
    still_moving = [level - 3.0 * floor + 3.0 * floor * t / EM_WINDOW for t in range(EM_WINDOW + 1)]
    assert not has_converged(still_moving, 1e-12, window=EM_WINDOW, eps=EPS32)


def test_rule_defaults_are_the_plain_relative_test() -> None:
    assert not has_converged([-1.0], 1e-3)
    assert has_converged([-1.0, -1.0005], 1e-3)
    assert not has_converged([-1.0, -1.01], 1e-3)
    assert not has_converged([-1.0, -1.0], 1e-3, window=2)  # too short for the window
    assert has_converged([-1.0, -1.0], 0.0)  # tol=0: an exactly repeated value


def _rule(history: list[float], tol: float) -> bool:
    """The rule as the EM drivers apply it to float32 data."""
    return has_converged(history, tol, window=EM_WINDOW, eps=EPS32, noise_window=EM_NOISE_WINDOW)


def test_noise_cannot_satisfy_a_tolerance_below_it() -> None:
    level, climb = -14.0, 1e-6  # per step, well above the float32 noise floor over 60 steps
    history = [level + climb * t for t in range(EM_NOISE_WINDOW + 1)]
    history[-1] = history[-1 - EM_WINDOW]  # noise flattened the last 10 steps
    assert has_converged(history, 1e-9, window=EM_WINDOW)  # the plain window test is fooled
    assert not _rule(history, 1e-9)


def test_the_noise_floor_follows_a_noisier_history() -> None:
    rng = np.random.default_rng(1)
    level = -14.0
    noise = 30.0 * EPS32 * abs(level)  # far above NOISE_ULPS · eps · |ℓ|
    history = list(level + noise * rng.standard_normal(EM_NOISE_WINDOW + 20))
    stops = [_rule(history[:t], 1e-12) for t in range(EM_NOISE_WINDOW + 1, len(history))]
    assert any(stops[:10])  # at the optimum it stops within a few steps
    smooth = [level - 1e-3 * 0.99**t for t in range(EM_NOISE_WINDOW + 1)]  # slow, no noise
    assert not _rule(smooth, 1e-12)


@pytest.mark.parametrize(
    "model",
    [
        hx.analytic_hmog(13, hx.Diagonal(), 3, 3),
        hx.symmetric_hmog(13, hx.Scale(), 3, hx.Diagonal(), 3),
        hx.differentiable_hmog(13, hx.PositiveDefinite(), 3, hx.Diagonal(), 3),
    ],
    ids=["analytic", "symmetric-diagonal", "differentiable-diagonal"],
)
def test_float32_e_step_matches_float64_on_the_same_parameters(xp: Any, model: Any) -> None:
    data = StandardScaler().fit_transform(load_wine().data)
    params = to_numpy(model.initialize_from_sample(0, data, 0.1)).astype(np.float32)
    wide_params = params.astype(np.float64)  # the same parameters, exactly
    statistics = observable_statistics(model, xp.asarray(data.astype(np.float32)), 64)
    assert statistics.dtype == xp.float64  # accumulated in float64 (the harness enables JAX's)
    means, log_likelihood = expectation(
        model, xp.asarray(params), xp.asarray(data.astype(np.float32)), statistics, 64
    )
    assert means.dtype == xp.float32
    reference = model.mean_posterior_statistics(wide_params, data)
    np.testing.assert_allclose(to_numpy(means), reference, rtol=2e-3, atol=2e-4)
    exact = float(model.average_log_observable_density(wide_params, data))
    assert abs(float(log_likelihood) - exact) < 2e-5  # float32 terms, float64 sums


def test_jax_without_float64_falls_back_to_float32() -> None:
    jax = pytest.importorskip("jax")
    import jax.numpy as jnp

    from hmog_xp.em import accumulation_dtype

    model, data, start = _wine()
    previous = jax.config.read("jax_enable_x64")
    jax.config.update("jax_enable_x64", False)
    try:
        assert accumulation_dtype(jnp, jnp.float32) == jnp.float32
        fit = fit_em(
            model,
            jnp.asarray(start.astype(np.float32)),
            jnp.asarray(data.astype(np.float32)),
            max_iter=3,
            regularization=Regularization(0.0, 1e-6, 0.0),
        )  # warnings are errors in this suite: none may be raised
        assert fit.params.dtype == jnp.float32
        assert np.all(np.isfinite(fit.log_likelihoods))
    finally:
        jax.config.update("jax_enable_x64", previous)


def _readable_log_likelihood(est: Any, data: np.ndarray) -> float:
    """Average log-likelihood of a fit's readable parameters, in float64, by SciPy."""
    import scipy.stats

    loadings = np.asarray(est.loadings_, dtype=np.float64)
    bias, noise = np.asarray(est.bias_, np.float64), np.asarray(est.noise_, np.float64)
    densities = [
        weight
        * scipy.stats.multivariate_normal(
            loadings @ mean + bias, loadings @ cov @ loadings.T + np.diag(noise)
        ).pdf(data)
        for weight, mean, cov in zip(
            np.asarray(est.weights_, np.float64),
            np.asarray(est.means_, np.float64),
            np.asarray(est.covariances_, np.float64),
            strict=True,
        )
    ]
    return float(np.mean(np.log(np.sum(densities, axis=0))))


@pytest.mark.parametrize("n_factors", [2, 4])
def test_the_estimator_in_float32_reaches_its_float64_fit(
    n_factors: int, numpy_selected: None
) -> None:
    # Raw wine (the estimator standardises it), default tol and max_iter; the oracle is the
    # float64 fit, both evaluated in float64 from their readable parameters.
    data = load_wine().data
    wide = hx.HMoG(3, n_factors, reg_covar=0.0, random_state=0, max_iter=1000).fit(data)
    narrow = hx.HMoG(3, n_factors, reg_covar=0.0, random_state=0, max_iter=1000)
    narrow.fit(data.astype(np.float32))
    assert narrow.params_.dtype == np.float32
    assert narrow.converged_
    optimum = _readable_log_likelihood(wide, data)
    assert optimum == pytest.approx(wide.score(data), abs=1e-9)
    # d=4 is a slow crawl (SQUAREM, the default, helps): float32's rounding floor ends it
    # about 5e-4 nats/obs earlier than float64 does.
    assert optimum - _readable_log_likelihood(narrow, data) < 1e-3  # nats per observation


def test_float32_e_step_of_far_apart_groups_matches_float64(xp: Any) -> None:
    # Groups 10 latent standard deviations apart: some responsibilities fall in float32's
    # subnormal range, which the E-step flushes to zero (a tiny fraction of a float32 ulp).
    rng = np.random.default_rng(4)
    model = hx.analytic_hmog(6, hx.Diagonal(), 2, 3)
    centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    latent = centres[rng.integers(0, 3, 600)] + rng.normal(size=(600, 2))
    data = latent @ rng.normal(size=(2, 6)) + 0.3 * rng.normal(size=(600, 6))
    start = model.initialize_from_sample(0, data, 0.1)
    params = fit_em(model, start, data, max_iter=30, tol=0.0).params.astype(np.float32)
    wide_params = params.astype(np.float64)
    responsibilities = np.asarray(model.posterior_soft_assignments(wide_params, data))
    tiny = float(np.finfo(np.float32).tiny)
    assert np.mean((responsibilities > 1e-45) & (responsibilities < tiny)) > 0.01
    xs = xp.asarray(data.astype(np.float32))
    statistics = observable_statistics(model, xs, 256)
    means, log_likelihood = expectation(model, xp.asarray(params), xs, statistics, 256)
    reference = model.mean_posterior_statistics(wide_params, data)
    np.testing.assert_allclose(to_numpy(means), reference, rtol=1e-4, atol=1e-5)
    exact = float(model.average_log_observable_density(wide_params, data))
    # float32 terms, float64 sums (2e-5 on NumPy, 2e-4 with torch's float32 kernels here)
    assert abs(float(log_likelihood) - exact) < 5e-4


def test_a_float32_em_step_over_one_long_chunk_gives_weights_that_sum_to_one(xp: Any) -> None:
    # 20,000 float32 responsibilities summed in one chunk are off their count by about 1e-6
    # relative; the M-step's weights must still sum to one (it checks while validating).
    from hmog_xp.em import em_step

    if xp_name(xp) == "jax":  # the same code runs on every backend; JAX compiles each op
        pytest.skip("an eager float32 EM step compiles every operation on JAX (5 s)")
    rng = np.random.default_rng(2)
    model = hx.analytic_hmog(8, hx.Diagonal(), 2, 4)
    latent = 4.0 * rng.normal(size=(4, 2))[rng.integers(0, 4, 20_000)]
    data = latent @ rng.normal(size=(2, 8)) + rng.normal(size=(20_000, 8))
    params = to_numpy(model.initialize_from_sample(1, data, 0.1)).astype(np.float32)
    xs = xp.asarray(data.astype(np.float32))
    statistics = observable_statistics(model, xs, 20_000)
    with hx.validation(True):
        new_params, _ = em_step(model, xp.asarray(params), xs, statistics, 20_000)
    reference, _ = em_step(
        model, params.astype(np.float64), data, observable_statistics(model, data, 20_000), 20_000
    )
    assert new_params.dtype == xp.float32
    weights = to_numpy(model.to_generative(new_params).weights)
    assert float(np.sum(weights)) == pytest.approx(1.0, abs=1e-6)
    np.testing.assert_allclose(weights, to_numpy(model.to_generative(reference).weights), rtol=1e-4)
