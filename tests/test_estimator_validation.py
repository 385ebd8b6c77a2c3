"""Hyper-parameters: NumPy scalars accepted wherever Python numbers are; bad values refused.

Oracles: the fit with the same values as Python numbers (``.item()``), the parameter's name
in every error, scikit-learn's conventions (an integral float is not an int, a bool is not a
number), and a grid search whose best point is the generating model's (3 clusters, d = 2).
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV

from hmog_xp import HMoG
from hmog_xp._backend.transfer import load_arrays
from tests.conftest import load_namespace
from tests.helpers import assert_close, to_numpy
from tests.test_estimator import generative_sample

#: Fast settings shared by the fits below.
FAST = {"n_components": 3, "n_factors": 2, "max_iter": 5, "tol": 0.0, "random_state": 0}


@pytest.fixture
def numpy_selected() -> None:
    """Skip unless NumPy is a selected test backend (NumPy input: these need run only once)."""
    load_namespace("numpy")


@pytest.fixture(scope="module")
def observed() -> np.ndarray:
    return generative_sample(0)[0]  # the data of tests/test_estimator.py (shared JAX traces)


def _fit(estimator: HMoG, X: Any) -> HMoG:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return estimator.fit(X)


# -- NumPy scalars are accepted and reach nothing downstream ---------------------------------

NUMPY_VALUES = [
    ("n_components", np.int64(2), {}),
    ("n_components", np.int32(3), {}),
    ("n_components", np.array(3), {}),  # a 0-d array
    ("n_factors", np.int64(1), {}),
    ("n_factors", np.uint8(2), {}),
    ("noise", np.str_("full"), {}),
    ("variant", np.str_("symmetric"), {}),
    ("latent_rep", np.str_("isotropic"), {"variant": "differentiable"}),
    ("max_iter", np.int32(4), {}),
    ("tol", np.float32(1e-3), {}),
    ("tol", np.float64(1e-4), {}),
    ("tol", np.int64(0), {}),
    ("n_init", np.int64(2), {}),
    ("reg_covar", np.float32(0.01), {}),
    ("reg_covar", np.array(0.02), {}),
    ("noise_floor", np.float64(1e-3), {}),
    ("noise_floor", np.float32(1e-4), {}),
    ("learning_rate", np.float32(0.05), {"variant": "differentiable"}),
    ("batch_size", np.int64(75), {"variant": "differentiable"}),
    ("learning_offset", np.float64(2.0), {}),
    ("learning_decay", np.float32(0.75), {}),
    ("random_state", np.int64(5), {}),
    ("verbose_interval", np.int16(3), {}),
]


#: Real-valued hyper-parameters: stored as Python floats even when given an integer.
REAL = {"tol", "reg_covar", "noise_floor", "learning_rate", "learning_offset", "learning_decay"}


def _python(value: Any) -> Any:
    return value.item() if isinstance(value, (np.generic, np.ndarray)) else value


@pytest.mark.parametrize(("name", "value", "extra"), NUMPY_VALUES)
def test_numpy_scalars_fit_like_python_numbers_and_save_plainly(
    numpy_selected: None,
    observed: np.ndarray,
    tmp_path: Path,
    name: str,
    value: Any,
    extra: dict[str, Any],
) -> None:
    settings = {**FAST, **extra}
    est = _fit(HMoG(**{**settings, name: value}), observed)
    plain = _fit(HMoG(**{**settings, name: _python(value)}), observed)
    assert est.get_params()[name] is value  # the estimator keeps what it was given
    np.testing.assert_array_equal(est.log_likelihood_, plain.log_likelihood_)
    np.testing.assert_array_equal(est.params_, plain.params_)

    path = est.save(tmp_path / "model.npz")
    _, metadata = load_arrays(path)
    stored = metadata["hyperparameters"][name]
    expected = float(_python(value)) if name in REAL else _python(value)
    assert stored == expected
    assert type(stored) is type(expected)  # an int stays an int, a real becomes a float
    loaded = HMoG.load(path)
    assert loaded.get_params()[name] == _python(value)
    np.testing.assert_array_equal(loaded.predict(observed), est.predict(observed))
    np.testing.assert_allclose(loaded.score_samples(observed), est.score_samples(observed))


def test_numpy_scalars_on_every_backend(xp: Any, device: Any, observed: np.ndarray) -> None:
    X = xp.asarray(observed, device=device)
    numpy_valued = {
        "n_components": np.int64(3),
        "n_factors": np.int32(2),
        "max_iter": np.int64(4),
        "tol": np.float32(0.0),
        "reg_covar": np.float64(1e-3),
        "noise_floor": np.float32(1e-4),
        "random_state": np.int64(0),
    }
    est = _fit(HMoG(**numpy_valued), X)
    plain = _fit(HMoG(**{name: _python(v) for name, v in numpy_valued.items()}), X)
    np.testing.assert_array_equal(est.log_likelihood_, plain.log_likelihood_)
    assert_close(est.predict_proba(X), plain.predict_proba(X), rtol=0.0, atol=0.0)
    draws, labels = est.sample(np.int64(7))
    assert tuple(draws.shape) == (7, observed.shape[1])
    assert tuple(labels.shape) == (7,)


def test_sample_counts(numpy_selected: None, observed: np.ndarray) -> None:
    est = _fit(HMoG(**FAST), observed)
    assert est.sample(np.array(4))[0].shape == (4, observed.shape[1])
    for bad in (0, 2.0, True, "3", np.float64(2)):
        with pytest.raises(ValueError, match=r"n_samples must be an int >= 1"):
            est.sample(bad)


@pytest.mark.parametrize("verbose", [True, np.True_, np.int64(1)])
def test_verbose_takes_a_bool_like_scikit_learn(
    numpy_selected: None, observed: np.ndarray, capsys: Any, verbose: Any
) -> None:
    _fit(HMoG(**{**FAST, "max_iter": 2}, verbose=verbose, verbose_interval=1), observed)
    assert "step 2: log-likelihood" in capsys.readouterr().out


def test_grid_search_over_numpy_grids(numpy_selected: None) -> None:
    # Three latent clusters in d = 2 (tests.test_estimator.generative_sample).
    X, _ = generative_sample(0)
    base = HMoG(random_state=0, max_iter=30)
    grid = {"n_components": np.arange(1, 6), "n_factors": np.arange(1, 4)}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        search = GridSearchCV(base, grid, cv=3).fit(X)
        floors = GridSearchCV(
            clone(base).set_params(n_components=3, n_factors=2),
            {"reg_covar": np.linspace(0.0, 1.0, 5), "tol": np.linspace(1e-6, 1e-4, 2)},
            cv=3,
        ).fit(X)
    assert search.best_params_ == {"n_components": 3, "n_factors": 2}
    assert np.all(np.isfinite(search.cv_results_["mean_test_score"]))
    # A latent floor of 1 (the whole whitened variance) blurs the clusters: 0 is best.
    assert floors.best_params_["reg_covar"] == 0.0
    scores = floors.cv_results_["mean_test_score"].reshape(5, 2)
    assert np.all(np.diff(scores[:, 0]) < 0)
    assert to_numpy(search.best_estimator_.predict(X)).shape == (X.shape[0],)


# -- every value that cannot work is refused at the start of fit, by name -------------------

INVALID = [
    ("n_components", [0, -2, 3.0, np.float64(3), "3", True, np.bool_(True), None, [3]]),
    ("n_factors", [0, 2.0, True, "2", np.array([2])]),
    ("noise", ["banded", 3, None]),
    ("variant", ["fast", None]),
    ("latent_rep", ["dense", 0]),
    ("max_iter", [0, -1, 10.5, True, np.float32(3), None]),
    ("tol", [-1e-3, float("nan"), float("inf"), np.float64("nan"), "1e-3", True, None]),
    ("n_init", [0, 1.0, np.int64(0)]),
    ("init", ["kmeans", 3, None, np.zeros((2, 2)), {"weights": np.ones(3)}]),
    ("reg_covar", [-1.0, float("nan"), float("inf"), "0.1", False]),
    ("noise_floor", [0.0, np.float64(0.0), 0, -1e-6, float("nan"), float("inf"), None]),
    ("learning_rate", [0.0, -0.1, float("inf"), float("nan")]),
    ("batch_size", [0, 2.5, True, "10"]),
    ("learning_offset", [0.0, -1.0, float("inf")]),
    ("learning_decay", [0.5, 1.5, float("nan"), "0.6", True]),
    ("backend", ["tensorflow", 3]),
    ("random_state", [-1, 2**32, 1.5, "0", np.random.default_rng(0)]),
    ("verbose", [-1, 1.5, "yes"]),
    ("verbose_interval", [0, 2.0]),
    ("callback", [3, "print"]),
]
CASES = [(name, value) for name, values in INVALID for value in values]


def _case_id(name: str, value: Any) -> str:
    """A test ID that is the same in every process (no object addresses)."""
    text = repr(value)
    return f"{name}={type(value).__name__}" if " at 0x" in text else f"{name}={text}"


@pytest.mark.parametrize(("name", "value"), CASES, ids=[_case_id(n, v) for n, v in CASES])
def test_invalid_values_are_refused_by_name_before_any_data_work(
    numpy_selected: None, name: str, value: Any
) -> None:
    # The data are invalid too: the hyper-parameter must be refused first.
    not_data = np.full((10, 4), np.nan)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        HMoG(**{name: value}).fit(not_data)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        HMoG(**{name: value}).partial_fit(not_data)


@pytest.mark.parametrize(
    ("settings", "shape", "name"),
    [
        ({"n_components": 11}, (10, 4), "n_components"),
        ({"n_factors": 4}, (10, 4), "n_factors"),
        ({"n_factors": None}, (10, 1), "n_factors"),
        ({"variant": "differentiable", "batch_size": 11}, (10, 4), "batch_size"),
    ],
)
def test_values_that_do_not_fit_the_data_are_refused_by_name(
    numpy_selected: None, settings: dict[str, Any], shape: tuple[int, int], name: str
) -> None:
    data = np.random.default_rng(0).normal(size=shape)
    with pytest.raises(ValueError, match=rf"\b{name}\b"):
        HMoG(**settings).fit(data)


def test_dask_fit_checks_hyperparameters_first(numpy_selected: None, observed: Any) -> None:
    da = pytest.importorskip("dask.array", reason="dask is not installed")
    X = da.from_array(np.full((50, 4), np.nan), chunks=(10, 4))
    with pytest.raises(ValueError, match=r"\bnoise_floor\b"):
        HMoG(noise_floor=0.0).fit(X)
    with pytest.raises(ValueError, match=r"\bn_components\b"):
        HMoG(n_components=51).fit(X)
    chunked = da.from_array(observed, chunks=(100, observed.shape[1]))
    numpy_valued = {**FAST, "n_components": np.int64(2), "tol": np.float32(0.0)}
    est = _fit(HMoG(**numpy_valued), chunked)
    plain = _fit(HMoG(**{**FAST, "n_components": 2}), observed)
    np.testing.assert_allclose(est.log_likelihood_, plain.log_likelihood_, rtol=1e-10)
