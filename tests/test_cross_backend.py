"""Cross-backend identity: the same inputs give the same outputs on every backend (float64).

The reference is hmog_xp itself on NumPy; every other backend must agree to ~1e-10. This
catches backend-specific paths (triangular solves, Cholesky, take/reshape semantics) that
drift from the reference even where each one passes its own oracle tests at looser
tolerances.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp._backend import namespace_for
from tests.helpers import assert_close, to_numpy
from tests.strategies import REPS, spd_matrix

IDENTITY_TOLERANCE = 1e-10


def _normal_inputs(rep: hx.CovarianceRep) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(REPS.index(rep))
    n = 4
    covariances = np.stack([spd_matrix(rng, n, rep) for _ in range(3)])
    return {
        "mean": rng.normal(size=(3, n)),
        "covariance": covariances,
        "points": rng.normal(size=(5, 1, n)),
    }


def _normal_outputs(rep: hx.CovarianceRep, xp: Any) -> dict[str, Any]:
    family = hx.Normal(4, rep)
    inputs = _normal_inputs(rep)
    params = family.from_moments(xp.asarray(inputs["mean"]), xp.asarray(inputs["covariance"]))
    means = family.to_mean(params)
    full = hx.Normal(4, hx.PositiveDefinite())
    embedded = family.embed_rep(params, hx.PositiveDefinite())
    return {
        "natural": params,
        "mean": means,
        "round trip": family.to_natural(means),
        "log partition": family.log_partition_function(params),
        "negative entropy": family.negative_entropy(means),
        "log density": family.log_density(params, xp.asarray(inputs["points"])),
        "relative entropy": family.relative_entropy(means[:1, :], params),
        "moments": family.to_moments(params)[1],
        "embedded": embedded,
        "projected": full.project_rep(full.to_mean(embedded), rep),
        "regularized": family.regularize_covariance(means, 0.1, 0.5),
        "statistic": family.sufficient_statistic(xp.asarray(inputs["points"])),
    }


def _categorical_outputs(xp: Any) -> dict[str, Any]:
    family = hx.Categorical(5)
    probs = np.array([[0.1, 0.2, 0.3, 0.15, 0.25], [0.5, 0.1, 0.1, 0.1, 0.2]])
    params = family.from_probs(xp.asarray(probs))
    means = family.to_mean(params)
    return {
        "natural": params,
        "probs": family.to_probs(params),
        "log partition": family.log_partition_function(params),
        "negative entropy": family.negative_entropy(means),
        "log density": family.log_density(params, xp.asarray([[1], [4]])),
        "relative entropy": family.relative_entropy(means, xp.flip(params, axis=0)),
    }


def _compare(compute: Callable[[Any], dict[str, Any]], xp: Any) -> None:
    reference = compute(namespace_for("numpy"))
    actual = compute(xp)
    assert actual.keys() == reference.keys()
    for name, value in actual.items():
        try:
            assert_close(
                value,
                to_numpy(reference[name]),
                xp=xp,
                rtol=IDENTITY_TOLERANCE,
                atol=IDENTITY_TOLERANCE,
            )
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None


@pytest.mark.parametrize("rep", REPS, ids=lambda rep: type(rep).__name__)
def test_normal_identical_across_backends(xp, rep) -> None:
    _compare(lambda namespace: _normal_outputs(rep, namespace), xp)


def test_categorical_identical_across_backends(xp) -> None:
    _compare(_categorical_outputs, xp)


@pytest.mark.parametrize("rep", REPS, ids=lambda rep: type(rep).__name__)
def test_rep_operations_identical_across_backends(xp, rep) -> None:
    def compute(namespace: Any) -> dict[str, Any]:
        matrices = namespace.asarray(_normal_inputs(rep)["covariance"])
        packed = rep.pack(matrices)
        factor = rep.cholesky(packed, 4)
        vectors = namespace.asarray(_normal_inputs(rep)["mean"])
        return {
            "packed": packed,
            "inverse": rep.inverse(packed, 4),
            "logdet": rep.logdet(packed, 4),
            "solve": rep.factor_solve(factor, vectors),
            "solve transposed": rep.factor_solve(factor, vectors, transpose=True),
            "matvec": rep.matvec(packed, vectors),
            "outer": rep.outer_statistic(vectors),
        }

    _compare(compute, xp)
