"""``Normal(n, rep)``: coordinates, densities, divergences, changes of rep, sampling, errors.

Oracles: ``scipy.stats.multivariate_normal``, dense NumPy linear algebra, the closed-form
Gaussian KL divergence, and natural / mean coordinates written in NumPy from the documented
convention (``θ = (h, −½ q(Λ))``, ``η = (μ, s₂(Σ + μμᵀ))``, DESIGN §4.1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from scipy import stats

import hmog_xp as hx
from tests.helpers import assert_close, backend_of, to_numpy, xp_name
from tests.strategies import REPS, NormalCase, normal_cases, reps, seeds, spd_matrix

MAX_DIM = 4
REP_IDS = [type(r).__name__ for r in REPS]

# -- NumPy oracles --------------------------------------------------------------------------------


def project_np(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """Frobenius projection onto the rep: keep / diagonal / mean of the diagonal times I."""
    n = matrix.shape[-1]
    if isinstance(rep, hx.PositiveDefinite):
        return matrix.copy()
    diagonal = np.diagonal(matrix, axis1=-2, axis2=-1)
    if isinstance(rep, hx.Diagonal):
        return diagonal[..., :, None] * np.eye(n)
    return diagonal.mean(axis=-1)[..., None, None] * np.eye(n)


def storage_np(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """Plain storage: upper triangle row by row / diagonal / the scalar of ``s I``."""
    n = matrix.shape[-1]
    if isinstance(rep, hx.PositiveDefinite):
        rows, cols = np.triu_indices(n)
        return matrix[..., rows, cols]
    diagonal = np.diagonal(matrix, axis1=-2, axis2=-1)
    if isinstance(rep, hx.Diagonal):
        return diagonal.copy()
    return diagonal[..., :1].copy()


def statistic_np(rep: hx.CovarianceRep, second: np.ndarray) -> np.ndarray:
    """Second moment in statistic storage (``Scale``: the trace)."""
    if isinstance(rep, hx.Scale):
        return np.trace(second, axis1=-2, axis2=-1)[..., None]
    return storage_np(rep, second)


def quadratic_np(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """Coefficients of ``xᵀMx`` against the statistic (full rep: off-diagonals doubled)."""
    packed = storage_np(rep, matrix)
    if isinstance(rep, hx.PositiveDefinite):
        rows, cols = np.triu_indices(matrix.shape[-1])
        return packed * np.where(rows == cols, 1.0, 2.0)
    return packed


def natural_np(rep: hx.CovarianceRep, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    precision = np.linalg.inv(cov)
    location = (precision @ mean[..., None])[..., 0]
    return np.concatenate([location, -0.5 * quadratic_np(rep, precision)], axis=-1)


def mean_coords_np(rep: hx.CovarianceRep, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    second = cov + mean[..., :, None] * mean[..., None, :]
    return np.concatenate([mean, statistic_np(rep, second)], axis=-1)


def kl_np(mean_p: np.ndarray, cov_p: np.ndarray, mean_q: np.ndarray, cov_q: np.ndarray) -> float:
    n = mean_p.shape[-1]
    precision_q = np.linalg.inv(cov_q)
    diff = mean_q - mean_p
    return 0.5 * (
        np.trace(precision_q @ cov_p)
        + diff @ precision_q @ diff
        - n
        + np.linalg.slogdet(cov_q)[1]
        - np.linalg.slogdet(cov_p)[1]
    )


def asarray(xp: Any, a: Any) -> Any:
    return xp.asarray(np.asarray(a, dtype=np.float64), dtype=xp.float64)


def fixed_case(rep: hx.CovarianceRep, n: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=n), spd_matrix(rng, n, rep)


@dataclass(frozen=True)
class NormalPair:
    family: hx.Normal
    mean_p: np.ndarray
    cov_p: np.ndarray
    mean_q: np.ndarray
    cov_q: np.ndarray


@st.composite
def normal_pairs(draw: st.DrawFn, max_dim: int = MAX_DIM) -> NormalPair:
    """Two members of the same ``Normal(n, rep)``."""
    n = draw(st.integers(min_value=1, max_value=max_dim))
    rep = draw(reps)
    rng = np.random.default_rng(draw(seeds))
    scale_p, scale_q = draw(st.sampled_from((0.1, 1.0, 10.0))), draw(st.sampled_from((0.5, 2.0)))
    return NormalPair(
        hx.Normal(n, rep),
        rng.normal(size=n),
        spd_matrix(rng, n, rep, scale_p),
        rng.normal(size=n),
        spd_matrix(rng, n, rep, scale_p * scale_q),
    )


# -- coordinates ----------------------------------------------------------------------------------


@given(case=normal_cases(max_dim=MAX_DIM))
def test_natural_parameters_follow_the_documented_convention(xp: Any, case: NormalCase) -> None:
    family, rep = case.family, case.family.rep
    expected = natural_np(rep, case.mean, case.covariance)
    params = family.from_moments(asarray(xp, case.mean), asarray(xp, case.covariance))
    assert params.shape == (family.dim,)
    assert_close(params, expected, xp=xp)
    # θ·s(x) == hᵀx − ½ xᵀΛx with h, Λ from the moments
    precision = np.linalg.inv(case.covariance)
    location = precision @ case.mean
    x = case.points
    expected_pairing = x @ location - 0.5 * np.einsum("ki,ij,kj->k", x, precision, x)
    statistic = family.sufficient_statistic(asarray(xp, x))
    assert statistic.shape == (len(x), family.dim)
    assert_close(xp.sum(asarray(xp, expected) * statistic, axis=-1), expected_pairing, xp=xp)


@given(case=normal_cases(max_dim=MAX_DIM))
def test_mean_and_natural_coordinates_convert_exactly(xp: Any, case: NormalCase) -> None:
    family, rep = case.family, case.family.rep
    theta = natural_np(rep, case.mean, case.covariance)
    eta = mean_coords_np(rep, case.mean, case.covariance)
    means = family.to_mean(asarray(xp, theta))
    assert_close(means, eta, xp=xp)
    assert_close(family.to_natural(asarray(xp, eta)), theta, xp=xp)
    assert_close(family.to_natural(means), theta, xp=xp)
    assert_close(family.to_mean(family.to_natural(asarray(xp, eta))), eta, xp=xp)


@given(case=normal_cases(max_dim=MAX_DIM))
def test_log_density_matches_scipy(xp: Any, case: NormalCase) -> None:
    family = case.family
    params = asarray(xp, natural_np(family.rep, case.mean, case.covariance))
    x = asarray(xp, case.points)
    oracle = stats.multivariate_normal(case.mean, case.covariance)
    assert_close(family.log_density(params, x), oracle.logpdf(case.points).reshape(-1), xp=xp)
    assert_close(family.density(params, x), oracle.pdf(case.points).reshape(-1), xp=xp)
    base = np.full(len(case.points), -0.5 * family.n * math.log(2 * math.pi))
    assert_close(family.log_base_measure(x), base, xp=xp)
    # a single observation gives a 0-d result
    single = family.log_density(params, x[0, ...])
    assert_close(single, np.asarray(oracle.logpdf(case.points[0])), xp=xp)


@given(case=normal_cases(max_dim=MAX_DIM))
def test_log_partition_and_negative_entropy(xp: Any, case: NormalCase) -> None:
    family, rep, n = case.family, case.family.rep, case.family.n
    precision = np.linalg.inv(case.covariance)
    location = precision @ case.mean
    expected_psi = (
        0.5 * location @ case.covariance @ location - 0.5 * np.linalg.slogdet(precision)[1]
    )
    params = asarray(xp, natural_np(rep, case.mean, case.covariance))
    assert_close(family.log_partition_function(params), np.asarray(expected_psi), xp=xp)
    means = asarray(xp, mean_coords_np(rep, case.mean, case.covariance))
    entropy = stats.multivariate_normal(case.mean, case.covariance).entropy()
    expected_phi = -entropy + 0.5 * n * math.log(2 * math.pi)
    assert_close(family.negative_entropy(means), np.asarray(expected_phi), xp=xp)
    # convex conjugates: φ(η) = θ·η − ψ(θ)
    duality = xp.sum(params * means, axis=-1) - family.log_partition_function(params)
    assert_close(duality, np.asarray(expected_phi), xp=xp)


@given(pair=normal_pairs())
def test_relative_entropy_is_the_gaussian_kl(xp: Any, pair: NormalPair) -> None:
    family, rep = pair.family, pair.family.rep
    p_means = asarray(xp, mean_coords_np(rep, pair.mean_p, pair.cov_p))
    p_params = asarray(xp, natural_np(rep, pair.mean_p, pair.cov_p))
    q_params = asarray(xp, natural_np(rep, pair.mean_q, pair.cov_q))
    kl = family.relative_entropy(p_means, q_params)
    expected = kl_np(pair.mean_p, pair.cov_p, pair.mean_q, pair.cov_q)
    assert expected > 0
    assert_close(kl, np.asarray(expected), xp=xp)
    assert float(to_numpy(kl)) > 0
    assert_close(family.relative_entropy(p_means, p_params), np.asarray(0.0), xp=xp, atol=1e-8)


@given(case=normal_cases(max_dim=MAX_DIM))
def test_moments_and_coordinate_splits_round_trip(xp: Any, case: NormalCase) -> None:
    family, rep, n = case.family, case.family.rep, case.family.n
    mean, cov = asarray(xp, case.mean), asarray(xp, case.covariance)
    params = family.from_moments(mean, cov)
    mean_back, cov_back = family.to_moments(params)
    assert_close(mean_back, case.mean, xp=xp)
    assert_close(cov_back, case.covariance, xp=xp)

    precision = np.linalg.inv(case.covariance)
    location, packed_precision = family.split_location_precision(params)
    assert_close(location, precision @ case.mean, xp=xp)
    assert_close(packed_precision, storage_np(rep, precision), xp=xp)
    assert_close(rep.unpack(packed_precision, n), precision, xp=xp)
    assert_close(family.join_location_precision(location, packed_precision), params, xp=xp)

    eta = mean_coords_np(rep, case.mean, case.covariance)
    means = asarray(xp, eta)
    mean_split, cov_split = family.split_mean_covariance(means)
    assert_close(mean_split, case.mean, xp=xp)
    assert_close(cov_split, storage_np(rep, case.covariance), xp=xp)
    assert_close(family.join_mean_covariance(mean_split, cov_split), eta, xp=xp)
    assert_close(family.statistical_mean(means), case.mean, xp=xp)
    assert_close(family.statistical_covariance(means), case.covariance, xp=xp)


# -- changes of representation --------------------------------------------------------------------


@given(case=normal_cases(max_dim=MAX_DIM))
def test_embed_rep_preserves_the_distribution(xp: Any, case: NormalCase) -> None:
    family, rep, n = case.family, case.family.rep, case.family.n
    params = asarray(xp, natural_np(rep, case.mean, case.covariance))
    x = asarray(xp, case.points)
    oracle = stats.multivariate_normal(case.mean, case.covariance).logpdf(case.points)
    eta = mean_coords_np(rep, case.mean, case.covariance)
    for target in REPS:
        if not target.includes(rep):
            with pytest.raises(hx.ValidationError, match="cannot embed"):
                family.embed_rep(params, target)
            continue
        wider = hx.Normal(n, target)
        embedded = family.embed_rep(params, target)
        assert_close(embedded, natural_np(target, case.mean, case.covariance), xp=xp)
        assert_close(wider.log_density(embedded, x), oracle.reshape(-1), xp=xp)
        # moment matching the embedded distribution back onto the rep gives the original
        back = wider.project_rep(wider.to_mean(embedded), rep)
        assert_close(back, eta, xp=xp)


@given(case=normal_cases(max_dim=MAX_DIM))
def test_project_rep_is_moment_matching(xp: Any, case: NormalCase) -> None:
    family, rep, n = case.family, case.family.rep, case.family.n
    means = asarray(xp, mean_coords_np(rep, case.mean, case.covariance))
    for target in REPS:
        if not rep.includes(target):
            with pytest.raises(hx.ValidationError, match="cannot project"):
                family.project_rep(means, target)
            continue
        narrower = hx.Normal(n, target)
        projected = family.project_rep(means, target)
        cov = project_np(target, case.covariance)
        assert_close(projected, mean_coords_np(target, case.mean, cov), xp=xp)
        assert_close(narrower.statistical_mean(projected), case.mean, xp=xp)
        assert_close(narrower.statistical_covariance(projected), cov, xp=xp)
        # it is the KL-closest member of the narrower family: perturbing it costs divergence
        best = kl_np(case.mean, case.covariance, case.mean, cov)
        for factor in (0.9, 1.1):
            assert best < kl_np(case.mean, case.covariance, case.mean, factor * cov)
        assert best < kl_np(case.mean, case.covariance, case.mean + 0.1, cov)


@given(case=normal_cases(max_dim=MAX_DIM), jitter=st.sampled_from((0.0, 0.05)))
@pytest.mark.parametrize("floor", [0.0, 0.8, 1.5])
def test_regularize_covariance(xp: Any, case: NormalCase, jitter: float, floor: float) -> None:
    family, rep, n = case.family, case.family.rep, case.family.n
    variances = np.diagonal(case.covariance).copy()
    min_var = floor * float(variances.mean())
    means = asarray(xp, mean_coords_np(rep, case.mean, case.covariance))
    result = family.regularize_covariance(means, jitter, min_var)
    floored = np.maximum(variances + jitter, min_var)
    expected_cov = case.covariance + np.diag(floored - variances)
    assert_close(result, mean_coords_np(rep, case.mean, expected_cov), xp=xp)
    cov = to_numpy(family.statistical_covariance(result))
    np.testing.assert_allclose(np.diagonal(cov), floored, rtol=1e-12)
    off_diagonal = ~np.eye(n, dtype=bool)
    scale = float(np.abs(case.covariance).max() + case.mean @ case.mean)
    np.testing.assert_allclose(
        cov[off_diagonal], case.covariance[off_diagonal], rtol=0, atol=1e-12 * scale
    )
    assert_close(family.statistical_mean(result), case.mean, xp=xp)


def test_regularize_covariance_rejects_negative_amounts(xp: Any) -> None:
    family = hx.Normal(2, hx.Diagonal())
    means = asarray(xp, mean_coords_np(hx.Diagonal(), np.zeros(2), np.eye(2)))
    with pytest.raises(hx.ValidationError, match="jitter and min_var must be >= 0"):
        family.regularize_covariance(means, jitter=-1.0)
    with pytest.raises(hx.ValidationError, match="jitter and min_var must be >= 0"):
        family.regularize_covariance(means, min_var=-1e-3)


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_standard_normal(xp: Any, rep: hx.CovarianceRep) -> None:
    family = hx.Normal(3, rep)
    params = family.standard_normal(xp=xp)
    assert_close(params, natural_np(rep, np.zeros(3), np.eye(3)), xp=xp)
    points = np.random.default_rng(1).normal(size=(5, 3))
    expected = stats.multivariate_normal(np.zeros(3), np.eye(3)).logpdf(points)
    assert_close(family.log_density(params, asarray(xp, points)), expected, xp=xp)


# -- batching ------------------------------------------------------------------------------------


@st.composite
def batched_cases(draw: st.DrawFn) -> NormalCase:
    """Three members of one ``Normal(n, rep)``, n in {1, 3} (few shapes: JAX compiles each)."""
    n = draw(st.sampled_from((1, 3)))
    rep = draw(reps)
    rng = np.random.default_rng(draw(seeds))
    scale = draw(st.sampled_from((0.1, 1.0, 10.0)))
    covariance = np.stack([spd_matrix(rng, n, rep, scale) for _ in range(3)])
    mean = rng.normal(size=(3, n)) * np.sqrt(scale)
    points = rng.normal(size=(4, n)) * np.sqrt(scale)
    return NormalCase(hx.Normal(n, rep), mean, covariance, points)


@given(case=batched_cases())
def test_batched_calls_equal_per_item_calls(xp: Any, case: NormalCase) -> None:
    family, rep = case.family, case.family.rep
    theta = natural_np(rep, case.mean, case.covariance)
    params = asarray(xp, theta)
    psi, means = family.log_partition_function(params), family.to_mean(params)
    # params (3, dim) broadcast against x (4, 1, n) -> (4, 3)
    log_density = family.log_density(params, asarray(xp, case.points[:, None, :]))
    items = [asarray(xp, theta[i]) for i in range(3)]
    points = asarray(xp, case.points)
    assert_close(psi, np.stack([to_numpy(family.log_partition_function(p)) for p in items]), xp=xp)
    assert_close(means, np.stack([to_numpy(family.to_mean(p)) for p in items]), xp=xp)
    per_item = np.stack([to_numpy(family.log_density(p, points)) for p in items], axis=1)
    assert_close(log_density, per_item, xp=xp)
    # and against the oracles
    assert_close(means, mean_coords_np(rep, case.mean, case.covariance), xp=xp)
    expected = np.stack(
        [
            stats.multivariate_normal(case.mean[i], case.covariance[i]).logpdf(case.points)
            for i in range(3)
        ],
        axis=1,
    ).reshape(4, 3)
    assert_close(log_density, expected, xp=xp)


# -- sampling -----------------------------------------------------------------------------------


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
