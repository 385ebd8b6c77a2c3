"""The fast kernels of the missing-value E-step: small SPD grids and the fused chunk sums."""

from __future__ import annotations

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp.hmog import _missing
from hmog_xp.hmog._missing import chunk_sums, component_terms, observed_posteriors, row_sums
from hmog_xp.hmog._small_spd import inverse_and_logdet
from tests.helpers import assert_close, assert_device, to_numpy


@pytest.mark.parametrize("d", [1, 2, 5])
def test_grid_inverse_and_logdet_equal_numpy_linalg(xp, device, d) -> None:
    rng = np.random.default_rng(d)
    factors = rng.normal(size=(4, 3, d, d))
    matrices = factors @ np.swapaxes(factors, -1, -2) + 0.5 * np.eye(d)
    lower = [
        [xp.asarray(matrices[..., i, j], device=device) for j in range(i + 1)] for i in range(d)
    ]
    inverse, logdet = inverse_and_logdet(lower)
    expected = np.linalg.inv(matrices)
    for i in range(d):
        for j in range(d):
            assert_close(inverse[i][j], expected[..., i, j], xp=xp, rtol=1e-10, atol=1e-12)
    assert_close(logdet, np.linalg.slogdet(matrices)[1], xp=xp, rtol=1e-12, atol=1e-12)
    assert_device(logdet, device)


def _problem(xp, device, d: int = 3):
    rng = np.random.default_rng(11)
    p, n = 7, 40
    model = hx.analytic_hmog(p, hx.Diagonal, d, 4)
    data = rng.normal(size=(n, d)) @ rng.normal(size=(p, d)).T + 0.3 * rng.normal(size=(n, p))
    observed = rng.uniform(size=data.shape) > 0.3
    observed[:, 0] |= ~observed.any(axis=1)
    params = model.initialize_from_sample(2, xp.asarray(data, device=device))
    filled = np.where(observed, data, 1e3)  # missing entries hold arbitrary finite values
    weights = np.where(np.arange(n) % 5 == 0, 0.0, 1.0)
    arrays = (xp.asarray(a, device=device) for a in (filled, observed, weights))
    return (model, params, *arrays)


def test_batched_and_entrywise_posteriors_agree(xp, device, monkeypatch) -> None:
    model, params, xs, observed, _ = _problem(xp, device)
    grid = observed_posteriors(model, params, xs, observed)
    monkeypatch.setattr(_missing, "SMALL_DIM", 0)  # the batched-Cholesky path of large d
    batched = observed_posteriors(model, params, xs, observed)
    for got, expected in zip(grid[:3], batched[:3], strict=True):
        assert_close(got, to_numpy(expected), xp=xp, rtol=1e-10, atol=1e-11)
        assert_device(got, device)


@pytest.mark.parametrize("small_dim", [0, 12])
def test_chunk_sums_equal_row_sums_of_the_posteriors(xp, device, monkeypatch, small_dim) -> None:
    model, params, xs, observed, weights = _problem(xp, device)
    posteriors = observed_posteriors(model, params, xs, observed)
    expected = (*row_sums(posteriors, xs, observed, weights), weights @ posteriors.log_density())
    monkeypatch.setattr(_missing, "SMALL_DIM", small_dim)
    fused = chunk_sums(model, params, xs, observed, weights, component_terms(model, params))
    assert len(fused) == len(expected)
    for got, want in zip(fused, expected, strict=True):
        assert tuple(got.shape) == tuple(want.shape)
        assert_close(got, to_numpy(want), xp=xp, rtol=1e-10, atol=1e-10)
        assert_device(got, device)
