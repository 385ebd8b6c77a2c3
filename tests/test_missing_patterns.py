"""Grouping rows by missingness pattern: the same EM, computed once per pattern.

Oracles: NumPy's row comparison (pattern codes), and the per-row E-step (grouped EM must
give the same iterates, with chunks that split patterns and padding rows).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import hmog_xp as hx
from hmog_xp.estimator._missing import marginalized_model
from hmog_xp.hmog._missing_patterns import pattern_codes
from tests.helpers import assert_close, to_numpy


def patterned_sample(n: int, p: int, n_patterns: int, seed: int = 0) -> np.ndarray:
    """Rows drawn from a factor model, each with one of a few missingness patterns."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 2)) @ rng.normal(size=(2, p)) + 0.5 * rng.normal(size=(n, p))
    patterns = rng.random((n_patterns, p)) < 0.8
    patterns[0] = True  # complete rows are a pattern too
    patterns[:, 0] = True  # no empty row
    return np.where(patterns[rng.integers(0, n_patterns, n)], X, np.nan)


@pytest.mark.parametrize("p", [5, 30, 70])
def test_codes_are_equal_exactly_when_patterns_are(xp: Any, p: int) -> None:
    rng = np.random.default_rng(p)
    distinct = rng.random((12, p)) < 0.5
    distinct[1] = distinct[0]
    distinct[1, -1] = not distinct[0, -1]  # differs in the last column only
    rows = distinct[rng.integers(0, 12, 200)]
    same_rows = np.all(rows[:, None, :] == rows[None, :, :], axis=-1)
    for dtype in (xp.float32, xp.float64):  # 23 and 52 columns per word
        codes = to_numpy(pattern_codes(xp.asarray(rows), dtype))
        same_codes = np.all(codes[:, None, :] == codes[None, :, :], axis=-1)
        np.testing.assert_array_equal(same_codes, same_rows)


def test_patterns_are_listed_up_to_a_limit(numpy_selected: None) -> None:
    X = patterned_sample(300, 6, 5)
    listed = hx.MissingPatterns.of(X, 10)
    assert listed is not None
    expected = {tuple(row) for row in ~np.isnan(X)}
    assert set(listed.rows) == expected
    assert listed.n_patterns == len(expected)
    assert hx.MissingPatterns.of(X, len(expected) - 1) is None


def test_grouped_em_equals_the_per_row_em(xp: Any) -> None:
    X = patterned_sample(500, 8, 6)
    model = hx.analytic_hmog(8, hx.Diagonal, 2, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = hx.HMoG(3, 2, max_iter=2, missing="marginalize", random_state=0).fit(X)
    xs = xp.asarray((X - est.location_) / est.scale_)
    params = xp.asarray(np.asarray(est._standard_params))
    patterns = hx.MissingPatterns.of(xs, 50)
    assert patterns is not None
    settings = {"max_iter": 6, "tol": 0.0, "chunk_size": 77}  # chunks split patterns, pad
    per_row = hx.fit_em(hx.MarginalizedHMoG(model), params, xs, **settings)
    grouped = hx.fit_em(hx.MarginalizedHMoG(model, patterns), params, xs, **settings)
    np.testing.assert_allclose(grouped.log_likelihoods, per_row.log_likelihoods, rtol=1e-12)
    assert_close(grouped.params, per_row.params, rtol=1e-9, atol=1e-11)


def test_the_estimator_groups_only_when_patterns_repeat(numpy_selected: None) -> None:
    model = hx.analytic_hmog(8, hx.Diagonal, 2, 3)
    few = marginalized_model(model, patterned_sample(400, 8, 6))
    assert few.patterns is not None
    assert few.patterns.n_patterns <= 6
    rng = np.random.default_rng(1)
    scattered = np.where(rng.random((400, 8)) < 0.3, np.nan, rng.normal(size=(400, 8)))
    assert marginalized_model(model, scattered).patterns is None
