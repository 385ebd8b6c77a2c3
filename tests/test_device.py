"""Every array the library returns lives on its inputs' device.

Inputs go on the ``device`` fixture (tests/conftest.py): ``array_api_strict.Device("device1")``
for array_api_strict, which is not its default device, so any array created inside the library
without ``device=`` meets one on ``device1`` and strict raises (on CuPy or torch-CUDA that array
would silently land on the host). On the other backends the fixture is the default device and
the tests check the same outputs there. Every output is checked with ``assert_device``; a few
values are also compared with the same computation on the default device (the device must not
change the numbers). JAX on a CPU has one device, on which every other JAX test already runs, so
there the variant grids keep their first case (``first_on_jax``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp import _backend as B
from tests.helpers import assert_close, assert_device, to_numpy, xp_name

P, D, K = 4, 2, 2


def _observations(n: int = 60, p: int = P) -> np.ndarray:
    rng = np.random.default_rng(7)
    signs = np.where(rng.random((n, 1)) < 0.5, 1.0, -1.0)
    return rng.normal(size=(n, p)) + 3.0 * signs


def _on(xp: Any, device: Any, values: np.ndarray) -> Any:
    return xp.asarray(values, dtype=xp.float64, device=device)


def _default(xp: Any, array: Any) -> Any:
    """The same values on the namespace's default device."""
    return xp.asarray(to_numpy(array))


def test_random_sources_draw_on_the_device(xp, device) -> None:
    for rng in (0, np.random.default_rng(0), None):
        source = B.random_source(rng, xp, device)
        assert_device(source.normal((3, 2), dtype=xp.float64), device)
        assert_device(source.uniform((4,), dtype=xp.float64), device)


@pytest.mark.parametrize("rep", [hx.PositiveDefinite(), hx.Diagonal(), hx.Scale()])
def test_normal_family(xp, device, rep) -> None:
    family = hx.Normal(3, rep)
    xs = _on(xp, device, _observations(p=3))
    params = family.initialize_from_sample(0, xs)
    means = family.to_mean(params)
    assert_device([params, means, family.to_natural(means)], device)
    assert_device(family.log_density(params, xs), device)
    assert_device(family.log_partition_function(params), device)
    assert_device(family.negative_entropy(means), device)
    assert_device(family.sample(1, params, 5), device)
    assert_device(family.initialize(B.random_source(2, xp, device)), device)
    assert_device(family.regularize_covariance(means, 0.1, 0.5), device)
    full = hx.Normal(3, hx.PositiveDefinite())
    embedded = family.embed_rep(params, full.rep)
    assert_device([embedded, full.project_rep(full.to_mean(embedded), rep)], device)
    assert_close(
        family.log_density(params, xs),
        to_numpy(family.log_density(_default(xp, params), _default(xp, xs))),
    )


def test_categorical_family(xp, device) -> None:
    family = hx.Categorical(3)
    labels = xp.asarray(np.array([0, 1, 2, 2, 1, 2]), dtype=xp.int64, device=device)
    params = family.initialize_from_sample(0, labels)
    means = family.to_mean(params)
    probs = family.to_probs(params)
    assert_device([params, means, family.to_natural(means), probs], device)
    assert_device(family.from_probs(probs), device)
    assert_device(family.log_density(params, labels), device)
    assert_device(family.negative_entropy(means), device)
    assert_device(family.sample(1, params, 5), device)
    assert_device(family.initialize(B.random_source(2, xp, device)), device)


@pytest.mark.parametrize("factory", [hx.factor_analysis, hx.principal_component_analysis])
def test_linear_gaussian_models(xp, device, factory) -> None:
    model = factory(P, D)
    xs = _on(xp, device, _observations())
    params = model.initialize_from_sample(0, xs)
    assert_device(model.initialize(B.random_source(1, xp, device)), device)
    assert_device(model.log_observable_density(params, xs), device)
    assert_device(model.posterior_statistics(params, xs), device)
    assert_device(model.posterior_latent_mean(params, xs), device)
    stats = model.mean_posterior_statistics(params, xs)
    assert_device([stats, model.whiten_prior(stats), model.to_natural(stats)], device)
    assert_device(model.expectation_maximization(params, xs), device)
    assert_device(model.to_mean(params), device)
    generative = model.to_generative(params)
    assert_device(tuple(generative), device)
    assert_device(model.from_generative(*generative[:3]), device)
    assert_device(model.observable_distribution(params), device)
    assert_device(model.sample(2, params, 5), device)


def test_mixtures(xp, device) -> None:
    ys = _on(xp, device, _observations(p=D))
    for model in (
        hx.Mixture(hx.Normal(D, hx.Diagonal()), K),
        hx.AnalyticMixture(hx.Normal(D, hx.PositiveDefinite()), K),
    ):
        params = model.initialize_from_sample(0, ys)
        assert_device(model.initialize(B.random_source(1, xp, device)), device)
        assert_device(model.log_observable_density(params, ys), device)
        assert_device(model.posterior_soft_assignments(params, ys), device)
        assert_device(model.to_mean(params), device)
        generative = model.to_generative(params)
        assert_device(tuple(generative), device)
        assert_device(model.from_generative(*generative), device)
        assert_device(model.sample(2, params, 5), device)
        if isinstance(model, hx.AnalyticMixture):
            assert_device(model.to_natural(model.to_mean(params)), device)
            assert_device(model.expectation_maximization(params, ys), device)


VARIANTS = {
    "differentiable": lambda: hx.differentiable_hmog(P, hx.Diagonal(), D, hx.Diagonal(), K),
    "symmetric": lambda: hx.symmetric_hmog(P, hx.Diagonal(), D, hx.Diagonal(), K),
    "analytic": lambda: hx.analytic_hmog(P, hx.Diagonal(), D, K),
}


@pytest.mark.first_on_jax
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_hmog_variants(xp, device, variant) -> None:
    model = VARIANTS[variant]()
    xs = _on(xp, device, _observations())
    params = model.initialize_from_sample(0, xs)
    assert_device(params, device)
    assert_device(model.initialize(B.random_source(1, xp, device)), device)
    density = model.log_observable_density(params, xs)
    assert_device(density, device)
    on_default = model.log_observable_density(_default(xp, params), _default(xp, xs))
    assert_close(density, to_numpy(on_default))
    assert_device(model.average_log_observable_density(params, xs), device)
    assert_device(model.posterior_soft_assignments(params, xs), device)
    assert_device(model.posterior_hard_assignment(params, xs), device)
    assert_device(model.posterior_latent_mean(params, xs), device)
    means = model.to_mean(params)
    stats = model.mean_posterior_statistics(params, xs)
    assert_device([means, stats], device)
    if variant != "symmetric":  # whitening needs a complete upper mixture
        assert_device(model.whiten_prior(stats), device)
    assert_device(model.log_likelihood_gradient(params, xs), device)
    assert_device(model.log_partition_function(params), device)
    assert_device(model.sample(2, params, 5), device)
    generative = model.to_generative(params)
    assert_device(tuple(generative), device)
    assert_device(model.from_generative(*generative), device)
    assert_device(tuple(model.observable_mixture(params)), device)
    if variant == "analytic":
        assert_device(model.expectation_maximization(params, xs), device)
        assert_device(model.to_natural(means), device)


def test_em_drivers(xp, device) -> None:
    model = VARIANTS["analytic"]()
    xs = _on(xp, device, _observations())
    params = model.initialize_from_sample(0, xs)
    fit = hx.fit_em(model, params, xs, max_iter=3, chunk_size=25)
    assert_device(fit.params, device)
    assert_device(hx.em_steps(model, params, xs, 2, chunk_size=25), device)
    regularized = hx.fit_em(model, params, xs, max_iter=2, regularization=hx.Regularization(0.1))
    assert_device(regularized.params, device)


@pytest.mark.parametrize("batch_size", [None, 20])
def test_gradient_training(xp, device, batch_size) -> None:
    model = VARIANTS["differentiable"]()
    xs = _on(xp, device, _observations())
    params = model.initialize_from_sample(0, xs)
    fit = hx.fit_gradient(
        model, params, xs, n_steps=3, optimizer=hx.Adam(0.05), batch_size=batch_size, rng=1
    )
    assert_device(fit.params, device)
    state = hx.Adam().init(params)
    assert_device([state.first, state.second], device)
    if xp_name(xp) in ("jax", "torch"):
        auto = hx.fit_gradient(model, params, xs, n_steps=2, gradient="autodiff")
        assert_device(auto.params, device)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.first_on_jax
@pytest.mark.parametrize("variant", list(VARIANTS))
def test_estimator(xp, device, variant) -> None:
    xs = _on(xp, device, _observations(n=80))
    est = hx.HMoG(K, D, variant=variant, max_iter=4, random_state=0).fit(xs)
    fitted = ("weights_", "means_", "covariances_", "loadings_", "bias_", "noise_", "params_")
    for name in fitted:
        assert_device(getattr(est, name), device)
    for method in ("predict", "predict_proba", "transform", "score_samples"):
        assert_device(getattr(est, method)(xs), device)
    assert_device(tuple(est.sample(5)), device)
    assert isinstance(est.score(xs), float)
