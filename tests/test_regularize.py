"""EM stabilisers move the mean statistics by exactly the documented amounts, on every backend.

Oracle: the generative form of the plain and the stabilised mean coordinates (via
``to_natural`` and ``to_generative``) and the formulas of :mod:`hmog_xp.hmog._regularize`.
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


def test_noise_floor_adds_exactly_to_the_noise(xp: Any) -> None:
    model, params, _ = _problem(xp)
    means = model.to_mean(params)
    plain = _generative(model, means)
    floored = _generative(model, regularize_means(model, means, hx.Regularization(0, 0.25, 0)))
    assert_close(floored.noise, to_numpy(plain.noise) + 0.25, rtol=1e-9)
    assert_close(floored.loadings, plain.loadings, rtol=1e-9, atol=1e-12)
    assert_close(floored.covariances, plain.covariances, rtol=1e-9, atol=1e-12)


def test_reg_covar_adds_to_every_component_covariance(xp: Any) -> None:
    model, params, _ = _problem(xp, obs_rep=hx.PositiveDefinite)
    means = model.to_mean(params)
    upper = model.posterior_upper
    family = upper.component_man
    regularized = regularize_means(model, means, hx.Regularization(0.5, 0, 0))
    before = family.split_mean_covariance(upper.split_mean_mixture(model.split_coords(means)[2])[0])
    after = family.split_mean_covariance(
        upper.split_mean_mixture(model.split_coords(regularized)[2])[0]
    )
    expected = to_numpy(family.rep.unpack(before[1], 2)) + 0.5 * np.eye(2)
    assert_close(family.rep.unpack(after[1], 2), expected, rtol=1e-10)
    assert_close(after[0], before[0], rtol=1e-12)


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
