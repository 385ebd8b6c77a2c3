"""Categorical: coordinates, densities and sampling against direct formulas, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hmog_xp as hx
from tests.helpers import assert_close, to_numpy
from tests.strategies import probability_vectors, seeds


def _natural(probs: np.ndarray) -> np.ndarray:
    """Textbook natural parameters log(π_k / π_0)."""
    return np.log(probs[..., 1:]) - np.log(probs[..., :1])


@given(probs=probability_vectors())
def test_coordinates_match_textbook_formulas(xp, probs) -> None:
    family = hx.Categorical(probs.size)
    params = family.from_probs(xp.asarray(probs))
    assert_close(params, _natural(probs), xp=xp)
    assert_close(family.to_probs(params), probs, xp=xp)
    assert_close(family.to_mean(params), probs[1:], xp=xp)
    assert_close(family.to_natural(family.to_mean(params)), _natural(probs), xp=xp)
    assert_close(family.log_partition_function(params), -np.log(probs[0]), xp=xp)
    assert_close(
        family.negative_entropy(family.to_mean(params)), np.sum(probs * np.log(probs)), xp=xp
    )


@given(probs=probability_vectors())
def test_log_density_is_log_probability_of_each_label(xp, probs) -> None:
    family = hx.Categorical(probs.size)
    params = family.from_probs(xp.asarray(probs))
    labels = np.arange(probs.size)
    assert_close(family.log_density(params, xp.asarray(labels)), np.log(probs), xp=xp)
    assert_close(family.density(params, xp.asarray(labels)), probs, xp=xp)


@given(p=probability_vectors(max_categories=4), seed=seeds)
def test_relative_entropy_matches_formula_and_is_zero_at_equality(xp, p, seed) -> None:
    q = np.random.default_rng(seed).dirichlet(np.ones(p.size)) * 0.98 + 0.02 / p.size
    family = hx.Categorical(p.size)
    p_means = family.to_mean(family.from_probs(xp.asarray(p)))
    kl = family.relative_entropy(p_means, family.from_probs(xp.asarray(q)))
    assert_close(kl, np.sum(p * np.log(p / q)), xp=xp)
    assert to_numpy(kl) >= -1e-12
    same = family.relative_entropy(p_means, family.from_probs(xp.asarray(p)))
    assert_close(same, 0.0, xp=xp, atol=1e-12, check_dtype=False)


def test_sufficient_statistic_is_one_hot_without_reference_class(xp) -> None:
    family = hx.Categorical(4)
    statistic = family.sufficient_statistic(xp.asarray([0, 2, 3, 1]))
    expected = np.array([[0, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]], dtype=np.float64)
    assert_close(statistic, expected, xp=xp)
    assert_close(family.log_base_measure(xp.asarray([0, 1])), np.zeros(2), xp=xp)


def test_extreme_parameters_do_not_overflow(xp) -> None:
    family = hx.Categorical(3)
    params = xp.asarray([1000.0, -1000.0], dtype=xp.float64)
    assert_close(family.log_partition_function(params), 1000.0, xp=xp)
    assert_close(family.to_probs(params), np.array([0.0, 1.0, 0.0]), xp=xp, atol=1e-300)


def test_batched_calls_equal_per_item_calls(xp) -> None:
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(5), size=(2, 3))
    family = hx.Categorical(5)
    params = family.from_probs(xp.asarray(probs))
    assert tuple(params.shape) == (2, 3, 4)
    labels = rng.integers(0, 5, size=(2, 3))
    batched = to_numpy(family.log_density(params, xp.asarray(labels)))
    for i in range(2):
        for j in range(3):
            single = family.log_density(params[i, j, :], xp.asarray(labels[i, j]))
            assert_close(single, batched[i, j], xp=xp)
    # Broadcasting: one parameter vector against many labels.
    many = family.log_density(params[0, 0, :], xp.asarray(labels))
    assert_close(many, np.log(probs[0, 0][labels]), xp=xp)


def test_sample_frequencies_match_probabilities(xp) -> None:
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    family = hx.Categorical(4)
    params = family.from_probs(xp.asarray(probs))
    draws = family.sample(3, params, 20_000)
    assert tuple(draws.shape) == (20_000,)
    counts = np.bincount(to_numpy(draws), minlength=4)
    standard_error = np.sqrt(probs * (1 - probs) / 20_000)
    assert np.all(np.abs(counts / 20_000 - probs) < 5 * standard_error)
    again = family.sample(3, params, 20_000)
    np.testing.assert_array_equal(to_numpy(again), to_numpy(draws))
    batched = family.sample(4, xp.stack([params, params]), 7)
    assert tuple(batched.shape) == (7, 2)


def test_initialize_and_initialize_from_sample(xp) -> None:
    family = hx.Categorical(3)
    params = family.initialize(0, shape=0.5, xp=xp)
    assert tuple(params.shape) == (2,)
    assert np.all(np.isfinite(to_numpy(params)))
    labels = xp.asarray([0, 1, 1, 2, 2, 2])
    smoothed = family.initialize_from_sample(0, labels, shape=0.0, pseudocount=1.0)
    expected = np.array([2.0, 3.0, 4.0]) / 9.0
    assert_close(family.to_probs(smoothed), expected, xp=xp)
    noisy = family.initialize_from_sample(0, labels, shape=0.1)
    assert 0 < np.max(np.abs(to_numpy(noisy) - to_numpy(smoothed))) < 1.0


@pytest.mark.parametrize(
    ("probs", "match"),
    [
        ([0.5, 0.6], "must sum to one"),
        ([1.0, 0.0], "must all be > 0"),
        ([0.2, 0.3, 0.5], r"has shape \(3,\); Categorical\(2\) expects shape \(..., 2\)"),
        ([np.nan, 1.0], "non-finite"),
    ],
)
def test_bad_probabilities_are_rejected(xp, probs, match) -> None:
    with pytest.raises(hx.ValidationError, match=match):
        hx.Categorical(2).from_probs(xp.asarray(probs, dtype=xp.float64))


def test_bad_labels_and_parameters_are_rejected(xp) -> None:
    family = hx.Categorical(3)
    params = xp.asarray([0.1, 0.2], dtype=xp.float64)
    with pytest.raises(hx.ValidationError, match=r"labels outside 0..2"):
        family.log_density(params, xp.asarray([0, 3]))
    with pytest.raises(hx.ValidationError, match="must be integer class labels"):
        family.log_density(params, xp.asarray([0.0, 1.0], dtype=xp.float64))
    with pytest.raises(hx.ValidationError, match=r"expects shape \(..., 2\)"):
        family.log_partition_function(xp.asarray([0.1, 0.2, 0.3], dtype=xp.float64))
    with pytest.raises(hx.ValidationError, match=r"probabilities π_1..π_2 > 0 with sum < 1"):
        family.to_natural(xp.asarray([0.7, 0.6], dtype=xp.float64))
    with pytest.raises(hx.ValidationError, match="non-negative int"):
        family.sample(0, params, -1)


@pytest.mark.parametrize("k", [0, -1, 2.5, True])
def test_invalid_number_of_categories(k) -> None:
    with pytest.raises(hx.ValidationError, match="number of categories >= 1"):
        hx.Categorical(k)


def test_single_category_is_a_point_mass(xp) -> None:
    family = hx.Categorical(1)
    params = xp.zeros((0,), dtype=xp.float64)
    assert_close(family.to_probs(params), np.ones(1), xp=xp)
    assert_close(family.log_partition_function(params), 0.0, xp=xp, check_dtype=False)
    assert_close(family.log_density(params, xp.asarray([0, 0])), np.zeros(2), xp=xp)
    assert_close(family.sample(0, params, 3), np.zeros(3, dtype=np.int64), xp=xp)


@given(k=st.integers(min_value=2, max_value=6))
def test_dimensions(k) -> None:
    family = hx.Categorical(k)
    assert family.dim == k - 1
    assert family.data_shape == ()
    assert family == hx.Categorical(k)
    assert hash(family) == hash(hx.Categorical(k))
