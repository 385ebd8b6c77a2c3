"""``Normal(n, rep)``: sampling, initialisation, and errors (split from ``test_normal.py``).

Oracles as in ``test_normal.py``: NumPy/SciPy moments and the documented conventions.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from scipy import stats

import hmog_xp as hx
from tests.helpers import assert_close, backend_of, to_numpy, xp_name
from tests.strategies import REPS, spd_matrix
from tests.test_normal import REP_IDS, asarray, natural_np, project_np


def _batched_params(rep: hx.CovarianceRep) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(11)
    mean = rng.normal(size=(2, 3)) * 2.0
    cov = np.stack([spd_matrix(rng, 3, rep, 2.0) for _ in range(2)])
    return mean, cov, natural_np(rep, mean, cov)


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_sample_moments_match_the_distribution(xp: Any, rep: hx.CovarianceRep) -> None:
    family, count = hx.Normal(3, rep), 20_000
    mean, cov, theta = _batched_params(rep)
    params = asarray(xp, theta)
    samples = family.sample(5, params, count)
    assert samples.shape == (count, 2, 3)
    assert backend_of(samples) == xp_name(xp)
    assert to_numpy(samples).dtype == np.float64
    values = to_numpy(samples)
    assert np.all(np.isfinite(values))
    variances = np.diagonal(cov, axis1=-2, axis2=-1)
    mean_error = np.abs(values.mean(axis=0) - mean)
    assert np.all(mean_error < 5.0 * np.sqrt(variances / count)), mean_error
    centred = values - values.mean(axis=0)
    sample_cov = np.einsum("kbi,kbj->bij", centred, centred) / count
    standard_error = np.sqrt((variances[:, :, None] * variances[:, None, :] + cov**2) / count)
    assert np.all(np.abs(sample_cov - cov) < 5.0 * standard_error)


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_sample_seeds_and_generators(xp: Any, rep: hx.CovarianceRep) -> None:
    family = hx.Normal(3, rep)
    _, _, theta = _batched_params(rep)
    params = asarray(xp, theta)
    first, again = family.sample(3, params, 6), family.sample(3, params, 6)
    np.testing.assert_array_equal(to_numpy(first), to_numpy(again))
    other = family.sample(4, params, 6)
    assert not np.allclose(to_numpy(first), to_numpy(other))
    # a NumPy generator works on every backend and draws the same numbers everywhere
    drawn = family.sample(np.random.default_rng(9), params, 6)
    reference = family.sample(np.random.default_rng(9), theta, 6)
    assert isinstance(reference, np.ndarray)
    assert_close(drawn, reference, xp=xp, rtol=1e-10, atol=1e-10)
    assert family.sample(3, params, 0).shape == (0, 2, 3)


@pytest.mark.parametrize("count", [-1, 2.5, True, "10", None])
def test_sample_rejects_bad_counts(xp: Any, count: Any) -> None:
    family = hx.Normal(2, hx.Diagonal())
    params = family.standard_normal(xp=xp)
    with pytest.raises(hx.ValidationError, match="number of samples must be a non-negative int"):
        family.sample(0, params, count)


# -- initialisation ------------------------------------------------------------------------------


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_initialize(xp: Any, rep: hx.CovarianceRep) -> None:
    family = hx.Normal(3, rep)
    params = family.initialize(0, xp=xp)
    assert params.shape == (family.dim,)
    assert backend_of(params) == xp_name(xp)
    assert to_numpy(params).dtype == np.float64
    assert np.all(np.isfinite(to_numpy(params)))
    assert np.isfinite(to_numpy(family.log_partition_function(params)))
    mean, cov = family.to_moments(params)
    assert_close(cov, np.eye(3), xp=xp)
    assert np.all(np.abs(to_numpy(mean)) < 1.0)  # 0 + 0.1 * N(0, 1): within 10 sd
    np.testing.assert_array_equal(to_numpy(family.initialize(0, xp=xp)), to_numpy(params))
    assert not np.array_equal(to_numpy(family.initialize(1, xp=xp)), to_numpy(params))
    fixed = family.initialize(0, location=1.5, shape=0.0, xp=xp)
    assert_close(fixed, natural_np(rep, np.full(3, 1.5), np.eye(3)), xp=xp)


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_initialize_from_sample(xp: Any, rep: hx.CovarianceRep) -> None:
    family = hx.Normal(3, rep)
    rng = np.random.default_rng(2)
    data = rng.normal(size=(50, 3)) @ np.array([[1.0, 0.4, 0.0], [0.0, 1.5, 0.3], [0.0, 0, 0.7]])
    data = data + np.array([1.0, -2.0, 0.5])
    sample_mean = data.mean(axis=0)
    sample_cov = (data - sample_mean).T @ (data - sample_mean) / len(data)
    projected = project_np(rep, sample_cov)
    xs = asarray(xp, data)
    exact = family.initialize_from_sample(0, xs, shape=0.0)
    assert_close(exact, natural_np(rep, sample_mean, projected), xp=xp)

    moved = family.initialize_from_sample(0, xs, shape=0.1)
    assert moved.shape == (family.dim,)
    assert np.isfinite(to_numpy(family.log_partition_function(moved)))
    mean, cov = family.to_moments(moved)
    assert_close(cov, projected, xp=xp)
    shift = np.abs(to_numpy(mean) - sample_mean)
    assert np.all(shift > 0)
    assert np.all(shift < 0.1 * 6.0 * np.sqrt(np.diagonal(projected)))


def test_initialize_from_sample_rejects_bad_samples(xp: Any) -> None:
    family = hx.Normal(2, hx.PositiveDefinite())
    with pytest.raises(hx.ValidationError, match="xs must have shape"):
        family.initialize_from_sample(0, asarray(xp, np.zeros((0, 2))))
    with pytest.raises(hx.ValidationError, match="xs must have shape"):
        family.initialize_from_sample(0, asarray(xp, np.zeros((2, 3, 2))))
    with pytest.raises(hx.ValidationError, match="xs has shape"):
        family.initialize_from_sample(0, asarray(xp, np.zeros((4, 3))))
    with pytest.raises(hx.ValidationError, match="non-finite"):
        family.initialize_from_sample(0, asarray(xp, [[0.0, 1.0], [np.nan, 2.0]]))


# -- errors ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "match"),
    [
        ((0,), "positive int"),
        ((-2,), "positive int"),
        ((2.0,), "positive int"),
        ((True,), "positive int"),
        ((2, "full"), "rep must be"),
        ((2, hx.PositiveDefinite), "rep must be"),
    ],
)
def test_constructor_rejects_invalid_arguments(args: tuple[Any, ...], match: str) -> None:
    with pytest.raises(hx.ValidationError, match=match):
        hx.Normal(*args)


def test_family_is_hashable_structure() -> None:
    assert hx.Normal(3, hx.Diagonal()) == hx.Normal(3, hx.Diagonal())
    assert hash(hx.Normal(3)) == hash(hx.Normal(3, hx.PositiveDefinite()))
    assert hx.Normal(3, hx.Diagonal()) != hx.Normal(3, hx.Scale())
    assert hx.Normal(3).dim == 3 + 6
    assert hx.Normal(3, hx.Diagonal()).dim == 6
    assert hx.Normal(3, hx.Scale()).dim == 4
    assert hx.Normal(3, hx.Scale()).data_shape == (3,)


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_wrong_dimensions_raise(xp: Any, rep: hx.CovarianceRep) -> None:
    family = hx.Normal(3, rep)
    params = family.standard_normal(xp=xp)
    wrong_params = asarray(xp, np.zeros(family.dim + 1))
    for method in (family.log_partition_function, family.to_mean):
        with pytest.raises(hx.ValidationError, match=r"params has shape \(\d+,\)"):
            method(wrong_params)
    for method in (family.to_natural, family.negative_entropy):
        with pytest.raises(hx.ValidationError, match="means has shape"):
            method(wrong_params)
    with pytest.raises(hx.ValidationError, match=r"x has shape \(4, 2\)"):
        family.log_density(params, asarray(xp, np.zeros((4, 2))))
    with pytest.raises(hx.ValidationError, match="x has shape"):
        family.sufficient_statistic(asarray(xp, np.zeros((4, 4))))


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_log_density_rejects_params_of_wrong_dimension(xp: Any, rep: hx.CovarianceRep) -> None:
    family = hx.Normal(3, rep)
    wrong_params = asarray(xp, np.zeros(family.dim + 1))
    with pytest.raises(hx.ValidationError, match=r"params has shape \(\d+,\)"):
        family.log_density(wrong_params, asarray(xp, np.zeros(3)))
    with pytest.raises(hx.ValidationError, match="params has shape"):
        family.density(wrong_params, asarray(xp, np.zeros((2, 3))))


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_non_finite_values_raise(xp: Any, rep: hx.CovarianceRep) -> None:
    family = hx.Normal(3, rep)
    params = family.standard_normal(xp=xp)
    bad_x = asarray(xp, [[0.0, np.nan, 1.0], [0.0, 0.0, 0.0]])
    with pytest.raises(hx.ValidationError, match="x contains 1 non-finite"):
        family.log_density(params, bad_x)
    bad_params = np.zeros(family.dim)
    bad_params[0] = np.inf
    with pytest.raises(hx.ValidationError, match="params contains 1 non-finite"):
        family.log_partition_function(asarray(xp, bad_params))


def _invalid_precisions() -> list[Any]:
    return [
        pytest.param(hx.Diagonal(), np.array([2.0, -1.0]), id="Diagonal-negative"),
        pytest.param(hx.Diagonal(), np.array([1.0, 0.0]), id="Diagonal-zero"),
        pytest.param(hx.Scale(), np.array([-0.5]), id="Scale-negative"),
        pytest.param(hx.PositiveDefinite(), np.array([1.0, 2.0, 1.0]), id="PD-indefinite"),
        pytest.param(hx.PositiveDefinite(), np.array([-1.0, 0.0, -1.0]), id="PD-negative"),
    ]


@pytest.mark.parametrize(("rep", "packed"), _invalid_precisions())
def test_non_positive_definite_precision_raises(
    xp: Any, rep: hx.CovarianceRep, packed: np.ndarray
) -> None:
    family = hx.Normal(2, rep)
    params = family.join_location_precision(asarray(xp, [0.5, -0.5]), asarray(xp, packed))
    for method in (family.log_partition_function, family.to_mean):
        with pytest.raises(hx.ValidationError, match=r"precision of .* is not positive definite"):
            method(params)
    with pytest.raises(hx.ValidationError, match="not positive definite"):
        family.log_density(params, asarray(xp, [0.0, 0.0]))
    with pytest.raises(hx.ValidationError, match="not positive definite"):
        family.sample(0, params, 3)
    # the same matrix as a covariance in mean coordinates
    means = family.join_mean_covariance(asarray(xp, [0.5, -0.5]), asarray(xp, packed))
    for method in (family.to_natural, family.negative_entropy):
        with pytest.raises(hx.ValidationError, match=r"covariance of .* is not positive definite"):
            method(means)


@pytest.mark.parametrize(
    ("rep", "covariance", "match"),
    [
        (hx.Diagonal(), [[1.0, 0.2], [0.2, 1.0]], "Diagonal structure"),
        (hx.Scale(), [[1.0, 0.0], [0.0, 2.0]], "Scale structure"),
        (hx.Scale(), [[1.0, 0.1], [0.1, 1.0]], "Scale structure"),
        (hx.PositiveDefinite(), [[1.0, 0.2], [0.5, 1.0]], "PositiveDefinite structure"),
        (hx.PositiveDefinite(), [[1.0, 2.0], [2.0, 1.0]], "not positive definite"),
        (hx.Diagonal(), [[1.0, 0.0], [0.0, -1.0]], "not positive definite"),
        (hx.PositiveDefinite(), [[1.0, 0.0], [0.0, np.nan]], "covariance contains 1 non-finite"),
    ],
)
def test_from_moments_rejects_invalid_covariances(
    xp: Any, rep: hx.CovarianceRep, covariance: list[list[float]], match: str
) -> None:
    family = hx.Normal(2, rep)
    with pytest.raises(hx.ValidationError, match=match):
        family.from_moments(asarray(xp, [0.0, 1.0]), asarray(xp, covariance))


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_from_moments_rejects_wrong_shapes(xp: Any, rep: hx.CovarianceRep) -> None:
    family = hx.Normal(2, rep)
    with pytest.raises(hx.ValidationError, match=r"covariance has shape \(2, 3\)"):
        family.from_moments(asarray(xp, [0.0, 1.0]), asarray(xp, np.zeros((2, 3))))
    with pytest.raises(hx.ValidationError, match="covariance has shape"):
        family.from_moments(asarray(xp, [0.0, 1.0]), asarray(xp, [1.0, 1.0]))
    with pytest.raises(hx.ValidationError, match=r"mean has shape \(3,\)"):
        family.from_moments(asarray(xp, [0.0, 1.0, 2.0]), asarray(xp, np.eye(2)))


# -- validation switch --------------------------------------------------------------------------


def test_validation_switch_turns_value_checks_off_and_is_restored(xp: Any) -> None:
    family = hx.Normal(2, hx.Diagonal())
    params = family.standard_normal(xp=xp)
    bad_x = asarray(xp, [[np.nan, 0.0], [0.0, 0.0]])
    with hx.validation(False):
        result = to_numpy(family.log_density(params, bad_x))
    assert np.isnan(result[0])
    expected = stats.multivariate_normal(np.zeros(2), np.eye(2)).logpdf([0.0, 0.0])
    np.testing.assert_allclose(result[1], expected, rtol=1e-12)
    with pytest.raises(hx.ValidationError, match="non-finite"):
        family.log_density(params, bad_x)
    # restored even when the block raises
    with pytest.raises(RuntimeError), hx.validation(False):
        raise RuntimeError
    with pytest.raises(hx.ValidationError, match="non-finite"):
        family.log_density(params, bad_x)
    assert hx.set_validation(False) is True
    try:
        family.log_density(params, bad_x)
    finally:
        assert hx.set_validation(True) is False
    # shape checks stay on without validation
    with hx.validation(False), pytest.raises(hx.ValidationError, match="x has shape"):
        family.log_density(params, asarray(xp, np.zeros(3)))
