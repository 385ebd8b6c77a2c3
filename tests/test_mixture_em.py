"""Gaussian mixtures: EM against scikit-learn, EM properties, sampling, starting points, errors.

* One (and five) EM steps of ``AnalyticMixture`` from given parameters equal the steps of
  ``sklearn.mixture.GaussianMixture(reg_covar=0, max_iter=...)`` started from the same weights,
  means and precisions, for full / diagonal / spherical covariances, on a synthetic data set
  with known clusters and on the standardised wine data (first three columns).
* EM properties (Hypothesis): the first step equals a NumPy EM step written from the
  responsibilities, and the average log-likelihood never decreases over ten steps.
* Sampling: label frequencies and per-component sample moments within five standard errors.
* Starting points, constructor and input validation (``ValidationError`` messages).

EM steps and sampling run through ``hx.jit`` (compiled once per model structure on JAX, the
identity elsewhere; see ``test_mixture.py``).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from sklearn.datasets import load_wine
from sklearn.exceptions import ConvergenceWarning
from sklearn.mixture import GaussianMixture

import hmog_xp as hx
from tests.helpers import assert_close, backend_of, to_numpy, xp_name
from tests.strategies import REPS, spd_matrix
from tests.test_mixture import (
    REP_IDS,
    MixtureCase,
    fixed_case,
    mixture_cases,
    property_settings,
)

SKLEARN_TYPES = {"full": hx.PositiveDefinite(), "diag": hx.Diagonal(), "spherical": hx.Scale()}
N_POINTS = 178  # the size of the wine data; the synthetic set matches it (one compilation)


def _em_step(model: hx.AnalyticMixture, params: Any, ys: Any) -> tuple[Any, Any, Any]:
    stepped = model.expectation_maximization(params, ys)
    return stepped, model.average_log_observable_density(params, ys), model.to_generative(stepped)


EM_STEP = hx.jit(_em_step, static_argnums=(0,))


def project_np(rep: hx.CovarianceRep, covariances: np.ndarray) -> np.ndarray:
    """Moment-matching projection of dense covariances onto the rep."""
    d = covariances.shape[-1]
    diagonal = np.diagonal(covariances, axis1=-2, axis2=-1)
    if isinstance(rep, hx.Diagonal):
        return diagonal[..., :, None] * np.eye(d)
    if isinstance(rep, hx.Scale):
        return diagonal.mean(axis=-1)[..., None, None] * np.eye(d)
    return covariances


def em_step_np(case: MixtureCase, ys: np.ndarray) -> tuple[np.ndarray, ...]:
    """One textbook EM step: responsibilities, then weighted moments projected onto the rep."""
    resp = case.responsibilities(ys)  # (N, K)
    counts = resp.sum(axis=0)
    means = resp.T @ ys / counts[:, None]
    centred = ys[None, :, :] - means[:, None, :]
    scatter = np.einsum("nk,kni,knj->kij", resp, centred, centred) / counts[:, None, None]
    return counts / len(ys), means, project_np(case.rep, scatter)


# -- scikit-learn --------------------------------------------------------------------------------


def _datasets() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    centres = np.array([[0.0, 0.0, 0.0], [4.0, 0.0, 1.0], [0.0, 4.0, -1.0]])
    labels = rng.choice(3, size=N_POINTS, p=[0.3, 0.3, 0.4])
    synthetic = centres[labels] + rng.normal(size=(N_POINTS, 3)) * np.array([1.0, 0.7, 0.5])
    wine = load_wine().data[:, :3]
    wine = (wine - wine.mean(axis=0)) / wine.std(axis=0)
    assert wine.shape == (N_POINTS, 3)
    return {"synthetic": synthetic, "wine": wine}


DATASETS = _datasets()


def _start(rep: hx.CovarianceRep, data: np.ndarray) -> MixtureCase:
    """Deliberately rough starting parameters: data points as means, random covariances."""
    rng = np.random.default_rng(1)
    means = data[[5, 60, 140]] + 0.3 * rng.normal(size=(3, 3))
    covariances = np.stack([spd_matrix(rng, 3, rep) for _ in range(3)])
    return MixtureCase(rep, np.array([0.3, 0.3, 0.4]), means, covariances, data)


def _sklearn_fit(covariance_type: str, start: MixtureCase, steps: int) -> GaussianMixture:
    precisions = np.linalg.inv(start.covariances)
    if covariance_type == "diag":
        precisions = np.diagonal(precisions, axis1=-2, axis2=-1)
    elif covariance_type == "spherical":
        precisions = precisions[:, 0, 0]
    mixture = GaussianMixture(
        3,
        covariance_type=covariance_type,
        reg_covar=0.0,
        max_iter=steps,
        tol=0.0,
        init_params="random",
        weights_init=start.weights,
        means_init=start.means,
        precisions_init=precisions,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixture.fit(start.points)
    return mixture


def _dense(covariance_type: str, covariances: np.ndarray) -> np.ndarray:
    if covariance_type == "diag":
        return covariances[:, :, None] * np.eye(3)
    if covariance_type == "spherical":
        return covariances[:, None, None] * np.eye(3)
    return covariances


@pytest.mark.parametrize("dataset", sorted(DATASETS))
@pytest.mark.parametrize("covariance_type", sorted(SKLEARN_TYPES))
def test_em_steps_match_sklearn(xp: Any, covariance_type: str, dataset: str) -> None:
    rep = SKLEARN_TYPES[covariance_type]
    start = _start(rep, DATASETS[dataset])
    model = start.model
    params, ys = start.compiled_params(xp), xp.asarray(start.points)
    tolerance = {"xp": xp, "rtol": 1e-8, "atol": 1e-8}
    for step in range(1, 6):
        params, _, (weights, means, covariances) = EM_STEP(model, params, ys)
        if step in (1, 5):
            reference = _sklearn_fit(covariance_type, start, step)
            assert_close(weights, reference.weights_, **tolerance)
            assert_close(means, reference.means_, **tolerance)
            assert_close(covariances, _dense(covariance_type, reference.covariances_), **tolerance)
    # the average log-likelihood after five steps is scikit-learn's score
    final = EM_STEP(model, params, ys)[1]
    assert_close(final, reference.score(start.points), xp=xp, rtol=1e-10, check_dtype=False)


# -- EM properties -----------------------------------------------------------------------------


def _em_case(case: MixtureCase, seed: int = 0, n: int = 200) -> tuple[MixtureCase, np.ndarray]:
    """Data drawn from ``case`` (weights floored at 0.1) and a perturbed starting point."""
    rng = np.random.default_rng(seed)
    weights = np.maximum(case.weights, 0.1)
    weights /= weights.sum()
    k, d = case.means.shape
    labels = rng.choice(k, size=n, p=weights)
    factors = np.linalg.cholesky(case.covariances)
    ys = case.means[labels] + (factors[labels] @ rng.normal(size=(n, d, 1)))[..., 0]
    scale = np.sqrt(np.mean(np.diagonal(case.covariances, axis1=-2, axis2=-1)))
    means = case.means + 0.3 * scale * rng.normal(size=(k, d))
    start = MixtureCase(case.rep, np.full(k, 1.0 / k), means, 1.5 * case.covariances, ys)
    return start, ys


def test_em_step_is_textbook_em_and_never_decreases_the_likelihood(xp: Any) -> None:
    @property_settings(xp)
    @given(case=mixture_cases())
    def check(case: MixtureCase) -> None:
        start, ys_np = _em_case(case)
        model, ys = start.model, xp.asarray(ys_np)
        params, log_likelihood, generative = EM_STEP(model, start.compiled_params(xp), ys)
        for actual, desired in zip(generative, em_step_np(start, ys_np), strict=True):
            assert_close(actual, desired, xp=xp)
        assert_close(log_likelihood, np.mean(start.log_density(ys_np)), xp=xp)
        history = [float(to_numpy(log_likelihood))]
        for _ in range(10):
            params, log_likelihood, _ = EM_STEP(model, params, ys)
            history.append(float(to_numpy(log_likelihood)))
        steps = np.diff(history)
        assert np.all(steps >= -1e-9 * (1.0 + np.abs(history[:-1]))), history
        assert history[-1] > history[0], history

    check()


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_single_component_em_is_the_normal_maximum_likelihood_fit(
    xp: Any, rep: hx.CovarianceRep
) -> None:
    case = fixed_case(rep, seed=3, k=1)
    data = DATASETS["wine"]
    _, log_likelihood, (weights, means, covariances) = EM_STEP(
        case.model, case.compiled_params(xp), xp.asarray(data)
    )
    expected = project_np(rep, np.cov(data, rowvar=False, bias=True))
    assert_close(weights, np.ones(1), xp=xp)
    assert_close(means, data.mean(axis=0)[None], xp=xp)
    assert_close(covariances, expected[None], xp=xp)
    assert_close(log_likelihood, np.mean(case.log_density(data)), xp=xp)


# -- sampling ----------------------------------------------------------------------------------


SAMPLE = hx.jit(
    lambda model, params, seed, n: model.sample(seed, params, n), static_argnums=(0, 2, 3)
)


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_sample_moments_match_the_mixture(xp: Any, rep: hx.CovarianceRep) -> None:
    case, count = fixed_case(rep, seed=5), 20_000
    model = case.model
    params = case.compiled_params(xp)
    ys, zs = SAMPLE(model, params, 7, count)
    assert tuple(ys.shape) == (count, 3)
    assert backend_of(ys) == xp_name(xp) == backend_of(zs)
    values, labels = to_numpy(ys), to_numpy(zs)
    assert values.dtype == np.float64
    assert labels.dtype.kind == "i"
    assert labels.shape == (count,)
    frequencies = np.bincount(labels, minlength=3) / count
    assert frequencies.size == 3
    standard_error = np.sqrt(case.weights * (1 - case.weights) / count)
    assert np.all(np.abs(frequencies - case.weights) < 5 * standard_error), frequencies
    for k in range(3):
        chosen = values[labels == k]
        n_k, cov = len(chosen), case.covariances[k]
        variances = np.diag(cov)
        assert np.all(np.abs(chosen.mean(axis=0) - case.means[k]) < 5 * np.sqrt(variances / n_k))
        sample_cov = np.cov(chosen, rowvar=False, bias=True)
        error = np.sqrt((variances[:, None] * variances[None, :] + cov**2) / n_k)
        assert np.all(np.abs(sample_cov - cov) < 5 * error), (k, sample_cov, cov)
    again_ys, again_zs = SAMPLE(model, params, 7, count)
    np.testing.assert_array_equal(to_numpy(again_ys), values)
    np.testing.assert_array_equal(to_numpy(again_zs), labels)
    other = to_numpy(SAMPLE(model, params, 8, count)[0])
    assert not np.allclose(other[:50], values[:50])


# -- starting points ---------------------------------------------------------------------------


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_initialize_gives_equal_weights_and_unit_covariances(
    xp: Any, rep: hx.CovarianceRep
) -> None:
    model = hx.AnalyticMixture(hx.Normal(3, rep), 3)
    params = model.initialize(0, location=5.0, shape=0.5, xp=xp)
    assert backend_of(params) == xp_name(xp)
    assert tuple(params.shape) == (model.dim,)
    weights, means, covariances = model.to_generative(params)
    assert_close(weights, np.full(3, 1.0 / 3.0), xp=xp)
    assert_close(covariances, np.broadcast_to(np.eye(3), (3, 3, 3)), xp=xp)
    values = to_numpy(means)
    assert np.all(np.abs(values - 5.0) < 0.5 * 6)
    assert 0.05 < np.std(values) < 2.0
    assert np.unique(values.round(12), axis=0).shape[0] == 3
    again = model.initialize(0, 5.0, 0.5, xp=xp)
    np.testing.assert_array_equal(to_numpy(again), to_numpy(params))
    assert not np.allclose(to_numpy(model.initialize(1, 5.0, 0.5, xp=xp)), to_numpy(params))


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_initialize_from_sample_uses_data_points_and_pooled_covariance(
    xp: Any, rep: hx.CovarianceRep
) -> None:
    rng = np.random.default_rng(4)
    data = rng.normal(size=(40, 3)) * np.array([1.0, 2.0, 0.5]) + np.array([1.0, -1.0, 3.0])
    data[:, 2] = 3.0  # a constant column: its variance is floored at min_var
    model = hx.AnalyticMixture(hx.Normal(3, rep), 3)
    params = model.initialize_from_sample(0, xp.asarray(data), min_var=0.01)
    assert backend_of(params) == xp_name(xp)
    weights, means, covariances = model.to_generative(params)
    assert_close(weights, np.full(3, 1.0 / 3.0), xp=xp)
    rows = [np.flatnonzero(np.all(np.abs(data - m) < 1e-12, axis=1)) for m in to_numpy(means)]
    assert all(len(r) == 1 for r in rows), "every mean must be one of the data points"
    assert len({int(r[0]) for r in rows}) == 3, "the means must be distinct data points"
    pooled = project_np(rep, np.cov(data, rowvar=False, bias=True))
    variances = np.diag(pooled)
    pooled = pooled + np.diag(np.maximum(variances, 0.01) - variances)
    assert_close(covariances, np.broadcast_to(pooled, (3, 3, 3)), xp=xp, atol=1e-10)
    with pytest.raises(hx.ValidationError, match="at least n_components=3"):
        model.initialize_from_sample(0, xp.asarray(data[:2]))


# -- bad input ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: hx.Mixture("x", 2), "needs a Normal component family"),
        (lambda: hx.Mixture(hx.Normal(2), 0), "n_components must be a positive int"),
        (lambda: hx.Mixture(hx.Normal(2), 2.0), "n_components must be a positive int"),
        (lambda: hx.Mixture(hx.Normal(2), True), "n_components must be a positive int"),
        (
            lambda: hx.Mixture(hx.Normal(2, hx.Diagonal()), 2, hx.PositiveDefinite()),
            "at most as general",
        ),
        (lambda: hx.Mixture(hx.Normal(2, hx.Scale()), 2, hx.Diagonal()), "at most as general"),
        (
            lambda: hx.AnalyticMixture(hx.Normal(2), 3, sub_rep=hx.Diagonal()),
            "complete mixture",
        ),
        (lambda: hx.AnalyticMixture(hx.Normal(2), 0), "n_components must be a positive int"),
    ],
)
def test_constructor_rejects_invalid_arguments(make: Any, match: str) -> None:
    with pytest.raises(hx.ValidationError, match=match):
        make()


def test_models_are_hashable_structure() -> None:
    model = hx.Mixture(hx.Normal(2), 3, hx.Diagonal())
    assert model == hx.Mixture(hx.Normal(2), 3, hx.Diagonal())
    assert hash(model) == hash(hx.Mixture(hx.Normal(2), 3, hx.Diagonal()))
    assert model != hx.Mixture(hx.Normal(2), 3)
    # (θ_y, Θ, θ_z): 3 + 3 * 1 + 1 for a Scale rep, sub_rep equal to the rep
    assert hx.AnalyticMixture(hx.Normal(2, hx.Scale()), 2, sub_rep=hx.Scale()).dim == 7
    assert "Diagonal" in repr(model)
    assert "AnalyticMixture" in repr(hx.AnalyticMixture(hx.Normal(2), 2))


def test_bad_data_and_parameters_are_rejected(xp: Any) -> None:
    case = fixed_case(hx.PositiveDefinite())
    model = case.model
    params = case.params(xp)
    ys = case.points
    with pytest.raises(hx.ValidationError, match=r"expects shape \(\.\.\., 3\)"):
        model.log_observable_density(params, xp.asarray(ys[:, :2]))
    with pytest.raises(hx.ValidationError, match=r"expects shape \(\.\.\., 3\)"):
        model.posterior_soft_assignments(params, xp.asarray(np.ones((4, 4))))
    bad = ys.copy()
    bad[1, 2] = np.nan
    with pytest.raises(hx.ValidationError, match="non-finite"):
        model.log_observable_density(params, xp.asarray(bad))
    bad[1, 2] = np.inf
    with pytest.raises(hx.ValidationError, match="non-finite"):
        model.expectation_maximization(params, xp.asarray(bad))
    empty = xp.asarray(np.zeros((0, 3)))
    for method in (
        model.average_log_observable_density,
        model.mean_posterior_statistics,
        model.expectation_maximization,
    ):
        with pytest.raises(hx.ValidationError, match="N >= 1"):
            method(params, empty)
    with pytest.raises(hx.ValidationError, match="N >= 1"):
        model.initialize_from_sample(0, empty)
    short = params[:-1]
    wrong_length = rf"expects shape \(\.\.\., {model.dim}\)"
    for method in (
        model.to_mean,
        model.to_natural,
        model.to_generative,
        model.log_partition_function,
        model.split_natural_mixture,
    ):
        with pytest.raises(hx.ValidationError, match=wrong_length):
            method(short)
    with pytest.raises(hx.ValidationError, match=wrong_length):
        model.log_observable_density(short, xp.asarray(ys))


def test_component_without_positive_definite_precision_is_rejected(xp: Any) -> None:
    model = hx.AnalyticMixture(hx.Normal(2, hx.Diagonal()), 2)
    # θ_y = (h, −½ diag Λ) with Λ = diag(1, −1): not a Normal
    params = xp.asarray(np.array([0.0, 0.0, -0.5, 0.5, 0.0, 0.0, 0.0, 0.0, 0.0]))
    assert tuple(params.shape) == (model.dim,)
    with pytest.raises(hx.ValidationError, match="not positive definite"):
        model.log_observable_density(params, xp.asarray(np.zeros((2, 2))))
    with pytest.raises(hx.ValidationError, match="not positive definite"):
        model.to_mean(params)


@pytest.mark.parametrize(
    ("rep", "weights", "covariance", "match"),
    [
        (hx.PositiveDefinite(), [0.5, 0.6], None, "must sum to one"),
        (hx.PositiveDefinite(), [1.0, 0.0], None, r"must all be > 0"),
        (hx.PositiveDefinite(), [1.2, -0.2], None, r"must all be > 0"),
        (hx.PositiveDefinite(), [np.nan, 0.5], None, "non-finite"),
        (hx.PositiveDefinite(), [0.2, 0.3, 0.5], None, r"needs weights of shape \(2,\)"),
        (hx.PositiveDefinite(), None, [[1.0, 2.0], [2.0, 1.0]], "not positive definite"),
        (hx.PositiveDefinite(), None, [[1.0, 0.2], [0.0, 1.0]], "not a symmetric matrix"),
        (hx.Diagonal(), None, [[1.0, 0.2], [0.2, 1.0]], "Diagonal structure"),
        (hx.Diagonal(), None, [[1.0, 0.0], [0.0, -1.0]], "not positive definite"),
        (hx.Scale(), None, [[1.0, 0.0], [0.0, 2.0]], "Scale structure"),
    ],
)
def test_from_generative_rejects_invalid_parameters(
    xp: Any, rep: hx.CovarianceRep, weights: Any, covariance: Any, match: str
) -> None:
    model = hx.AnalyticMixture(hx.Normal(2, rep), 2)
    w = np.array([0.4, 0.6]) if weights is None else np.array(weights)
    second = np.eye(2) if covariance is None else np.array(covariance)
    covariances = xp.asarray(np.stack([np.eye(2), second]))
    with pytest.raises(hx.ValidationError, match=match):
        model.from_generative(xp.asarray(w), xp.asarray(np.zeros((2, 2))), covariances)


def test_from_generative_rejects_wrong_shapes(xp: Any) -> None:
    model = hx.AnalyticMixture(hx.Normal(2), 2)
    weights = xp.asarray(np.array([0.4, 0.6]))
    covariances = xp.asarray(np.stack([np.eye(2)] * 2))
    with pytest.raises(hx.ValidationError, match=r"means of shape \(2, 2\)"):
        model.from_generative(weights, xp.asarray(np.zeros((3, 2))), covariances)
    with pytest.raises(hx.ValidationError, match=r"expects shape \(\.\.\., 2\)"):
        model.from_generative(weights, xp.asarray(np.zeros((2, 3))), covariances)
    with pytest.raises(hx.ValidationError, match=r"covariance has shape \(2, 3, 3\)"):
        model.from_generative(
            weights, xp.asarray(np.zeros((2, 2))), xp.asarray(np.stack([np.eye(3)] * 2))
        )
