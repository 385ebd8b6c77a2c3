"""Covariance representations: storage, projections, pairings and linear algebra.

Every computation is checked against dense NumPy linear algebra on the matrices the storage
describes (the oracles below build the expected storage from the documented conventions), on
every backend, with batch shape ``(2, 3)``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import hmog_xp as hx
from tests.helpers import assert_close, to_numpy
from tests.strategies import REPS, reps, seeds, spd_matrix

BATCH = (2, 3)

# -- NumPy oracles written from the documented storage conventions ----------------------------


def project_np(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """Orthogonal (Frobenius) projection of symmetric matrices onto the rep's matrices."""
    n = matrix.shape[-1]
    if isinstance(rep, hx.PositiveDefinite):
        return matrix.copy()
    diagonal = np.diagonal(matrix, axis1=-2, axis2=-1)
    if isinstance(rep, hx.Diagonal):
        return diagonal[..., :, None] * np.eye(n)
    return diagonal.mean(axis=-1)[..., None, None] * np.eye(n)


def storage_np(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """Plain storage of matrices of the rep: upper triangle row by row / diagonal / scalar."""
    n = matrix.shape[-1]
    if isinstance(rep, hx.PositiveDefinite):
        rows, cols = np.triu_indices(n)
        return matrix[..., rows, cols]
    diagonal = np.diagonal(matrix, axis1=-2, axis2=-1)
    if isinstance(rep, hx.Diagonal):
        return diagonal.copy()
    return diagonal.mean(axis=-1, keepdims=True)


def rep_diagonal_np(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """The diagonal in the rep's own form (``Scale``: its single value)."""
    diagonal = np.diagonal(matrix, axis1=-2, axis2=-1)
    return diagonal[..., :1].copy() if isinstance(rep, hx.Scale) else diagonal.copy()


def dense_factor_np(rep: hx.CovarianceRep, factor: np.ndarray, n: int) -> np.ndarray:
    """Dense matrix of a factor returned by ``rep.cholesky``."""
    if isinstance(rep, hx.PositiveDefinite):
        return factor
    return factor[..., :, None] * np.eye(n)


def symmetric_np(rng: np.random.Generator, n: int) -> np.ndarray:
    a = rng.normal(size=(*BATCH, n, n))
    return 0.5 * (a + np.swapaxes(a, -1, -2))


@dataclass(frozen=True)
class RepCase:
    """A rep, a dimension and batched matrices / vectors (NumPy, float64)."""

    rep: hx.CovarianceRep
    n: int
    spd: np.ndarray  # (*BATCH, n, n) positive definite, of the rep's structure
    member: np.ndarray  # (*BATCH, n, n) symmetric (possibly indefinite), of the rep's structure
    general: np.ndarray  # (*BATCH, n, n) any symmetric matrix
    x: np.ndarray  # (*BATCH, n)


@st.composite
def rep_cases(draw: st.DrawFn, max_dim: int = 4) -> RepCase:
    n = draw(st.integers(min_value=1, max_value=max_dim))
    rep = draw(reps)
    rng = np.random.default_rng(draw(seeds))
    count = int(np.prod(BATCH))
    spd = np.stack([spd_matrix(rng, n, rep) for _ in range(count)]).reshape(*BATCH, n, n)
    member = project_np(rep, symmetric_np(rng, n))
    return RepCase(rep, n, spd, member, symmetric_np(rng, n), rng.normal(size=(*BATCH, n)))


def asarray(xp: Any, a: np.ndarray) -> Any:
    return xp.asarray(a, dtype=xp.float64)


# -- storage -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("rep", "n", "size"),
    [
        (hx.PositiveDefinite(), 1, 1),
        (hx.PositiveDefinite(), 4, 10),
        (hx.Diagonal(), 4, 4),
        (hx.Scale(), 4, 1),
    ],
)
def test_size(rep: hx.CovarianceRep, n: int, size: int) -> None:
    assert rep.size(n) == size


@given(case=rep_cases())
def test_pack_stores_documented_layout_and_unpack_inverts_it(xp: Any, case: RepCase) -> None:
    rep, n = case.rep, case.n
    matrix = asarray(xp, case.member)
    packed = rep.pack(matrix)
    assert_close(packed, storage_np(rep, case.member), xp=xp)
    assert packed.shape == (*BATCH, rep.size(n))
    assert_close(rep.unpack(packed, n), case.member, xp=xp)
    # and the other way round: storage -> matrix -> storage
    assert_close(rep.pack(rep.unpack(packed, n)), storage_np(rep, case.member), xp=xp)


@given(case=rep_cases())
def test_pack_is_the_frobenius_projection(xp: Any, case: RepCase) -> None:
    rep, n = case.rep, case.n
    projected = rep.unpack(rep.pack(asarray(xp, case.general)), n)
    expected = project_np(rep, case.general)
    assert_close(projected, expected, xp=xp)
    # orthogonality: the residual is Frobenius-orthogonal to every matrix of the rep, so the
    # projection is the closest matrix of the rep to the input
    residual = case.general - to_numpy(projected)
    inner = np.trace(residual @ case.member, axis1=-2, axis2=-1)
    np.testing.assert_allclose(inner, 0.0, atol=1e-12)
    other = to_numpy(rep.unpack(rep.pack(asarray(xp, case.member)), n))
    distance = np.linalg.norm(case.general - to_numpy(projected), axis=(-2, -1))
    assert np.all(distance <= np.linalg.norm(case.general - other, axis=(-2, -1)) + 1e-12)


@given(case=rep_cases())
def test_quadratic_coefficients_pair_with_statistics(xp: Any, case: RepCase) -> None:
    rep, n = case.rep, case.n
    coefficients = rep.packed_to_quadratic(rep.pack(asarray(xp, case.member)), n)
    x = asarray(xp, case.x)
    # x^T M x == sum(q(M) * s(x))
    form = xp.sum(coefficients * rep.outer_statistic(x), axis=-1)
    expected_form = np.einsum("...i,...ij,...j->...", case.x, case.member, case.x)
    assert_close(form, expected_form, xp=xp)
    # trace(M S) == sum(q(M) * pack_statistic(S)) for any symmetric S
    pairing = xp.sum(coefficients * rep.pack_statistic(asarray(xp, case.general)), axis=-1)
    expected_trace = np.trace(case.member @ case.general, axis1=-2, axis2=-1)
    assert_close(pairing, expected_trace, xp=xp)


@given(case=rep_cases())
def test_outer_statistic_is_the_statistic_of_the_outer_product(xp: Any, case: RepCase) -> None:
    rep = case.rep
    outer = case.x[..., :, None] * case.x[..., None, :]
    statistic = rep.outer_statistic(asarray(xp, case.x))
    assert_close(statistic, to_numpy(rep.pack_statistic(asarray(xp, outer))), xp=xp)
    # documented statistic storage: upper triangle of x xᵀ / x² / sum x_i²
    if isinstance(rep, hx.Scale):
        expected = np.sum(case.x**2, axis=-1, keepdims=True)
    else:
        expected = storage_np(rep, outer)
    assert_close(statistic, expected, xp=xp)


@given(case=rep_cases())
def test_storage_conversions_invert_each_other(xp: Any, case: RepCase) -> None:
    rep, n = case.rep, case.n
    packed = rep.pack(asarray(xp, case.member))
    expected = storage_np(rep, case.member)
    statistic = rep.packed_to_statistic(packed, n)
    assert_close(rep.statistic_to_packed(statistic, n), expected, xp=xp)
    assert_close(statistic, to_numpy(rep.pack_statistic(asarray(xp, case.member))), xp=xp)
    quadratic = rep.packed_to_quadratic(packed, n)
    assert_close(rep.quadratic_to_packed(quadratic, n), expected, xp=xp)


# -- linear algebra ---------------------------------------------------------------------------


@given(case=rep_cases())
def test_inverse_and_logdet_match_dense_linear_algebra(xp: Any, case: RepCase) -> None:
    rep, n = case.rep, case.n
    packed = rep.pack(asarray(xp, case.spd))
    inverse = rep.inverse(packed, n)
    assert inverse.shape == (*BATCH, rep.size(n))
    assert_close(rep.unpack(inverse, n), np.linalg.inv(case.spd), xp=xp)
    sign, logdet = np.linalg.slogdet(case.spd)
    assert np.all(sign > 0)
    assert_close(rep.logdet(packed, n), logdet, xp=xp)


@given(case=rep_cases())
def test_matvec_matches_dense_product(xp: Any, case: RepCase) -> None:
    rep = case.rep
    packed = rep.pack(asarray(xp, case.member))
    expected = (case.member @ case.x[..., None])[..., 0]
    assert_close(rep.matvec(packed, asarray(xp, case.x)), expected, xp=xp)
    # vectors broadcast against the batch of matrices
    vector = case.x[0, 0]
    assert_close(rep.matvec(packed, asarray(xp, vector)), case.member @ vector, xp=xp)


@given(case=rep_cases())
def test_cholesky_factor(xp: Any, case: RepCase) -> None:
    rep, n = case.rep, case.n
    packed = rep.pack(asarray(xp, case.spd))
    factor = rep.cholesky(packed, n)
    factor_np = to_numpy(factor)
    if isinstance(rep, hx.PositiveDefinite):
        assert factor.shape == (*BATCH, n, n)
        assert np.all(np.triu(factor_np, k=1) == 0.0), "factor is not lower triangular"
        assert_close(factor, np.linalg.cholesky(case.spd), xp=xp)
    else:
        # elementwise square root of the storage
        assert_close(factor, np.sqrt(storage_np(rep, case.spd)), xp=xp)
    dense = dense_factor_np(rep, factor_np, n)
    np.testing.assert_allclose(dense @ np.swapaxes(dense, -1, -2), case.spd, rtol=1e-10)
    diagonal = rep.factor_diagonal(factor)
    assert_close(diagonal, rep_diagonal_np(rep, dense), xp=xp)
    assert np.all(to_numpy(diagonal) > 0)


@given(case=rep_cases())
def test_factor_solve_logdet_and_inverse(xp: Any, case: RepCase) -> None:
    rep, n = case.rep, case.n
    factor = rep.cholesky(rep.pack(asarray(xp, case.spd)), n)
    dense = dense_factor_np(rep, to_numpy(factor), n)
    b = asarray(xp, case.x)
    expected = np.linalg.solve(dense, case.x[..., None])[..., 0]
    assert_close(rep.factor_solve(factor, b), expected, xp=xp)
    expected_t = np.linalg.solve(np.swapaxes(dense, -1, -2), case.x[..., None])[..., 0]
    assert_close(rep.factor_solve(factor, b, transpose=True), expected_t, xp=xp)
    # right-hand sides broadcast against the batch of factors
    vector = case.x[1, 2]
    expected_b = np.linalg.solve(dense, np.broadcast_to(vector, case.x.shape)[..., None])[..., 0]
    assert_close(rep.factor_solve(factor, asarray(xp, vector)), expected_b, xp=xp)
    assert_close(rep.factor_logdet(factor, n), np.linalg.slogdet(case.spd)[1], xp=xp)
    inverse = rep.factor_inverse(factor, n)
    assert_close(inverse, storage_np(rep, np.linalg.inv(case.spd)), xp=xp)


@given(case=rep_cases())
def test_one_matrix_many_vectors(xp: Any, case: RepCase) -> None:
    rep, n = case.rep, case.n
    matrix = case.spd[0, 0]
    packed = rep.pack(asarray(xp, matrix))
    x = asarray(xp, case.x)
    assert_close(rep.matvec(packed, x), case.x @ matrix, xp=xp)
    factor = rep.cholesky(packed, n)
    dense = dense_factor_np(rep, to_numpy(factor), n)
    np.testing.assert_allclose(dense @ dense.T, matrix, rtol=1e-10, atol=1e-12)
    assert_close(
        rep.factor_solve(factor, x), np.linalg.solve(dense, case.x[..., None])[..., 0], xp=xp
    )
    expected_t = np.linalg.solve(dense.T, case.x[..., None])[..., 0]
    assert_close(rep.factor_solve(factor, x, transpose=True), expected_t, xp=xp)


def statistic_np(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """Statistic storage of a second moment (``Scale``: the trace)."""
    if isinstance(rep, hx.Scale):
        return np.trace(matrix, axis1=-2, axis2=-1)[..., None]
    return storage_np(rep, matrix)


@given(case=rep_cases(), m=st.integers(min_value=1, max_value=3))
def test_congruence_statistic(xp: Any, case: RepCase, m: int) -> None:
    rep, n = case.rep, case.n
    rng = np.random.default_rng(n + 10 * m)
    left = rng.normal(size=(*BATCH, n, m))
    a = rng.normal(size=(m, m))
    middle = a + a.T
    expected = statistic_np(rep, left @ middle @ np.swapaxes(left, -1, -2))
    result = rep.congruence_statistic(asarray(xp, left), asarray(xp, middle))
    assert_close(result, expected, xp=xp)
    congruence = left @ middle @ np.swapaxes(left, -1, -2)
    assert_close(result, to_numpy(rep.pack_statistic(asarray(xp, congruence))), xp=xp)


@pytest.mark.parametrize("rep", [hx.Diagonal(), hx.Scale()], ids=["Diagonal", "Scale"])
def test_elementwise_factor_of_non_positive_storage_is_nan(xp: Any, rep: hx.CovarianceRep) -> None:
    packed = asarray(xp, np.array([[-1.0], [0.0], [4.0]]))
    if isinstance(rep, hx.Diagonal):
        packed = asarray(xp, np.array([[-1.0, 1.0], [0.0, 1.0], [4.0, 1.0]]))
    factor = to_numpy(rep.factor_diagonal(rep.cholesky(packed, 2)))  # warnings are errors
    assert np.isnan(factor[0, 0])
    assert np.isnan(factor[1, 0])
    assert factor[2, 0] == 2.0


@given(case=rep_cases())
def test_diagonal_and_add_diagonal(xp: Any, case: RepCase) -> None:
    rep, n = case.rep, case.n
    packed = rep.pack(asarray(xp, case.member))
    diagonal = rep.diagonal(packed, n)
    assert_close(diagonal, rep_diagonal_np(rep, case.member), xp=xp)
    width = diagonal.shape[-1]
    rng = np.random.default_rng(n)
    values = rng.uniform(0.5, 2.0, size=(*BATCH, width))
    added = rep.add_diagonal(packed, asarray(xp, values), n)
    expected = case.member + np.broadcast_to(values, (*BATCH, n))[..., :, None] * np.eye(n)
    assert added.shape == packed.shape
    assert_close(rep.unpack(added, n), expected, xp=xp)
    # unbatched values broadcast over the batch
    single = values[0, 0]
    added = rep.add_diagonal(packed, asarray(xp, single), n)
    expected = case.member + np.broadcast_to(single, (n,)) * np.eye(n)
    assert_close(rep.unpack(added, n), expected, xp=xp)


@pytest.mark.parametrize("rep", REPS, ids=lambda r: type(r).__name__)
@pytest.mark.parametrize("n", [1, 3])
def test_identity(xp: Any, rep: hx.CovarianceRep, n: int) -> None:
    identity = rep.identity(n, xp=xp, dtype=xp.float64)
    assert_close(identity, storage_np(rep, np.eye(n)), xp=xp)
    assert_close(rep.unpack(identity, n), np.eye(n), xp=xp)
    assert_close(rep.inverse(identity, n), storage_np(rep, np.eye(n)), xp=xp)
    assert_close(rep.logdet(identity, n), np.asarray(0.0), xp=xp)


# -- changes of representation ----------------------------------------------------------------


@given(case=rep_cases())
def test_convert_embeds_exactly_and_projects_orthogonally(xp: Any, case: RepCase) -> None:
    rep, n = case.rep, case.n
    packed = rep.pack(asarray(xp, case.member))
    for target in REPS:
        converted = rep.convert(packed, n, target)
        assert converted.shape == (*BATCH, target.size(n))
        # embedding loses nothing; projection is the Frobenius projection
        expected = case.member if target.includes(rep) else project_np(target, case.member)
        assert_close(target.unpack(converted, n), expected, xp=xp)


@pytest.mark.parametrize(
    ("general", "special", "expected"),
    [
        (hx.PositiveDefinite(), hx.PositiveDefinite(), True),
        (hx.PositiveDefinite(), hx.Diagonal(), True),
        (hx.PositiveDefinite(), hx.Scale(), True),
        (hx.Diagonal(), hx.PositiveDefinite(), False),
        (hx.Diagonal(), hx.Diagonal(), True),
        (hx.Diagonal(), hx.Scale(), True),
        (hx.Scale(), hx.PositiveDefinite(), False),
        (hx.Scale(), hx.Diagonal(), False),
        (hx.Scale(), hx.Scale(), True),
    ],
)
def test_includes_order(
    general: hx.CovarianceRep, special: hx.CovarianceRep, expected: bool
) -> None:
    assert general.includes(special) is expected


def test_reps_are_hashable_frozen_and_equal_by_type() -> None:
    assert hx.PositiveDefinite() == hx.PositiveDefinite()
    assert hash(hx.Diagonal()) == hash(hx.Diagonal())
    assert len({hx.PositiveDefinite(), hx.PositiveDefinite(), hx.Diagonal(), hx.Scale()}) == 3
    assert hx.Diagonal() != hx.Scale()
    assert hx.PositiveDefinite() != hx.Diagonal()
    assert {hx.Scale(): "scale"}[hx.Scale()] == "scale"
    rep = hx.Diagonal()
    with pytest.raises(dataclasses.FrozenInstanceError):
        rep.generality = 5  # type: ignore[misc]
    for rep in REPS:
        assert isinstance(rep, hx.CovarianceRep)


def test_row_block_products_equal_the_dense_ones(xp: Any) -> None:
    # (N, n) blocks take the backend-specific layouts of the E-step (hmog_xp._backend.products)
    rng = np.random.default_rng(8)
    rep, n = hx.PositiveDefinite(), 4
    rows = rng.normal(size=(37, n))
    halves = rng.normal(size=(3, n, n))
    matrices = halves @ np.swapaxes(halves, -1, -2) + np.eye(n)
    upper = np.triu_indices(n)
    expected_outer = (rows[:, :, None] * rows[:, None, :])[:, upper[0], upper[1]]
    assert_close(rep.outer_statistic(asarray(xp, rows)), expected_outer, xp=xp)
    packed = rep.pack(asarray(xp, matrices))
    expected_spreads = np.einsum("kij,nj->nki", matrices, rows)
    assert_close(rep.matvec_all(packed, asarray(xp, rows)), expected_spreads, xp=xp)
