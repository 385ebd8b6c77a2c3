"""Unit-free fitting: the estimator's answer does not depend on the data's units or offsets.

Oracle: the affine equivariance of maximum likelihood in the HMoG family. For ``x' = D x + m``
(``D`` diagonal, positive) the fit of ``x'`` must give the same labels, probabilities and factor
scores as the fit of ``x``, readable parameters transformed as ``(D A, D b + m, D Ψ D)`` and
log-likelihoods shifted by exactly ``−Σ_j log D_j`` (a textbook change of variables). The
parameter maps themselves are checked against SciPy's density of the observable mixture.
"""

from __future__ import annotations

import json
import warnings
from typing import Any

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

import hmog_xp as hx
from hmog_xp import HMoG, Standardization
from tests.helpers import assert_close, to_numpy, xp_name
from tests.test_estimator import generative_sample

#: Fixed-length fits (tol 0): both fits take the same steps, whatever rounding does.
_STEPS = 15


def _fit(X: Any, noise: str = "diagonal", variant: str = "analytic") -> HMoG:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return HMoG(
            3, 2, noise=noise, variant=variant, random_state=0, tol=0.0, max_iter=_STEPS
        ).fit(X)


@pytest.fixture(scope="module")
def observed() -> np.ndarray:
    return generative_sample(4, n=240)[0]


def _affine_tolerance(offsets: np.ndarray, scales: np.ndarray) -> float:
    """Rounding of ``D x + m`` in float64 moves standardised data by ``eps · |m / D|``."""
    return 1e-9 + 1e3 * np.finfo(np.float64).eps * float(np.max(np.abs(offsets / scales)))


def _check_same_fit(
    xp: Any, base: HMoG, moved: HMoG, X: Any, Xm: Any, scales: np.ndarray, tolerance: float
) -> None:
    assert_close(moved.predict_proba(Xm), to_numpy(base.predict_proba(X)), atol=tolerance, xp=xp)
    assert_close(moved.transform(Xm), to_numpy(base.transform(X)), atol=100 * tolerance, xp=xp)
    shift = -float(np.sum(np.log(scales)))
    assert moved.score(Xm) == pytest.approx(base.score(X) + shift, abs=100 * tolerance)
    assert_close(
        moved.score_samples(Xm), to_numpy(base.score_samples(X)) + shift, atol=1e3 * tolerance
    )
    history = np.asarray(moved.log_likelihood_) - shift
    np.testing.assert_allclose(history, base.log_likelihood_, atol=100 * tolerance, rtol=0)


_LOG_SCALES = st.lists(st.floats(-8.0, 8.0), min_size=6, max_size=6)
_OFFSETS = st.lists(st.floats(-1e9, 1e9), min_size=6, max_size=6)


def test_units_and_offsets_do_not_change_the_fit(xp: Any, observed: np.ndarray) -> None:
    # Each example is two fits; JAX compiles every fit, so it draws fewer examples.
    @settings(max_examples=2 if xp_name(xp) == "jax" else 5)
    @given(log_scales=_LOG_SCALES, offsets=_OFFSETS)
    def check(log_scales: list[float], offsets: list[float]) -> None:
        _check_moved_fit(xp, observed, 10.0 ** np.asarray(log_scales), np.asarray(offsets))

    check()


def _check_moved_fit(xp: Any, observed: np.ndarray, scales: np.ndarray, offsets: Any) -> None:
    shift = offsets * scales  # up to 1e9 times the column's spread
    moved_host = observed * scales + shift
    X, Xm = xp.asarray(observed), xp.asarray(moved_host)
    base, moved = _fit(X), _fit(Xm)
    tolerance = _affine_tolerance(shift, scales)
    _check_same_fit(xp, base, moved, X, Xm, scales, tolerance)
    labels = to_numpy(base.predict(X))
    margin = np.sort(to_numpy(base.predict_proba(X)), axis=1)
    clear = margin[:, -1] - margin[:, -2] > 10 * tolerance
    np.testing.assert_array_equal(to_numpy(moved.predict(Xm))[clear], labels[clear])
    # Readable parameters in the data's units: (D A, D b + m, D Ψ D).
    # (rounding of the moved data grows through the steps like the probabilities' error)
    rtol = max(1e-6, 10 * tolerance)
    assert_close(moved.loadings_, scales[:, None] * to_numpy(base.loadings_), rtol=rtol, xp=xp)
    assert_close(moved.noise_, scales**2 * to_numpy(base.noise_), rtol=rtol, xp=xp)
    expected_bias = scales * to_numpy(base.bias_) + shift
    assert_close(moved.bias_, expected_bias, rtol=rtol, atol=10 * rtol * np.max(scales), xp=xp)


@pytest.mark.parametrize(("noise", "variant"), [("full", "analytic"), ("diagonal", "symmetric")])
def test_other_noise_and_variants_are_unit_free(
    observed: np.ndarray, noise: str, variant: str, numpy_selected: None
) -> None:
    scales = np.array([1e-6, 1.0, 3e3, 1e7, 0.5, 2.0])
    offsets = np.array([1e3, -1e5, 0.0, 1e9, 7.0, -2.0])
    moved = observed * scales + offsets
    base, fitted = _fit(observed, noise, variant), _fit(moved, noise, variant)
    tolerance = _affine_tolerance(offsets, scales)
    _check_same_fit(np, base, fitted, observed, moved, scales, tolerance)


def test_isotropic_noise_is_unit_free_under_a_common_scale(
    observed: np.ndarray, numpy_selected: None
) -> None:
    # Ψ = λI is closed only under one common scale: per-column offsets, one factor.
    offsets = np.array([1e6, -3.0, 0.0, 2e8, 5.0, -1e4])
    scales = np.full(6, 1e-5)
    base = _fit(observed, "isotropic")
    fitted = _fit(observed * scales + offsets, "isotropic")
    tolerance = _affine_tolerance(offsets, scales)
    _check_same_fit(np, base, fitted, observed, observed * scales + offsets, scales, tolerance)
    assert np.ptp(fitted.scale_) == 0.0


def test_raw_wine_clusters_as_well_as_standardised_wine(numpy_selected: None) -> None:
    sklearn_datasets = pytest.importorskip("sklearn.datasets")
    X, _ = sklearn_datasets.load_wine(return_X_y=True)
    standardised = (X - X.mean(axis=0)) / X.std(axis=0)
    raw, scaled = HMoG(3, 2, random_state=0).fit(X), HMoG(3, 2, random_state=0).fit(standardised)
    np.testing.assert_array_equal(raw.predict(X), scaled.predict(standardised))
    shift = -float(np.sum(np.log(X.std(axis=0))))
    assert raw.score(X) == pytest.approx(scaled.score(standardised) + shift, abs=1e-9)


def test_constant_columns_are_scaled_by_their_value(numpy_selected: None) -> None:
    observed = generative_sample(1, n=120)[0]
    table = np.concatenate([observed, np.full((120, 1), -2.5e6), np.zeros((120, 1))], axis=1)
    est = _fit(table)
    np.testing.assert_allclose(to_numpy(est.scale_)[-2:], [2.5e6, 1.0], rtol=1e-12)
    np.testing.assert_allclose(to_numpy(est.location_)[-2:], [-2.5e6, 0.0], rtol=1e-12)
    assert np.all(np.isfinite(to_numpy(est.score_samples(table))))
    # Scaling the data scales the constant column's scale too: still unit-free.
    moved = _fit(table * 1e-3)
    assert moved.scale_[-2] == pytest.approx(2.5e3, rel=1e-12)
    np.testing.assert_allclose(moved.predict_proba(table * 1e-3), est.predict_proba(table))


# -- the parameter maps ----------------------------------------------------------------------


@pytest.mark.star_on_jax
@pytest.mark.parametrize("rep", [hx.Diagonal(), hx.PositiveDefinite(), hx.Scale()])
@pytest.mark.parametrize("variant", ["analytic", "differentiable", "symmetric"])
def test_parameter_maps_match_the_density_of_the_moved_data(
    xp: Any, rep: Any, variant: str
) -> None:
    rng = np.random.default_rng(3)
    if variant == "analytic":
        model = hx.analytic_hmog(4, rep, 2, 3)
    elif variant == "differentiable":
        model = hx.differentiable_hmog(4, rep, 2, hx.Diagonal(), 3)
    else:
        model = hx.symmetric_hmog(4, rep, 2, hx.Diagonal(), 3)
    params = xp.asarray(to_numpy(model.initialize(5)))
    location = rng.normal(size=4) * 10.0
    scale = np.full(4, 2.5) if isinstance(rep, hx.Scale) else np.exp(rng.normal(size=4))
    standardization = Standardization(xp.asarray(location), xp.asarray(scale))
    moved = standardization.params_to_data(model, params)
    zs = rng.normal(size=(9, 4))
    xs = zs * scale + location
    # Oracle: SciPy's density of the observable mixture N(D(Aμ_k + b) + m, D C_k D).
    weights, means, covariances = (to_numpy(part) for part in model.observable_mixture(params))
    oracle = np.log(
        sum(
            w
            * scipy.stats.multivariate_normal(
                scale * mu + location, np.outer(scale, scale) * c
            ).pdf(xs)
            for w, mu, c in zip(weights, means, covariances, strict=True)
        )
    )
    assert_close(model.log_observable_density(moved, xp.asarray(xs)), oracle, rtol=1e-9, xp=xp)
    shift = standardization.log_density_shift()
    assert shift == pytest.approx(-float(np.sum(np.log(scale))), rel=1e-12)
    assert_close(
        model.log_observable_density(params, xp.asarray(zs)) + shift, oracle, rtol=1e-9, xp=xp
    )
    assert_close(standardization.params_from_data(model, moved), to_numpy(params), atol=1e-9, xp=xp)
    readable = standardization.generative_to_data(model, model.to_generative(params))
    for mapped, direct in zip(readable, model.to_generative(moved), strict=True):
        assert_close(mapped, to_numpy(direct), rtol=1e-8, atol=1e-10, xp=xp)


def test_from_data_standardises_every_column(xp: Any) -> None:
    host = np.random.default_rng(0).normal(size=(50, 3)) * [1e-7, 1.0, 1e6] + [5.0, -1e8, 0.0]
    standardization = Standardization.from_data(xp.asarray(host))
    zs = to_numpy(standardization.standardize(xp.asarray(host)))
    np.testing.assert_allclose(zs.mean(axis=0), 0.0, atol=1e-7)
    np.testing.assert_allclose(zs.std(axis=0), 1.0, rtol=1e-9)
    back = standardization.unstandardize(standardization.standardize(xp.asarray(host)))
    assert_close(back, host, rtol=1e-12, xp=xp)
    common = Standardization.from_data(xp.asarray(host), common_scale=True)
    expected = np.sqrt(np.mean(host.var(axis=0)))
    assert_close(common.scale, np.full(3, expected), rtol=1e-12, xp=xp)


def test_a_saved_fit_keeps_its_standardisation(tmp_path: Any, numpy_selected: None) -> None:
    observed = generative_sample(2, n=150)[0] * 1e-6 + 4e8
    est = _fit(observed)
    loaded = HMoG.load(est.save(tmp_path / "far.npz"))
    np.testing.assert_array_equal(to_numpy(loaded.scale_), to_numpy(est.scale_))
    np.testing.assert_allclose(loaded.predict_proba(observed), est.predict_proba(observed))
    assert loaded.score(observed) == pytest.approx(est.score(observed), rel=1e-12)


def test_a_version_1_file_holds_data_unit_parameters(tmp_path: Any, numpy_selected: None) -> None:
    # Files written before the standardisation hold data-unit parameters and no map.
    observed = generative_sample(3, n=150)[0]
    est = _fit(observed)
    path = est.save(tmp_path / "model.npz")
    with np.load(path, allow_pickle=False) as archive:
        metadata = json.loads(str(archive["__metadata__"]))
    metadata["version"] = 1
    old = tmp_path / "old.npz"
    np.savez(old, params=to_numpy(est.params_), __metadata__=np.asarray(json.dumps(metadata)))
    loaded = HMoG.load(old)
    np.testing.assert_array_equal(to_numpy(loaded.scale_), np.ones(6))
    np.testing.assert_allclose(loaded.predict_proba(observed), est.predict_proba(observed))
    assert loaded.score(observed) == pytest.approx(est.score(observed), rel=1e-10)


def test_fit_em_standardize_is_the_fit_of_the_standardised_data(xp: Any) -> None:
    observed = generative_sample(5, n=200)[0]
    scales = np.array([1e-7, 1.0, 1e5, 3.0, 1e3, 0.01])
    offsets = np.array([1.0, -2.0, 0.0, 1e4, -7e5, 3.0])  # up to 1e9 spreads
    moved = observed * scales + offsets
    model = hx.analytic_hmog(6, hx.Diagonal(), 2, 3)
    mean, std = observed.mean(axis=0), observed.std(axis=0)
    start = model.initialize_from_sample(0, (observed - mean) / std)
    # Oracle: EM on data standardised by hand from the same (standardised) start.
    by_hand = hx.fit_em(model, start, (observed - mean) / std, max_iter=10, tol=0.0)
    moved_start = Standardization(
        xp.asarray(mean * scales + offsets), xp.asarray(std * scales)
    ).params_to_data(model, xp.asarray(to_numpy(start)))
    seen: list[float] = []
    fit = hx.fit_em(
        model,
        moved_start,
        xp.asarray(moved),
        max_iter=10,
        tol=0.0,
        standardize=True,
        callback=lambda _, value: seen.append(value),
    )
    shift = -float(np.sum(np.log(std * scales)))
    np.testing.assert_allclose(fit.log_likelihoods, np.add(by_hand.log_likelihoods, shift))
    np.testing.assert_allclose(seen, fit.log_likelihoods[: len(seen)])
    # Natural parameters in data units with offsets are poorly conditioned to evaluate
    # (h' and Λ' x cancel), so compare them mapped back to standardised coordinates.
    back = Standardization.from_data(xp.asarray(moved)).params_from_data(model, fit.params)
    assert_close(back, to_numpy(by_hand.params), rtol=1e-6, atol=1e-6, xp=xp)
