"""The estimator's contract: scikit-learn's checks, robustness on real data, errors, files.

scikit-learn's ``check_estimator`` suite and the robustness runs use NumPy input only, so
they run once (when NumPy is among the selected backends); error messages and saved files
are also checked on every backend through the ``xp`` fixture.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.estimator_checks import parametrize_with_checks

from hmog_xp import BackendError, HMoG
from hmog_xp.datasets import load_digits
from tests.helpers import assert_close, to_numpy, xp_name
from tests.test_estimator import generative_sample


@parametrize_with_checks([HMoG()])
def test_scikit_learn_estimator_checks(numpy_selected: None, estimator: Any, check: Any) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        check(estimator)


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return to_numpy(load_digits(backend="numpy")[0])


@pytest.mark.parametrize("seed", range(20))
def test_digits_fits_stay_finite_for_any_seed(numpy_selected: None, digits: Any, seed: int) -> None:
    # Digits have constant pixels (zero variance) and many near-duplicate images.
    est = HMoG(10, 6, random_state=seed, max_iter=40, tol=1e-5)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(digits)
    for value in (est.weights_, est.means_, est.covariances_, est.loadings_, est.noise_):
        assert np.all(np.isfinite(value))
    assert np.all(np.isfinite(est.log_likelihood_))
    # The floor is relative to each column's variance (noise_floor · scale_²); variances the
    # M-step would put below it end at it, up to rounding.
    assert np.all(est.noise_ / est.scale_**2 >= est.noise_floor * (1.0 - 1e-8))
    assert np.all(np.isfinite(est.predict_proba(digits)))


def test_constant_columns_get_the_noise_floor(numpy_selected: None) -> None:
    observed, _ = generative_sample(1)
    observed = np.concatenate([observed, np.full((300, 1), 3.0)], axis=1)
    est = HMoG(3, 2, random_state=0, noise_floor=1e-4, max_iter=500).fit(observed)
    # Ψ = Cov[x] − Cov[x, y] Cov[y]⁻¹ Cov[y, x] + floor in standardised coordinates, and the
    # constant column has no covariance at all, so its noise is exactly the floor there; a
    # constant column is scaled by its absolute value, so in the data's units Ψ = floor · 3².
    assert est.scale_[-1] == pytest.approx(3.0, rel=1e-12)
    assert est.location_[-1] == pytest.approx(3.0, rel=1e-12)
    assert est.noise_[-1] == pytest.approx(1e-4 * 3.0**2, rel=1e-6)
    assert est.loadings_[-1] == pytest.approx(np.zeros(2), abs=1e-8)
    assert np.all(np.isfinite(est.score_samples(observed)))


def test_emptied_components_are_reported_not_nan(numpy_selected: None) -> None:
    # Three distinct points, five components: at least two components must empty out.
    points = np.repeat(np.array([[0.0, 0.0, 1.0], [5.0, 1.0, 0.0], [0.0, 6.0, 2.0]]), 20, 0)
    points = points + 1e-3 * np.random.default_rng(0).normal(size=points.shape)
    est = HMoG(5, 1, random_state=0, max_iter=200, reg_covar=1e-3)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        est.fit(points)
    messages = [str(w.message) for w in caught]
    assert all(np.isfinite(est.log_likelihood_))
    assert np.all(np.isfinite(est.predict_proba(points)))
    if np.any(est.weights_ * 60 < 1):
        assert any("hold less than one sample" in m for m in messages)


def test_max_iter_reached_warns(numpy_selected: None) -> None:
    observed, _ = generative_sample(2)
    with pytest.warns(ConvergenceWarning, match="did not converge in max_iter=2"):
        HMoG(3, 2, max_iter=2, tol=0.0, random_state=0).fit(observed)


# -- errors --------------------------------------------------------------------------------


def test_non_finite_or_misshapen_data_is_rejected(xp: Any) -> None:
    observed, _ = generative_sample(3, n=30)
    bad = observed.copy()
    bad[4, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        HMoG(2, 2).fit(xp.asarray(bad))
    bad[4, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        HMoG(2, 2).fit(xp.asarray(bad))
    with pytest.raises(ValueError, match="2D"):
        HMoG(2, 2).fit(xp.asarray(observed[:, 0]))
    est = HMoG(2, 2, max_iter=3, tol=0.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est.fit(xp.asarray(observed))
    with pytest.raises(ValueError, match="X has 5 features, but HMoG is expecting 6"):
        est.predict(xp.asarray(observed[:, :5]))
    with pytest.raises(ValueError, match="NaN"):
        est.score_samples(xp.asarray(bad * np.nan))


@pytest.mark.parametrize(
    ("settings", "n_samples", "n_features", "message"),
    [
        ({"n_components": 5}, 4, 3, "n_samples=4 and n_components=5"),
        ({"n_factors": 3}, 10, 3, "n_factors=3 and n_features=3"),
        ({"noise": "banded"}, 10, 3, r"noise must be one of \['full', 'diagonal'"),
        ({"variant": "fast"}, 10, 3, "variant must be one of"),
        ({"init": "kmeans"}, 10, 3, r"init must be one of \['kmeans\+\+', 'random'\]"),
        ({"reg_covar": -1.0}, 10, 3, "reg_covar must be a finite number >= 0"),
        ({"tol": float("nan")}, 10, 3, "tol must be a finite number"),
        ({"n_init": 0}, 10, 3, "n_init must be an int >= 1"),
        ({"learning_rate": 0.0}, 10, 3, "learning_rate must be a finite number > 0"),
        ({"batch_size": 20}, 10, 3, "batch_size=20 exceeds n_samples=10"),
        ({"init": np.zeros(3)}, 10, 3, r"init parameters must have shape"),
    ],
)
def test_invalid_settings_are_named(
    numpy_selected: None, settings: dict[str, Any], n_samples: int, n_features: int, message: str
) -> None:
    data = np.random.default_rng(0).normal(size=(n_samples, n_features))
    with pytest.raises(ValueError, match=message):
        HMoG(**{"n_factors": 1, **settings}).fit(data)


def test_unknown_backend_lists_the_installed_ones(numpy_selected: None) -> None:
    with pytest.raises(BackendError, match="installed"):
        HMoG(backend="tensorflow").fit(np.ones((5, 3)))


def test_methods_before_fit_raise_not_fitted(numpy_selected: None) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError, match="not fitted"):
        HMoG().predict(np.ones((3, 2)))
    with pytest.raises(NotFittedError, match="not fitted"):
        HMoG().save("never.npz")


# -- persistence -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, HMoG, np.ndarray]:
    observed, _ = generative_sample(4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        est = HMoG(3, 2, random_state=0, max_iter=40).fit(observed)
    path = est.save(tmp_path_factory.mktemp("models") / "model")
    return path, est, observed


def test_saved_model_predicts_the_same_on_any_backend(xp: Any, saved: Any) -> None:
    path, original, observed = saved
    assert path.suffix == ".npz"
    loaded = HMoG.load(path, backend=xp_name(xp))
    X = xp.asarray(observed)
    assert_close(loaded.predict_proba(X), original.predict_proba(observed), atol=1e-10)
    assert_close(loaded.score_samples(X), original.score_samples(observed), rtol=1e-10)
    assert loaded.get_params() == {**original.get_params(), "backend": xp_name(xp)}
    assert loaded.log_likelihood_ == original.log_likelihood_
    assert loaded.n_iter_ == original.n_iter_


def test_loading_rejects_foreign_files(numpy_selected: None, tmp_path: Path) -> None:
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, weights=np.ones(3))
    with pytest.raises(ValueError, match="not a saved hmog_xp model"):
        HMoG.load(foreign)
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ValueError, match="not a saved hmog_xp model"):
        HMoG.load(text)
    with pytest.raises(FileNotFoundError):
        HMoG.load(tmp_path / "missing.npz")
