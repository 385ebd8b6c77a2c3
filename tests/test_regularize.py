"""EM stabilisers are floors: they move the M-step only where it would cross them.

Oracles: the generative form of the plain M-step (``to_natural`` then ``to_generative``)
floored by NumPy (``np.maximum`` on variances, ``numpy.linalg.eigh`` on covariances), and the
property that an interior point (every variance above the floors) is left unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp.em import em_step, observable_statistics
from hmog_xp.hmog._regularize import regularize_means
from tests.helpers import assert_close, to_numpy
from tests.test_em import _problem


def _generative(model: Any, means: Any) -> Any:
    return model.to_generative(model.to_natural(means))


def _data_means(xp: Any, obs_rep: Any = hx.Diagonal) -> tuple[Any, Any]:
    """The model and the mean posterior statistics of its data (an M-step's input)."""
    model, params, xs = _problem(xp, obs_rep=obs_rep)
    return model, model.mean_posterior_statistics(params, xs)


def _floor_eigenvalues(matrices: np.ndarray, floor: float) -> np.ndarray:
    values, vectors = np.linalg.eigh(matrices)
    return (vectors * np.maximum(values, floor)[..., None, :]) @ np.swapaxes(vectors, -1, -2)


def test_noise_floor_lifts_only_the_variances_below_it(xp: Any) -> None:
    model, means = _data_means(xp)
    plain = _generative(model, means)
    noise = to_numpy(plain.noise)
    floor = float(np.median(noise))  # half the columns below, half above
    floored = _generative(model, regularize_means(model, means, hx.Regularization(0, floor, 0)))
    assert_close(floored.noise, np.maximum(noise, floor), rtol=1e-9, atol=1e-13)
    assert_close(floored.loadings, plain.loadings, rtol=1e-9, atol=1e-12)
    assert_close(floored.covariances, plain.covariances, rtol=1e-9, atol=1e-12)
    assert_close(floored.means, plain.means, rtol=1e-9, atol=1e-12)


def test_noise_floor_of_isotropic_noise_lifts_the_shared_variance(xp: Any) -> None:
    model, means = _data_means(xp, hx.Scale)
    noise = float(to_numpy(_generative(model, means).noise))
    for floor, expected in [(2.0 * noise, 2.0 * noise), (0.5 * noise, noise)]:
        regularized = regularize_means(model, means, hx.Regularization(0, floor, 0))
        assert_close(_generative(model, regularized).noise, np.asarray(expected), rtol=1e-9)


def test_noise_floor_of_full_noise_lifts_its_small_eigenvalues(xp: Any) -> None:
    model, means = _data_means(xp, hx.PositiveDefinite)
    plain = _generative(model, means)
    noise = to_numpy(plain.noise)
    floor = float(np.median(np.linalg.eigvalsh(noise)))
    floored = _generative(model, regularize_means(model, means, hx.Regularization(0, floor, 0)))
    assert_close(floored.noise, _floor_eigenvalues(noise, floor), rtol=1e-9, atol=1e-12)
    assert_close(floored.loadings, plain.loadings, rtol=1e-9, atol=1e-12)


def test_reg_covar_floors_the_eigenvalues_of_every_component_covariance(xp: Any) -> None:
    model, means = _data_means(xp)
    upper = model.posterior_upper
    family = upper.component_man
    before_components, before_weights = upper.split_mean_mixture(model.split_coords(means)[2])
    mean_before, covariance_before = family.split_mean_covariance(before_components)
    dense = to_numpy(family.rep.unpack(covariance_before, 2))
    floor = float(np.median(np.linalg.eigvalsh(dense)))
    regularized = regularize_means(model, means, hx.Regularization(floor, 0, 0))
    after_components, after_weights = upper.split_mean_mixture(model.split_coords(regularized)[2])
    mean_after, covariance_after = family.split_mean_covariance(after_components)
    expected = _floor_eigenvalues(dense, floor)
    assert_close(family.rep.unpack(covariance_after, 2), expected, rtol=1e-10, atol=1e-12)
    assert_close(mean_after, mean_before, rtol=1e-12)
    assert_close(after_weights, before_weights, rtol=1e-12)


def test_floors_below_an_interior_point_leave_it_unchanged(xp: Any) -> None:
    # The fixed point of exact EM stays a fixed point of the stabilised EM.
    model, means = _data_means(xp)
    plain = _generative(model, means)
    upper = model.posterior_upper
    family = upper.component_man
    components = upper.split_mean_mixture(model.split_coords(means)[2])[0]
    covariances = to_numpy(family.rep.unpack(family.split_mean_covariance(components)[1], 2))
    reg_covar = 0.9 * float(np.min(np.linalg.eigvalsh(covariances)))
    noise_floor = 0.9 * float(np.min(to_numpy(plain.noise)))
    regularized = regularize_means(model, means, hx.Regularization(reg_covar, noise_floor, 0))
    assert_close(regularized, to_numpy(means), rtol=1e-12, atol=1e-14)


def test_pseudo_weights_revive_an_empty_component(xp: Any) -> None:
    model, params, _ = _problem(xp)
    obs, cross, upper_means = model.split_coords(model.to_mean(params))
    upper = model.posterior_upper
    total, weighted_rest, probs = upper.split_coords(upper_means)
    # Empty component 2 (the second "rest" column): component 0 absorbs its mass.
    keep = xp.asarray([1.0, 0.0], dtype=probs.dtype)
    emptied = upper.join_coords(total, weighted_rest * keep, probs * keep)
    means = model.join_coords(obs, cross, emptied)
    weights = to_numpy(xp.concat([1.0 - xp.sum(probs * keep, keepdims=True), probs * keep]))
    epsilon = 1e-3
    regularized = regularize_means(model, means, hx.Regularization(0, 0, epsilon))
    revived = _generative(model, regularized)
    assert_close(revived.weights, (weights + epsilon) / (1 + 3 * epsilon), rtol=1e-10)
    assert np.all(np.isfinite(to_numpy(revived.covariances)))


def test_a_constant_column_gets_exactly_the_noise_floor(xp: Any) -> None:
    model, params, xs = _problem(xp)
    constant = xp.concat([xs[:, :4], xp.zeros_like(xs[:, 4:])], axis=1)
    means = model.mean_posterior_statistics(params, constant)
    regularized = regularize_means(model, means, hx.Regularization(0, 1e-3, 0))
    noise = to_numpy(_generative(model, regularized).noise)
    assert noise[4] == pytest.approx(1e-3, rel=1e-8)


def test_exact_regularization_is_the_identity_and_bad_values_are_named(xp: Any) -> None:
    model, params, xs = _problem(xp)
    means = model.to_mean(params)
    assert regularize_means(model, means, hx.Regularization()) is means
    statistics = observable_statistics(model, xs, 64)
    with pytest.raises(hx.ValidationError, match="reg_covar must be a finite number >= 0"):
        hx.fit_em(model, params, xs, regularization=hx.Regularization(-1.0))
    plain, _ = em_step(model, params, xs, statistics, 64)
    same, _ = em_step(model, params, xs, statistics, 64, hx.Regularization(0.0, 0.0, 0.0))
    assert_close(same, plain, rtol=1e-12)
