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
from tests.helpers import assert_close, to_numpy
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
