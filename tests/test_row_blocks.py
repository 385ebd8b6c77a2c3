"""Row-block maps: ``map_rows`` and the chunked posteriors agree with one pass over every row."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp._backend import jit
from hmog_xp._backend.chunks import balanced_blocks, map_rows
from tests.helpers import assert_close, assert_device, to_numpy


@pytest.mark.parametrize("chunk", [1, 4, 7, 23, 100])
def test_map_rows_stacks_blocks_in_order(xp: Any, device: Any, chunk: int) -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(23, 3))
    b = rng.normal(size=(23,))
    xa = xp.asarray(a, device=device)
    xb = xp.asarray(b, device=device)

    def row_fn(u: Any, v: Any) -> Any:  # a row-wise function with a (m, 2) result
        return xp.stack([xp.sum(u**2, axis=-1) + v, xp.exp(-v)], axis=-1)

    result = jit(lambda u, v: map_rows(row_fn, (u, v), chunk))(xa, xb)
    expected = np.stack([np.sum(a**2, axis=-1) + b, np.exp(-b)], axis=-1)
    assert result.shape == (23, 2)
    assert_device(result, device)
    np.testing.assert_allclose(to_numpy(result), expected, rtol=1e-12)


def test_posteriors_by_small_blocks_equal_one_pass(
    xp: Any, device: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(1)
    model = hx.analytic_hmog(5, hx.Diagonal, 2, 3)
    xs = xp.asarray(rng.normal(size=(37, 5)), device=device)
    params = model.initialize_from_sample(0, xs)
    whole = (
        model.posterior_soft_assignments(params, xs),
        model.log_observable_density(params, xs),
        model.posterior_hard_assignment(params, xs),
    )
    # Blocks of 8 rows: five blocks, the last one padded on JAX (lax.map), sliced elsewhere.
    monkeypatch.setattr(type(model), "estep_chunk_size", lambda self, n_obs: 8)
    blocked = (
        jit(model.posterior_soft_assignments)(params, xs),  # compiled: one traced block
        model.log_observable_density(params, xs),
        model.posterior_hard_assignment(params, xs),
    )
    for a, b in zip(whole[:2], blocked[:2], strict=True):
        assert_close(b, a, rtol=1e-12, atol=1e-12)
    assert np.array_equal(to_numpy(whole[2]), to_numpy(blocked[2]))


def test_balanced_blocks_are_as_few_and_as_even_as_the_rows_allow(numpy_selected: None) -> None:
    for n_obs in range(1, 60):
        for size in range(1, 70):
            n_blocks, block_size = balanced_blocks(n_obs, size)
            assert n_blocks == -(-n_obs // size)  # as few blocks as ``size`` allows
            assert block_size <= size
            assert 0 <= n_blocks * block_size - n_obs < n_blocks  # less than a row each
