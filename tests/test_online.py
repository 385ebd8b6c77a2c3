"""Online mini-batch EM converges to batch EM; importing hmog_xp never imports Dask."""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp.em import expectation, fit_em, observable_statistics
from hmog_xp.scale import StepSize, fit_online, online_em_init, online_em_update
from tests.helpers import assert_close, to_numpy


def _data(n: int = 4000, seed: int = 4) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    latent = centres[rng.integers(0, 3, size=n)] + 0.5 * rng.normal(size=(n, 2))
    return latent @ rng.normal(size=(5, 2)).T + 0.4 * rng.normal(size=(n, 5))


def test_importing_hmog_xp_does_not_import_dask() -> None:
    code = (
        "import sys, hmog_xp, hmog_xp.scale, hmog_xp.em\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in ('dask', 'distributed'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_step_size_schedule() -> None:
    schedule = StepSize()
    assert schedule.at(0) == 1.0
    assert schedule.at(3) == pytest.approx(4.0**-0.6)
    assert StepSize(10.0, 1.0, 1.0).at(0) == 1.0  # capped at 1
    assert StepSize(0.5, 4.0, 1.0).at(0) == pytest.approx(0.125)
    for bad, match in [
        ((1.0, 1.0, 0.5), "exponent"),
        ((1.0, 1.0, 1.5), "exponent"),
        ((0.0, 1.0, 0.6), "scale"),
        ((1.0, 0.0, 0.6), "offset"),
    ]:
        with pytest.raises(hx.ValidationError, match=match):
            StepSize(*bad).check()


def test_first_update_is_one_batch_em_step(xp) -> None:
    data = _data(600)
    model = hx.analytic_hmog(5, hx.Diagonal, 2, 3)
    xs = xp.asarray(data)
    params = model.initialize_from_sample(1, xs)
    state = online_em_update(online_em_init(model, params), xs)
    assert state.n_updates == 1
    assert state.n_seen == 600
    assert_close(
        state.params, to_numpy(model.expectation_maximization(params, xs)), xp=xp, rtol=1e-9
    )
    assert_close(
        state.log_likelihood,
        to_numpy(model.average_log_observable_density(params, xs)),
        xp=xp,
        rtol=1e-10,
    )


def test_update_averages_statistics_with_the_step_size() -> None:
    data = _data(600)
    model = hx.analytic_hmog(5, hx.Diagonal, 2, 3)
    params = model.initialize_from_sample(1, data)
    state = online_em_init(model, params, step_size=StepSize(0.5, 1.0, 1.0))
    start = model.whiten_prior(model.to_mean(params))
    np.testing.assert_allclose(state.statistics, start, rtol=1e-12)
    batch = data[:200]
    means, _ = expectation(
        model, state.estep_params, batch, observable_statistics(model, batch, 64), 64
    )
    updated = online_em_update(state, batch)
    expected = model.whiten_prior(0.5 * start + 0.5 * means)
    np.testing.assert_allclose(updated.statistics, expected, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(updated.params, model.to_natural(expected), rtol=1e-9)
    # The initial E-step parameters are a reparametrisation of params: same p(x).
    np.testing.assert_allclose(
        model.log_observable_density(state.estep_params, data),
        model.log_observable_density(params, data),
        rtol=1e-10,
    )


def test_online_em_converges_to_batch_em(numpy_selected: None) -> None:
    data = _data()
    model = hx.analytic_hmog(5, hx.Diagonal, 2, 3)
    params = model.initialize_from_sample(1, data)
    batch = fit_em(model, params, data, max_iter=500, tol=1e-11)
    online = fit_online(model, params, data, batch_size=500, n_epochs=40, rng=0)
    assert online.n_updates == 40 * 8
    best = batch.log_likelihoods[-1]
    reached = float(model.average_log_observable_density(online.params, data))
    assert best - 1e-4 < reached < best + 1e-6
    # Mean batch log-likelihood per epoch rises towards the optimum.
    assert online.log_likelihoods[0] < online.log_likelihoods[-1] < best + 1e-2
    # Same clusters and the same observable mixture up to the order of the components.
    ours = model.observable_mixture(online.params)
    theirs = model.observable_mixture(batch.params)
    order = min(
        itertools.permutations(range(3)),
        key=lambda perm: float(np.sum((ours.means[list(perm)] - theirs.means) ** 2)),
    )
    order = list(order)
    np.testing.assert_allclose(ours.weights[order], theirs.weights, atol=2e-3)
    np.testing.assert_allclose(ours.means[order], theirs.means, atol=2e-2)
    np.testing.assert_allclose(ours.covariances[order], theirs.covariances, atol=2e-2)
    relabelled = np.argsort(order)[model.posterior_hard_assignment(online.params, data)]
    reference = model.posterior_hard_assignment(batch.params, data)
    assert np.mean(relabelled == reference) > 0.995


def test_fit_online_equals_a_chain_of_updates(xp) -> None:
    data = _data(500)
    model = hx.analytic_hmog(5, hx.Scale, 2, 2)
    xs = xp.asarray(data)
    params = model.initialize_from_sample(3, xs)
    fit = fit_online(model, params, xs, batch_size=120, n_epochs=2, shuffle=False)
    state = online_em_init(model, params)
    for _ in range(2):
        for start in range(0, 500, 120):
            state = online_em_update(state, xs[start : min(start + 120, 500), ...])
    assert fit.n_updates == state.n_updates == 10
    assert_close(fit.params, to_numpy(state.params), xp=xp, rtol=1e-10, atol=1e-12)
    assert len(fit.log_likelihoods) == 2


def test_online_em_with_regularization_runs() -> None:
    regularize = pytest.importorskip("hmog_xp.hmog._regularize")
    data = _data(800)
    model = hx.analytic_hmog(5, hx.Diagonal, 2, 3)
    params = model.initialize_from_sample(1, data)
    stabilisers = regularize.Regularization(reg_covar=1e-3, min_variance=1e-3, min_weight=1e-3)
    fit = fit_online(model, params, data, batch_size=100, n_epochs=3, regularization=stabilisers)
    assert np.isfinite(fit.log_likelihoods).all()
    first = online_em_update(online_em_init(model, params, regularization=stabilisers), data)
    # The stabilisers act on the running statistics in their whitened frame.
    white = model.whiten_prior(model.mean_posterior_statistics(params, data))
    regularized = regularize.regularize_means(model, white, stabilisers)
    np.testing.assert_allclose(first.statistics, white, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(first.estep_params, model.to_natural(regularized), rtol=1e-9)
    expected = model.to_natural(model.whiten_prior(regularized))
    np.testing.assert_allclose(first.params, expected, rtol=1e-9)


def test_bad_online_inputs_are_rejected() -> None:
    data = _data(200)
    model = hx.analytic_hmog(5, hx.Diagonal, 2, 3)
    params = model.initialize_from_sample(1, data)
    state = online_em_init(model, params)
    with pytest.raises(hx.ValidationError, match=r"expects shape \(\.\.\., 5\)"):
        online_em_update(state, data[:, :3])
    bad = data.copy()
    bad[3, 1] = np.nan
    with pytest.raises(hx.ValidationError, match="finite"):
        online_em_update(state, bad)
    with pytest.raises(hx.ValidationError, match="batch_size"):
        fit_online(model, params, data, batch_size=0)
    with pytest.raises(hx.ValidationError, match="exponent"):
        online_em_init(model, params, step_size=(1.0, 1.0, 0.3))
    gradient_only = hx.differentiable_hmog(5, hx.Diagonal, 2, hx.Diagonal, 3)
    with pytest.raises(hx.ValidationError, match="no closed-form EM"):
        online_em_init(gradient_only, gradient_only.initialize(0))
