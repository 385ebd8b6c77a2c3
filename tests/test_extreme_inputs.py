"""Finite rows far from the data: finite log-densities and valid posteriors on every variant.

Oracle: the observable mixture of DESIGN §4.6, ``log p(x) = logsumexp_k(log w_k +
log N(x; A μ_k + b, A Σ_k Aᵀ + Ψ))`` with SciPy, from ``observable_mixture`` (the generative
form, independent of the natural-parameter path the library evaluates). Where SciPy's value is
finite the library must match it; where it is ``-inf`` (below the float64 range) the library's
value must be far below ``-1e300`` and never NaN. Posterior probabilities must be finite, in
``[0, 1]`` and sum to one; ordinary rows in the same batch must keep their ordinary values.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp, softmax

import hmog_xp as hx
from hmog_xp import _backend as B
from tests.helpers import assert_close, to_numpy

P = 4
LOADINGS = np.array([[1.0, 0.0], [0.5, 1.0], [-1.0, 0.5], [0.2, -0.7]])
FAR_ROWS = np.array(
    [
        # along the factors: xᵀΨ⁻¹x overflows, log p(x) ~ -1e305 is representable
        1e153 * (LOADINGS @ np.array([1.0, 0.5])),
        [1e154] * P,  # off the factors: log p(x) is below the float64 range
        [1e300, 0.0, 0.0, 0.0],
        [-1e200, 1.0, 2.0, 3.0],
        [1e10] * P,
        [1e100, -1e100, 1e100, 0.0],
        [1.7e308, -1.7e308, 1.7e308, -1.7e308],  # near the largest float
    ]
)

MODELS = {
    "differentiable": lambda: hx.differentiable_hmog(P, hx.Diagonal(), 2, hx.Diagonal(), 2),
    "symmetric": lambda: hx.symmetric_hmog(P, hx.Diagonal(), 2, hx.Diagonal(), 2),
    "analytic-diagonal": lambda: hx.analytic_hmog(P, hx.Diagonal(), 2, 2),
    "analytic-full": lambda: hx.analytic_hmog(P, hx.PositiveDefinite(), 2, 2),
    "analytic-isotropic": lambda: hx.analytic_hmog(P, hx.Scale(), 2, 2),
}


def _sample(n: int = 60) -> np.ndarray:
    """Two latent clusters seen through ``LOADINGS`` with small noise (sd 0.01)."""
    rng = np.random.default_rng(11)
    signs = np.where(rng.random((n, 1)) < 0.5, 1.0, -1.0)
    latent = 3.0 * signs * np.array([1.0, -0.5]) + rng.normal(size=(n, 2))
    return latent @ LOADINGS.T + 0.01 * rng.normal(size=(n, P))


def _oracle_terms(model, params) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    weights, means, covariances = (to_numpy(a) for a in model.observable_mixture(params))
    return weights, means, covariances


def _component_log_terms(model, params, x: np.ndarray) -> np.ndarray:
    """``log w_k + log N(x; m_k, C_k)``, shape (K, n), with SciPy."""
    weights, means, covariances = _oracle_terms(model, params)
    with np.errstate(over="ignore", invalid="ignore"):
        return np.stack(
            [
                np.log(w) + stats.multivariate_normal(m, c).logpdf(x).reshape(len(x))
                for w, m, c in zip(weights, means, covariances, strict=True)
            ]
        )


@pytest.mark.parametrize("name", list(MODELS))
def test_far_rows_get_finite_densities_and_valid_posteriors(xp, name) -> None:
    model = MODELS[name]()
    ordinary = _sample()
    params = model.initialize_from_sample(0, xp.asarray(ordinary, dtype=xp.float64))
    rows = np.concatenate([ordinary[:5], FAR_ROWS])
    batch = xp.asarray(rows, dtype=xp.float64)
    with np.errstate(over="ignore", invalid="ignore"):
        expected = logsumexp(_component_log_terms(model, params, rows), axis=0)

    density = to_numpy(model.log_observable_density(params, batch))
    assert not np.any(np.isnan(density))
    finite = np.isfinite(expected)
    assert finite[:5].all()
    assert finite[5]  # the first far row is representable, so it must be finite here
    noise = to_numpy(model.to_generative(params).noise)
    variances = np.diag(noise) if noise.ndim == 2 else np.broadcast_to(noise, (P,))
    with np.errstate(over="ignore"):
        assert np.isinf(np.sum(rows[5] ** 2 / variances))  # the plain terms overflow
    np.testing.assert_allclose(density[finite], expected[finite], rtol=1e-9)
    assert np.all(density[~finite] < -1e300)

    probs = to_numpy(model.posterior_soft_assignments(params, batch))
    assert np.all(np.isfinite(probs))
    assert np.all((probs >= 0) & (probs <= 1))
    np.testing.assert_allclose(probs.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    ordinary_probs = softmax(_component_log_terms(model, params, rows[:5]), axis=0).T
    np.testing.assert_allclose(probs[:5], ordinary_probs, rtol=1e-8, atol=1e-10)

    assert np.all(np.isfinite(to_numpy(model.posterior_latent_mean(params, batch))))
    labels = to_numpy(model.posterior_hard_assignment(params, batch))
    assert np.all((labels >= 0) & (labels < model.n_components))
    assert not np.any(np.isnan(to_numpy(model.posterior_categorical(params, batch))))


def test_ordinary_batches_are_unchanged_by_a_far_row(xp) -> None:
    model = MODELS["analytic-diagonal"]()
    ordinary = _sample()
    data = xp.asarray(ordinary, dtype=xp.float64)
    params = model.initialize_from_sample(0, data)
    with_far = xp.asarray(np.concatenate([ordinary, FAR_ROWS[:1]]), dtype=xp.float64)
    alone = model.log_observable_density(params, data)
    together = model.log_observable_density(params, with_far)[: ordinary.shape[0]]
    assert_close(together, to_numpy(alone), rtol=1e-9, atol=1e-9)  # noise sd 0.01: cond ~1e4
    means_alone = model.posterior_latent_mean(params, data)
    means_together = model.posterior_latent_mean(params, with_far)[: ordinary.shape[0], ...]
    assert_close(means_together, to_numpy(means_alone), rtol=1e-9, atol=1e-12)


def test_softmax_of_huge_equal_logits_sums_to_one(xp) -> None:
    logits = xp.asarray([[1e200, 1e200], [-1e300, -1e300], [0.0, -np.inf]], dtype=xp.float64)
    probs = B.softmax(logits, axis=-1, xp=xp)
    assert_close(probs, np.array([[0.5, 0.5], [0.5, 0.5], [1.0, 0.0]]))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_far_rows_through_the_estimator() -> None:
    ordinary = _sample(120)
    est = hx.HMoG(2, 2, random_state=0, max_iter=50).fit(ordinary)
    scores = est.score_samples(FAR_ROWS)
    assert not np.any(np.isnan(scores))
    assert np.isfinite(scores[0])
    proba = est.predict_proba(FAR_ROWS)
    np.testing.assert_allclose(proba.sum(axis=-1), 1.0, rtol=0, atol=1e-12)
    assert np.all(np.isfinite(est.transform(FAR_ROWS)))
