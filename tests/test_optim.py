"""Gradient training: Adam against its textbook update, fit_gradient on every backend."""

from __future__ import annotations

import numpy as np
import pytest

import hmog_xp as hx
from tests.helpers import assert_close, to_numpy, xp_name


def _data(xp, n: int = 120) -> tuple[hx.DifferentiableHMoG, object, object]:
    rng = np.random.default_rng(3)
    centres = np.array([[2.5, 0.0], [-2.5, 0.5]])
    latent = centres[rng.integers(0, 2, size=n)] + 0.4 * rng.normal(size=(n, 2))
    loadings = rng.normal(size=(4, 2))
    xs = latent @ loadings.T + 0.3 * rng.normal(size=(n, 4))
    model = hx.differentiable_hmog(4, hx.Diagonal, 2, hx.Diagonal, 2)
    data = xp.asarray(xs)
    return model, model.initialize_from_sample(0, data), data


def test_adam_matches_the_textbook_update(xp) -> None:
    gradients = [np.array([1.0, -2.0]), np.array([0.5, 0.5]), np.array([-1.0, 3.0])]
    optimizer = hx.Adam(learning_rate=0.1, beta1=0.9, beta2=0.99, eps=1e-8)
    params = xp.asarray([0.0, 1.0], dtype=xp.float64)
    state = optimizer.init(params)
    expected, first, second = np.array([0.0, 1.0]), np.zeros(2), np.zeros(2)
    for step, gradient in enumerate(gradients, start=1):
        params, state = optimizer.step(params, xp.asarray(gradient), state)
        first = 0.9 * first + 0.1 * gradient
        second = 0.99 * second + 0.01 * gradient**2
        expected = expected + 0.1 * (first / (1 - 0.9**step)) / (
            np.sqrt(second / (1 - 0.99**step)) + 1e-8
        )
        assert_close(params, expected, xp=xp)
    assert state.step == 3


def test_fit_gradient_increases_the_likelihood(xp) -> None:
    model, start, data = _data(xp)
    fit = hx.fit_gradient(model, start, data, n_steps=40, optimizer=hx.Adam(0.05))
    assert len(fit.log_likelihoods) == 41
    assert fit.log_likelihoods[-1] > fit.log_likelihoods[0] + 0.05
    assert fit.log_likelihoods[fit.best_iter] == max(fit.log_likelihoods)
    assert_close(  # the best parameters seen are returned
        model.average_log_observable_density(fit.params, data),
        max(fit.log_likelihoods),
        xp=xp,
        check_dtype=False,
    )


def test_mini_batches_also_improve_and_are_reproducible(xp) -> None:
    model, start, data = _data(xp)
    first = hx.fit_gradient(model, start, data, n_steps=20, batch_size=32, rng=5)
    again = hx.fit_gradient(model, start, data, n_steps=20, batch_size=32, rng=5)
    assert first.log_likelihoods[-1] > first.log_likelihoods[0]
    assert_close(first.params, to_numpy(again.params), xp=xp, rtol=0, atol=0)


def test_autodiff_and_closed_form_training_agree(xp) -> None:
    model, start, data = _data(xp)
    if xp_name(xp) not in ("jax", "torch"):
        with pytest.raises(hx.BackendError, match="automatic differentiation is not available"):
            hx.fit_gradient(model, start, data, n_steps=1, gradient="autodiff")
        return
    closed = hx.fit_gradient(model, start, data, n_steps=10)
    auto = hx.fit_gradient(model, start, data, n_steps=10, gradient="autodiff")
    assert_close(auto.params, to_numpy(closed.params), xp=xp, rtol=1e-7, atol=1e-9)


def test_steps_that_leave_the_valid_space_are_backed_off(xp) -> None:
    model, start, data = _data(xp)
    fit = hx.fit_gradient(model, start, data, n_steps=5, optimizer=hx.Adam(50.0))
    assert all(np.isfinite(fit.log_likelihoods))
    assert np.isfinite(to_numpy(model.log_partition_function(fit.params)))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"gradient": "numeric"}, "'closed-form' or 'autodiff'"),
        ({"n_steps": -1}, "n_steps must be a non-negative int"),
        ({"batch_size": 0}, "batch_size must be between 1 and N"),
        ({"batch_size": 10_000}, "batch_size must be between 1 and N"),
    ],
)
def test_bad_arguments_are_rejected(kwargs, match) -> None:
    model, start, data = _data(hx._backend.namespace_for("numpy"))
    with pytest.raises(hx.ValidationError, match=match):
        hx.fit_gradient(model, start, data, **kwargs)


@pytest.mark.parametrize("kwargs", [{"learning_rate": 0.0}, {"beta1": 1.0}, {"beta2": -0.1}])
def test_bad_adam_settings_are_rejected(kwargs) -> None:
    with pytest.raises(hx.ValidationError, match="Adam needs learning_rate > 0"):
        hx.Adam(**kwargs)


def test_a_diverging_run_returns_the_best_parameters_it_saw(xp) -> None:
    model, start, data = _data(xp)
    fit = hx.fit_gradient(model, start, data, n_steps=12, optimizer=hx.Adam(10.0))
    history = fit.log_likelihoods
    assert fit.n_iter == 12
    assert len(history) == 13
    assert history[-1] < max(history) - 1.0  # the run did diverge
    returned = float(model.average_log_observable_density(fit.params, data))
    assert returned >= history[0] - 1e-12 * abs(history[0])  # compiled vs eager rounding
    assert returned == pytest.approx(max(history), rel=1e-12, abs=0)
    assert history[fit.best_iter] == max(history)


class _PoisonedGradient:
    """A model whose gradient turns NaN after ``healthy`` calls (a backend blowing up)."""

    def __init__(self, model, healthy: int) -> None:
        self.model, self.healthy, self.calls = model, healthy, 0

    def average_log_observable_density(self, params, xs):
        return self.model.average_log_observable_density(params, xs)

    def log_likelihood_gradient(self, params, xs):
        self.calls += 1
        gradient = self.model.log_likelihood_gradient(params, xs)
        return gradient * float("nan") if self.calls > self.healthy else gradient


def test_a_non_finite_gradient_stops_the_run_at_its_best(xp) -> None:
    model, start, data = _data(xp)
    poisoned = _PoisonedGradient(model, healthy=3)
    fit = hx.fit_gradient(poisoned, start, data, n_steps=10, optimizer=hx.Adam(0.05))
    assert fit.n_iter == 3
    assert len(fit.log_likelihoods) == 4
    assert not fit.converged
    assert np.all(np.isfinite(to_numpy(fit.params)))
    returned = float(model.average_log_observable_density(fit.params, data))
    assert returned == pytest.approx(max(fit.log_likelihoods), rel=1e-12, abs=0)
    assert returned >= fit.log_likelihoods[0]


class _NoLikelihood(_PoisonedGradient):
    def average_log_observable_density(self, params, xs):
        return float("nan")


def test_a_start_without_a_finite_likelihood_is_refused() -> None:
    model, start, data = _data(hx._backend.namespace_for("numpy"))
    with pytest.raises(hx.ValidationError, match="starting parameters have a non-finite"):
        hx.fit_gradient(_NoLikelihood(model, 0), start, data, n_steps=1)


class _BatchRecorder:
    """The model, recording the batch of every gradient (a plain object: runs eagerly)."""

    def __init__(self, model) -> None:
        self.model, self.batches = model, []

    def average_log_observable_density(self, params, xs):
        return self.model.average_log_observable_density(params, xs)

    def log_likelihood_gradient(self, params, xs):
        self.batches.append(to_numpy(xs))
        return self.model.log_likelihood_gradient(params, xs)


def test_a_mini_batch_history_scores_each_step_on_its_batch(xp) -> None:
    model, start, data = _data(xp, n=60)
    recorder = _BatchRecorder(model)
    optimizer = hx.Adam(0.05)
    fit = hx.fit_gradient(
        recorder, start, data, n_steps=6, batch_size=20, rng=2, optimizer=optimizer
    )
    host = to_numpy(data)
    assert len(fit.log_likelihoods) == 7 == len(recorder.batches) + 1
    # three batches a pass, drawn without replacement: each pass covers the data once
    for first in (0, 3):
        rows = np.concatenate(recorder.batches[first : first + 3])
        assert np.array_equal(np.unique(rows, axis=0), np.unique(host, axis=0))
    # replay the textbook steps on the recorded batches; score each on its own batch
    reference = hx.differentiable_hmog(4, hx.Diagonal, 2, hx.Diagonal, 2)
    params, state = to_numpy(start), optimizer.init(to_numpy(start))
    full = []
    for step, batch in enumerate(recorder.batches, start=1):
        gradient = reference.log_likelihood_gradient(params, batch)
        params, state = optimizer.step(params, gradient, state)
        expected = float(reference.average_log_observable_density(params, batch))
        assert fit.log_likelihoods[step] == pytest.approx(expected, rel=1e-9, abs=1e-9)
        full.append(float(reference.average_log_observable_density(params, host)))
    assert not np.allclose(full, fit.log_likelihoods[1:], rtol=1e-6)  # not the full data
    assert fit.log_likelihoods[fit.best_iter] == max(fit.log_likelihoods)
