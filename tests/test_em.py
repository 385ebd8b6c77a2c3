"""The fast EM driver equals the reference formulas, whatever the chunking, on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp.em import (
    default_chunk_size,
    em_steps,
    expectation,
    fit_em,
    observable_statistics,
)
from tests.helpers import assert_close, to_numpy


def _problem(xp, obs_rep=hx.Diagonal, n: int = 300):
    rng = np.random.default_rng(4)
    model = hx.analytic_hmog(5, obs_rep, 2, 3)
    centres = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    latent = centres[rng.integers(0, 3, size=n)] + 0.5 * rng.normal(size=(n, 2))
    data = latent @ rng.normal(size=(5, 2)).T + 0.4 * rng.normal(size=(n, 5))
    xs = xp.asarray(data)
    return model, model.initialize_from_sample(1, xs), xs


@pytest.mark.parametrize("chunk_size", [1, 7, 64, 300, 10_000])
def test_chunked_expectation_equals_the_reference(xp, chunk_size) -> None:
    model, params, xs = _problem(xp)
    statistics = observable_statistics(model, xs, chunk_size)
    assert_close(
        statistics,
        to_numpy(xp.mean(model.obs_man.sufficient_statistic(xs), axis=0)),
        xp=xp,
        rtol=1e-10,
        atol=1e-12,
    )
    means, log_likelihood = expectation(model, params, xs, statistics, chunk_size)
    assert_close(
        means, to_numpy(model.mean_posterior_statistics(params, xs)), xp=xp, rtol=1e-10, atol=1e-12
    )
    reference = to_numpy(model.average_log_observable_density(params, xs))
    assert_close(log_likelihood, reference, xp=xp, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("obs_rep", [hx.Diagonal, hx.Scale, hx.PositiveDefinite])
def test_fit_em_follows_expectation_maximization(xp, obs_rep) -> None:
    model, params, xs = _problem(xp, obs_rep)
    fit = fit_em(model, params, xs, max_iter=6, tol=0.0, chunk_size=50)
    reference = params
    history = []
    for _ in range(6):
        history.append(float(model.average_log_observable_density(reference, xs)))
        reference = model.expectation_maximization(reference, xs)
    history.append(float(model.average_log_observable_density(reference, xs)))
    assert fit.n_iter == 6
    assert not fit.converged
    assert_close(fit.params, to_numpy(reference), xp=xp, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(fit.log_likelihoods, history, rtol=1e-10)
    assert np.all(np.diff(fit.log_likelihoods) >= -1e-10)


def test_fit_em_stops_on_tolerance(xp) -> None:
    model, params, xs = _problem(xp)
    fit = fit_em(model, params, xs, max_iter=500, tol=1e-6)
    assert fit.converged
    assert fit.n_iter < 500
    last, previous = fit.log_likelihoods[-2], fit.log_likelihoods[-3]
    assert abs(last - previous) <= 1e-6 * abs(last)


def test_default_chunk_size_bounds_memory() -> None:
    model = hx.analytic_hmog(100, hx.Diagonal, 10, 20)
    size = default_chunk_size(model, 1_000_000)
    row_bytes = 8 * (2 * 100 + 20 * (4 * 10 + 4) + 10)
    assert 256 <= size < 1_000_000
    assert size * row_bytes <= 32 * 2**20
    assert default_chunk_size(model, 10) == 10


def test_fit_em_rejects_models_without_em_and_bad_input(xp) -> None:
    model, params, xs = _problem(xp)
    differentiable = hx.differentiable_hmog(5, hx.Diagonal, 2, hx.Diagonal, 3)
    with pytest.raises(TypeError, match="has no closed-form EM; closed-form EM exists for "):
        fit_em(differentiable, differentiable.initialize(0, xp=xp), xs)
    restricted = hx.symmetric_hmog(5, hx.Diagonal, 2, hx.Diagonal, 3)
    with pytest.raises(hx.ValidationError, match="AnalyticMixture, AnalyticHMoG"):
        fit_em(restricted, restricted.initialize(0, xp=xp), xs)
    with pytest.raises(hx.ValidationError, match="chunk_size must be >= 1"):
        fit_em(model, params, xs, chunk_size=0)
    with pytest.raises(hx.ValidationError, match=r"xs has shape \(300, 4\)"):
        fit_em(model, params, xs[:, :4])


def test_em_steps_runs_a_fixed_number_of_steps_without_syncs(xp) -> None:
    model, params, xs = _problem(xp)
    reference = params
    for _ in range(4):
        reference = model.expectation_maximization(reference, xs)
    assert_close(
        em_steps(model, params, xs, 4, chunk_size=64),
        to_numpy(reference),
        xp=xp,
        rtol=1e-8,
        atol=1e-9,
    )
