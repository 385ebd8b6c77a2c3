"""Hypothesis strategies that build valid distributions through their generative form.

Strategies return NumPy data (converted to the backend by the test), so one drawn example
means the same numbers on every backend. Matrices come from a drawn seed plus drawn scale
parameters, so every example is a real distribution: symmetric positive definite matrices
with the rep's structure and a bounded condition number, weights on the simplex.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hypothesis import strategies as st

import hmog_xp as hx

REPS = (hx.PositiveDefinite(), hx.Diagonal(), hx.Scale())
reps = st.sampled_from(REPS)
seeds = st.integers(min_value=0, max_value=2**32 - 1)


def spd_matrix(
    rng: np.random.Generator, n: int, rep: hx.CovarianceRep, scale: float = 1.0
) -> np.ndarray:
    """A random symmetric positive definite ``n x n`` matrix with ``rep``'s structure."""
    if isinstance(rep, hx.Scale):
        return scale * rng.uniform(0.5, 2.0) * np.eye(n)
    if isinstance(rep, hx.Diagonal):
        return scale * np.diag(rng.uniform(0.3, 3.0, size=n))
    factor = rng.normal(size=(n, n)) / np.sqrt(n)
    return scale * (factor @ factor.T + 0.3 * np.eye(n))


@dataclass(frozen=True)
class NormalCase:
    """A Normal family with the moments of one (or a batch of) its members and data points."""

    family: hx.Normal
    mean: np.ndarray  # (*batch, n)
    covariance: np.ndarray  # (*batch, n, n)
    points: np.ndarray  # (n_points, n)


@st.composite
def normal_cases(draw: st.DrawFn, max_dim: int = 5, batch: tuple[int, ...] = ()) -> NormalCase:
    """A ``Normal(n, rep)`` and valid moments of shape ``batch`` (plus random points)."""
    n = draw(st.integers(min_value=1, max_value=max_dim))
    rep = draw(reps)
    rng = np.random.default_rng(draw(seeds))
    scale = draw(st.sampled_from((0.1, 1.0, 10.0)))
    count = int(np.prod(batch)) if batch else 1
    covariance = np.stack([spd_matrix(rng, n, rep, scale) for _ in range(count)])
    mean = rng.normal(size=(count, n)) * np.sqrt(scale)
    points = rng.normal(size=(4, n)) * np.sqrt(scale)
    return NormalCase(
        hx.Normal(n, rep),
        mean.reshape((*batch, n)),
        covariance.reshape((*batch, n, n)),
        points,
    )


@st.composite
def probability_vectors(draw: st.DrawFn, max_categories: int = 6) -> np.ndarray:
    """A strictly positive probability vector (at least two categories)."""
    k = draw(st.integers(min_value=2, max_value=max_categories))
    rng = np.random.default_rng(draw(seeds))
    concentration = draw(st.sampled_from((0.5, 1.0, 5.0)))
    probs = rng.dirichlet(np.full(k, concentration))
    probs = np.maximum(probs, 1e-6)
    return probs / probs.sum()
