"""The estimator on every backend: recovery, namespaces in and out, cross-backend identity.

Oracles: data drawn by a NumPy transcription of the generative process (not the library's
sampler), the adjusted Rand index against the true labels, the textbook parameter count of a
factor-analysed Gaussian mixture for BIC / AIC, and the NumPy fit for the other backends.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning
from sklearn.metrics import adjusted_rand_score

from hmog_xp import HMoG
from tests.helpers import assert_close, backend_of, to_numpy, xp_name


def generative_sample(seed: int, n: int = 300) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated latent clusters in ``d = 2``, seen through ``p = 6`` noisy features."""
    rng = np.random.default_rng(seed)
    means = np.array([[-4.0, 0.0], [4.0, 0.0], [0.0, 5.0]])
    labels = rng.integers(0, 3, size=n)
    latent = means[labels] + 0.6 * rng.normal(size=(n, 2))
    loadings = rng.normal(size=(6, 2))
    noise_sd = rng.uniform(0.2, 0.5, size=6)
    observed = latent @ loadings.T + 1.0 + noise_sd * rng.normal(size=(n, 6))
    return observed, labels


@pytest.fixture(scope="module")
def sample() -> tuple[np.ndarray, np.ndarray]:
    return generative_sample(0)


@pytest.fixture(scope="module")
def numpy_fit(sample: tuple[np.ndarray, np.ndarray]) -> HMoG:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return HMoG(3, 2, random_state=0, tol=1e-10, max_iter=60).fit(sample[0])


def _as(xp: Any, array: np.ndarray) -> Any:
    return xp.asarray(array)


def test_recovers_clusters_and_answers_in_the_input_namespace(xp: Any, sample: Any) -> None:
    observed, labels = sample
    X = _as(xp, observed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = HMoG(3, 2, random_state=0, max_iter=60, tol=1e-10).fit(X)
    predicted = est.predict(X)
    assert backend_of(predicted) == xp_name(xp)
    assert adjusted_rand_score(labels, to_numpy(predicted)) > 0.95
    proba = est.predict_proba(X)
    assert proba.shape == (300, 3)
    assert_close(xp.sum(proba, axis=1), np.ones(300), xp=xp)
    scores = est.transform(X)
    assert scores.shape == (300, 2)
    log_density = est.score_samples(X)
    assert log_density.shape == (300,)
    assert est.score(X) == pytest.approx(float(np.mean(to_numpy(log_density))), rel=1e-12)
    assert est.score(X) == pytest.approx(est.lower_bound_, rel=1e-9)
    assert np.all(np.diff(est.log_likelihood_) > -1e-9)  # exact EM plus tiny stabilisers
    assert backend_of(est.weights_) == xp_name(xp)
    assert est.loadings_.shape == (6, 2)
    assert est.noise_.shape == (6,)
    assert est.covariances_.shape == (3, 2, 2)


def test_same_numbers_on_every_backend(xp: Any, sample: Any, numpy_fit: HMoG) -> None:
    X = _as(xp, sample[0])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = HMoG(3, 2, random_state=0, tol=1e-10, max_iter=60).fit(X)
    np.testing.assert_allclose(est.log_likelihood_, numpy_fit.log_likelihood_, rtol=1e-9)
    assert_close(est.predict_proba(X), numpy_fit.predict_proba(sample[0]), atol=1e-7)
    assert_close(est.bias_, numpy_fit.bias_, rtol=1e-6, atol=1e-8)


def test_numpy_input_computes_on_the_requested_backend(xp: Any, sample: Any) -> None:
    name = xp_name(xp)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = HMoG(3, 2, random_state=0, max_iter=5, backend=name).fit(sample[0])
    assert backend_of(est.params_) == name
    labels = est.predict(sample[0])
    assert isinstance(labels, np.ndarray)  # answers in the caller's namespace
    assert labels.shape == (300,)


def test_bic_and_aic_use_the_textbook_parameter_count(numpy_fit: HMoG, sample: Any) -> None:
    p, d, k = 6, 2, 3
    # bias + loadings + diagonal noise + weights + means + covariances, minus the affine
    # re-parametrisations of the latent space (d shifts, d^2 linear maps).
    count = p + p * d + p + (k - 1) + k * d + k * d * (d + 1) // 2 - d - d * d
    n = sample[0].shape[0]
    log_likelihood = numpy_fit.score(sample[0]) * n
    assert numpy_fit.n_parameters() == count
    assert numpy_fit.bic(sample[0]) == pytest.approx(-2 * log_likelihood + count * math.log(n))
    assert numpy_fit.aic(sample[0]) == pytest.approx(-2 * log_likelihood + 2 * count)


@pytest.mark.parametrize("noise", ["full", "isotropic"])
def test_noise_models(noise: str, sample: Any) -> None:
    est = HMoG(3, 2, noise=noise, random_state=1, max_iter=40, tol=1e-4).fit(sample[0])
    expected = {"full": (6, 6), "isotropic": ()}[noise]
    assert tuple(est.noise_.shape) == expected
    assert adjusted_rand_score(sample[1], est.predict(sample[0])) > 0.9


@pytest.mark.parametrize("variant", ["differentiable", "symmetric"])
def test_gradient_variants_share_the_fit_call(variant: str, sample: Any) -> None:
    est = HMoG(3, 2, variant=variant, random_state=0, max_iter=150, learning_rate=0.01)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(sample[0])
    assert est.log_likelihood_[-1] > est.log_likelihood_[0]
    assert np.isfinite(est.score(sample[0]))
    assert adjusted_rand_score(sample[1], est.predict(sample[0])) > 0.9


def test_n_init_keeps_the_best_restart(sample: Any) -> None:
    def fit(n_init: int) -> HMoG:
        est = HMoG(3, 2, init="random", n_init=n_init, random_state=7, max_iter=15)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            return est.fit(sample[0])

    # The first restart of n_init=3 is the only restart of n_init=1 (same seed stream).
    one, three = fit(1), fit(3)
    assert three.lower_bound_ >= one.lower_bound_
    assert three.score(sample[0]) == pytest.approx(three.lower_bound_, rel=1e-9)


def test_user_initialisation_forms(sample: Any, numpy_fit: HMoG) -> None:
    generative = numpy_fit.model_.to_generative(numpy_fit.params_)
    for init in (
        generative,
        generative._asdict(),
        numpy_fit.params_,
        lambda model, xs, seed: numpy_fit.params_,
    ):
        est = HMoG(3, 2, init=init, max_iter=2, tol=0.0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            est.fit(sample[0])
        # Starting at a fixed point of (lightly regularised) EM, the fit stays there.
        assert est.log_likelihood_[0] == pytest.approx(numpy_fit.lower_bound_, rel=1e-6)


def test_callback_and_verbose_report_every_step(
    sample: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    seen: list[tuple[int, float]] = []
    est = HMoG(
        3, 2, random_state=0, max_iter=7, tol=0.0, verbose=1, verbose_interval=2, accelerate=False
    )
    est.set_params(callback=lambda step, value: seen.append((step, value)))
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=7"):
        est.fit(sample[0])
    assert [step for step, _ in seen] == list(range(1, 8))
    assert [value for _, value in seen] == est.log_likelihood_[:-1]
    printed = capsys.readouterr().out.splitlines()
    assert len(printed) == 3  # steps 2, 4, 6
    assert "step 2" in printed[0]
    # Accelerated: one report per SQUAREM iteration (three EM steps), then plain steps.
    seen.clear()
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=7"):
        est.set_params(accelerate=True).fit(sample[0])
    assert [step for step, _ in seen] == [3, 6, 7]
    assert est.n_iter_ == 7
    printed = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in printed] == [
        "init 1, step 3",
        "init 1, step 6",
    ]  # the first report at or past each multiple of 2 (steps 2, 4 and 6)


def test_sample_draws_from_the_fitted_model(numpy_fit: HMoG) -> None:
    X, labels = numpy_fit.sample(4000)
    assert X.shape == (4000, 6)
    weights = np.bincount(labels, minlength=3) / 4000
    np.testing.assert_allclose(weights, numpy_fit.weights_, atol=0.03)
    # The sample's mean matches the model's: b + A Σ_k π_k μ_k.
    model_mean = numpy_fit.bias_ + numpy_fit.loadings_ @ (numpy_fit.weights_ @ numpy_fit.means_)
    np.testing.assert_allclose(X.mean(axis=0), model_mean, atol=0.25)


@settings(max_examples=3)
@given(seed=st.integers(0, 2**16), variant=st.sampled_from(["analytic", "differentiable"]))
def test_factor_scores_agree_on_every_backend(xp: Any, seed: int, variant: str) -> None:
    # The latent basis is only defined up to a rotation; the canonical basis makes the
    # factor scores one answer (the reference is the same fit on NumPy).
    observed = generative_sample(seed, n=120)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        # Adam for the differentiable variant: its arithmetic is the same on every backend.
        # The default L-BFGS builds its Fisher preconditioner from finite differences and
        # branches on line-search tests, so rounding can send backends along different
        # paths in flat directions (issue 14's note).
        settings = {"variant": variant, "random_state": seed, "tol": 0.0, "max_iter": 15}
        if variant == "differentiable":
            settings["solver"] = "adam"
        reference = HMoG(3, 2, **settings)
        reference.fit(observed)
        est = HMoG(3, 2, **settings)
        est.fit(_as(xp, observed))
    scores = est.transform(_as(xp, observed))
    assert_close(scores, reference.transform(observed), atol=1e-8, rtol=1e-8)
    assert_close(est.loadings_, reference.loadings_, atol=1e-8, rtol=1e-8)


def test_fitted_factors_are_in_the_canonical_basis(numpy_fit: HMoG) -> None:
    # Analytic variant: the eigenbasis of the signal-to-noise matrix AᵀΨ⁻¹A, decreasing
    # (a textbook property of that basis: the matrix is diagonal there).
    loadings, noise = np.asarray(numpy_fit.loadings_), np.asarray(numpy_fit.noise_)
    gram = loadings.T @ (loadings / noise[:, None])
    np.testing.assert_allclose(gram - np.diag(np.diag(gram)), 0.0, atol=1e-8 * gram.max())
    assert np.all(np.diff(np.diag(gram)) <= 0.0)
    white = loadings / np.sqrt(noise)[:, None]
    assert np.all(np.sum(white**3, axis=0) >= 0.0)  # the documented sign rule


def test_a_diverging_gradient_fit_keeps_its_best_parameters(
    sample: Any, tmp_path: Any, numpy_selected: None
) -> None:
    X = sample[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = HMoG(3, 2, variant="differentiable", learning_rate=50.0, max_iter=20, n_init=2)
        est.set_params(random_state=0).fit(X)
    assert est.lower_bound_ == pytest.approx(est.score(X), rel=1e-9)  # oracle: score itself
    assert est.lower_bound_ >= est.log_likelihood_[0]
    assert est.lower_bound_ == pytest.approx(max(est.log_likelihood_), rel=1e-12)
    assert HMoG.load(est.save(tmp_path / "m.npz")).lower_bound_ == est.lower_bound_


def test_identical_starts_are_fitted_once(sample: Any) -> None:
    # One component: every seed partitions the rows the same way, so every restart starts
    # (and, EM being deterministic, ends) at the same point.
    steps: list[int] = []
    once = HMoG(1, 2, random_state=0, n_init=1).fit(sample[0])
    many = HMoG(1, 2, random_state=0, n_init=4, callback=lambda step, _: steps.append(step))
    many.fit(sample[0])
    assert many.n_iter_ == once.n_iter_
    assert len(steps) == len(once.log_likelihood_) - 1  # one restart's reports
    np.testing.assert_array_equal(many.params_, once.params_)
