"""Exact marginal densities of rows with missing entries, against a dense SciPy oracle."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import logsumexp
from scipy.stats import multivariate_normal

import hmog_xp as hx
from hmog_xp.em import fit_em
from hmog_xp.hmog import MarginalizedHMoG
from hmog_xp.hmog._missing import (
    expected_statistics,
    impute_conditional_mean,
    observed_posteriors,
)
from tests.helpers import assert_close, to_numpy


def _oracle(generative, data: np.ndarray, observed: np.ndarray) -> np.ndarray:
    weights, means, covariances, loadings, bias, noise = (to_numpy(part) for part in generative)
    p = data.shape[1]
    noise = np.broadcast_to(np.reshape(noise, (-1,)), (p,))
    values = []
    for row, seen in zip(data, observed, strict=True):
        terms = []
        for k in range(len(weights)):
            mean = (loadings @ means[k] + bias)[seen]
            covariance = (loadings @ covariances[k] @ loadings.T + np.diag(noise))[
                np.ix_(seen, seen)
            ]
            terms.append(
                np.log(weights[k]) + multivariate_normal(mean, covariance).logpdf(row[seen])
            )
        values.append(logsumexp(terms))
    return np.array(values)


@pytest.mark.parametrize("obs_rep", [hx.Diagonal, hx.Scale])
def test_observed_log_density_equals_the_dense_marginal(xp, obs_rep) -> None:
    rng = np.random.default_rng(0)
    model = hx.analytic_hmog(6, obs_rep, 2, 3)
    data = rng.normal(size=(40, 6)) * 2.0
    params = model.initialize_from_sample(1, xp.asarray(data))
    observed = rng.uniform(size=data.shape) > 0.3
    observed[:, 0] |= ~observed.any(axis=1)  # every row keeps one entry
    observed[0] = True  # a complete row
    holes = np.where(observed, data, 1e6)  # missing entries are ignored, whatever they hold
    posteriors = observed_posteriors(model, params, xp.asarray(holes), xp.asarray(observed))
    values = posteriors.log_density()
    expected = _oracle(model.to_generative(params), data, observed)
    assert_close(values, expected, xp=xp, rtol=1e-9, atol=1e-9)
    complete = model.log_observable_density(params, xp.asarray(data[:1]))
    assert_close(values[:1], to_numpy(complete), xp=xp, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("obs_rep", [hx.Diagonal, hx.Scale])
def test_conditional_means_and_responsibilities_equal_the_dense_formulas(xp, obs_rep) -> None:
    rng = np.random.default_rng(2)
    model = hx.analytic_hmog(5, obs_rep, 2, 3)
    data = rng.normal(size=(25, 5)) * 1.5
    params = model.initialize_from_sample(3, xp.asarray(data))
    observed = rng.uniform(size=data.shape) > 0.4
    observed[:, 1] |= ~observed.any(axis=1)
    holes = np.where(observed, data, -7.0)
    posteriors = observed_posteriors(model, params, xp.asarray(holes), xp.asarray(observed))
    completed = impute_conditional_mean(posteriors, xp.asarray(holes), xp.asarray(observed))
    weights, means, covariances, loadings, bias, noise = (
        to_numpy(part) for part in model.to_generative(params)
    )
    psi = np.broadcast_to(np.reshape(noise, (-1,)), (5,))
    expected_rows, expected_probs = [], []
    for row, seen in zip(holes, observed, strict=True):
        terms, conditional = [], []
        for k in range(3):
            mean = loadings @ means[k] + bias
            cov = loadings @ covariances[k] @ loadings.T + np.diag(psi)
            c_oo = cov[np.ix_(seen, seen)]
            terms.append(
                np.log(weights[k]) + multivariate_normal(mean[seen], c_oo).logpdf(row[seen])
            )
            gain = cov[np.ix_(~seen, seen)] @ np.linalg.inv(c_oo)
            conditional.append(mean[~seen] + gain @ (row[seen] - mean[seen]))
        probs = np.exp(np.array(terms) - logsumexp(terms))
        filled = row.copy()
        filled[~seen] = sum(p * c for p, c in zip(probs, conditional, strict=True))
        expected_rows.append(filled)
        expected_probs.append(probs)
    assert_close(
        posteriors.responsibilities(), np.array(expected_probs), xp=xp, rtol=1e-8, atol=1e-10
    )
    assert_close(completed, np.array(expected_rows), xp=xp, rtol=1e-8, atol=1e-9)


def test_full_noise_and_bad_shapes_are_refused(xp) -> None:
    model = hx.analytic_hmog(4, hx.PositiveDefinite, 2, 2)
    data = xp.asarray(np.random.default_rng(1).normal(size=(10, 4)))
    params = model.initialize_from_sample(0, data)
    with pytest.raises(hx.ValidationError, match="needs diagonal or isotropic noise"):
        observed_posteriors(model, params, data, xp.ones((10, 4), dtype=xp.bool))
    diagonal = hx.analytic_hmog(4, hx.Diagonal, 2, 2)
    params = diagonal.initialize_from_sample(0, data)
    with pytest.raises(hx.ValidationError, match="observed must have the shape of xs"):
        observed_posteriors(diagonal, params, data, xp.ones((10, 3), dtype=xp.bool))


@pytest.mark.parametrize("obs_rep", [hx.Diagonal, hx.Scale])
def test_expected_statistics_equal_the_complete_data_e_step_without_holes(xp, obs_rep) -> None:
    rng = np.random.default_rng(5)
    model = hx.analytic_hmog(5, obs_rep, 2, 3)
    xs = xp.asarray(rng.normal(size=(30, 5)))
    params = model.initialize_from_sample(0, xs)
    observed = xp.ones(xs.shape, dtype=xp.bool)
    means = expected_statistics(
        model, observed_posteriors(model, params, xs, observed), xs, observed
    )
    assert_close(
        means, to_numpy(model.mean_posterior_statistics(params, xs)), xp=xp, rtol=1e-9, atol=1e-10
    )


def test_em_with_missing_entries_never_decreases_the_observed_likelihood(xp) -> None:
    rng = np.random.default_rng(6)
    model = hx.analytic_hmog(6, hx.Diagonal, 2, 3)
    centres = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    latent = centres[rng.integers(0, 3, size=200)] + 0.5 * rng.normal(size=(200, 2))
    data = latent @ rng.normal(size=(6, 2)).T + 0.4 * rng.normal(size=(200, 6))
    observed_np = rng.uniform(size=data.shape) > 0.2
    observed_np[:, 0] |= ~observed_np.any(axis=1)
    xs, observed = xp.asarray(np.where(observed_np, data, 0.0)), xp.asarray(observed_np)
    params = model.initialize_from_sample(1, xp.asarray(data))
    history = []
    for _ in range(15):
        posteriors = observed_posteriors(model, params, xs, observed)
        history.append(float(xp.mean(posteriors.log_density())))
        params = model.mstep(expected_statistics(model, posteriors, xs, observed))
    history.append(float(xp.mean(observed_posteriors(model, params, xs, observed).log_density())))
    steps = np.diff(history)
    assert np.all(steps >= -1e-10 * np.abs(history[1:])), steps
    assert history[-1] > history[0] + 0.05


def _holey_problem(xp, fraction: float = 0.2, n: int = 200):
    rng = np.random.default_rng(6)
    model = hx.analytic_hmog(6, hx.Diagonal, 2, 3)
    centres = np.array([[3.0, 0.0], [-3.0, 0.0], [0.0, 3.0]])
    latent = centres[rng.integers(0, 3, size=n)] + 0.5 * rng.normal(size=(n, 2))
    data = latent @ rng.normal(size=(6, 2)).T + 0.4 * rng.normal(size=(n, 6))
    observed = rng.uniform(size=data.shape) > fraction
    observed[:, 0] |= ~observed.any(axis=1)
    params = model.initialize_from_sample(1, xp.asarray(data))
    return model, params, data, observed


@pytest.mark.parametrize("chunk_size", [7, 10_000])
def test_fit_em_on_missing_entries_follows_the_reference_loop(xp, chunk_size) -> None:
    model, params, data, observed_np = _holey_problem(xp)
    holes = xp.asarray(np.where(observed_np, data, np.nan))
    fit = fit_em(MarginalizedHMoG(model), params, holes, max_iter=6, tol=0.0, chunk_size=chunk_size)
    xs, observed = xp.asarray(np.where(observed_np, data, 0.0)), xp.asarray(observed_np)
    reference, history = params, []
    for _ in range(6):
        posteriors = observed_posteriors(model, reference, xs, observed)
        history.append(float(xp.mean(posteriors.log_density())))
        reference = model.mstep(expected_statistics(model, posteriors, xs, observed))
    assert_close(fit.params, to_numpy(reference), xp=xp, rtol=1e-7, atol=1e-9)
    np.testing.assert_allclose(fit.log_likelihoods[:-1], history, rtol=1e-10)


def test_without_missing_entries_fit_em_is_the_complete_data_fit(xp) -> None:
    model, params, data, _ = _holey_problem(xp)
    xs = xp.asarray(data)
    marginalized = fit_em(MarginalizedHMoG(model), params, xs, max_iter=5, tol=0.0)
    complete = fit_em(model, params, xs, max_iter=5, tol=0.0)
    assert_close(marginalized.params, to_numpy(complete.params), xp=xp, rtol=1e-8, atol=1e-9)
    np.testing.assert_allclose(marginalized.log_likelihoods, complete.log_likelihoods, rtol=1e-10)


def test_marginalized_inputs_are_checked(xp) -> None:
    model, params, data, _ = _holey_problem(xp, n=20)
    wrapped = MarginalizedHMoG(model)
    row = data.copy()
    row[3] = np.nan
    with pytest.raises(hx.ValidationError, match="row 3 of xs has no observed entry"):
        fit_em(wrapped, params, xp.asarray(row))
    column = data.copy()
    column[:, 2] = np.nan
    with pytest.raises(hx.ValidationError, match="column 2 of xs has no observed entry"):
        fit_em(wrapped, params, xp.asarray(column))
    infinite = data.copy()
    infinite[1, 1] = np.inf
    with pytest.raises(hx.ValidationError, match="only NaN marks a missing entry"):
        fit_em(wrapped, params, xp.asarray(infinite))
    with pytest.raises(hx.ValidationError, match="has full noise"):
        MarginalizedHMoG(hx.analytic_hmog(6, hx.PositiveDefinite, 2, 3))
