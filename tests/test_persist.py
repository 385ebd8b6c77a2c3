"""Safe model files: atomic saves, and a clear error for every damaged or tampered file.

Damaged files are built with NumPy's own ``np.savez`` (an independent writer), from the
arrays and metadata of a real saved model with one thing changed. File tests do not depend
on the backend under test, so most run once (when NumPy is selected); the interrupted save
and the round trip run on every backend.
"""

from __future__ import annotations

import json
import os
import stat
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sklearn.exceptions import ConvergenceWarning

import hmog_xp
from hmog_xp import HMoG, ModelFileError
from hmog_xp._files import atomic_write, same_file
from hmog_xp.estimator import _persist
from tests.conftest import load_namespace
from tests.helpers import assert_close, to_numpy, xp_name

POSIX = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes and links")


@pytest.fixture
def numpy_selected() -> None:
    """Skip unless NumPy is a selected test backend (these tests need run only once)."""
    load_namespace("numpy")


def _data(seed: int = 0, n: int = 120) -> np.ndarray:
    rng = np.random.default_rng(seed)
    latent = rng.normal(size=(n, 2)) + np.repeat([[0.0, 0.0], [4.0, 0.0]], n // 2, axis=0)
    return latent @ rng.normal(size=(2, 5)) + 0.3 * rng.normal(size=(n, 5))


def _fit(X: Any, max_iter: int = 15, **kwargs: Any) -> HMoG:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return HMoG(2, 2, random_state=0, max_iter=max_iter, **kwargs).fit(X)


@pytest.fixture(scope="module")
def fitted() -> HMoG:
    return _fit(_data())


@pytest.fixture
def saved(fitted: HMoG, tmp_path: Path) -> Path:
    return fitted.save(tmp_path / "model.npz")


def _contents(path: Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    with np.load(path) as archive:
        arrays = {name: archive[name] for name in archive.files}
    return arrays, json.loads(str(arrays.pop("__metadata__")))


def _write(path: Path, arrays: dict[str, Any], metadata: Any = None, raw: Any = None) -> Path:
    stored = dict(arrays)
    if raw is not None:
        stored["__metadata__"] = raw
    elif metadata is not None:
        stored["__metadata__"] = np.asarray(json.dumps(metadata))
    np.savez(path, **stored)
    return path


# -- atomic writes -------------------------------------------------------------------------------


def _interrupt_second_array(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make NumPy's array writer write half of the second array, then raise Ctrl-C."""
    real = np.lib.format.write_array
    calls = []

    def write_array(fp: Any, array: Any, *args: Any, **kwargs: Any) -> None:
        calls.append(1)
        if len(calls) == 2:
            fp.write(b"\x93NUMPY partial")
            raise KeyboardInterrupt
        real(fp, array, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "write_array", write_array)


def test_interrupted_save_leaves_the_old_file(
    xp: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X = xp.asarray(_data(), dtype=xp.float64)
    path = _fit(X).save(tmp_path / "model.npz")
    before = path.read_bytes()
    other = _fit(X + 1.0)  # another model, of the same shapes (nothing new to compile)
    _interrupt_second_array(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        other.save(path)
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.npz"]
    loaded = HMoG.load(path, backend=xp_name(xp))
    assert_close(loaded.score_samples(X[:5, :]), _fit(X).score_samples(X[:5, :]), rtol=1e-10)


def test_interrupted_first_save_leaves_nothing(
    numpy_selected: None, fitted: HMoG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _interrupt_second_array(monkeypatch)
    with pytest.raises(KeyboardInterrupt):
        fitted.save(tmp_path / "model.npz")
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_replaces_or_keeps(numpy_selected: None, tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_bytes(b"old")
    with atomic_write(target) as handle:
        handle.write(b"new")
        assert target.read_bytes() == b"old"  # nothing visible before the block ends
    assert target.read_bytes() == b"new"

    def fail(handle: Any) -> None:
        handle.write(b"half")
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"), atomic_write(target) as handle:
        fail(handle)
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["out.csv"]
    with pytest.raises(IsADirectoryError, match="is a directory"), atomic_write(tmp_path):
        pass


@POSIX
def test_file_modes(numpy_selected: None, fitted: HMoG, tmp_path: Path) -> None:
    umask = os.umask(0o022)
    os.umask(umask)
    path = fitted.save(tmp_path / "new.npz")
    assert stat.S_IMODE(path.stat().st_mode) == 0o666 & ~umask  # as open() would create it
    path.chmod(0o640)
    fitted.save(path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o640  # a replaced file keeps its mode


@POSIX
def test_save_through_a_symlink_replaces_its_target(
    numpy_selected: None, fitted: HMoG, tmp_path: Path
) -> None:
    real = fitted.save(tmp_path / "real.npz")
    link = tmp_path / "link.npz"
    link.symlink_to(real)
    _fit(_data(1)).save(link)
    assert link.is_symlink()
    assert HMoG.load(real).n_iter_ == HMoG.load(link).n_iter_
    assert same_file(link, real)
    assert not same_file(link, tmp_path / "other.npz")


def test_saved_file_needs_no_pickle(numpy_selected: None, saved: Path) -> None:
    with np.load(saved, allow_pickle=False) as archive:
        assert sorted(archive.files) == ["__metadata__", "location", "params", "scale"]
    with zipfile.ZipFile(saved) as archive:
        assert archive.testzip() is None


# -- loading damaged files -----------------------------------------------------------------------


def test_missing_file_and_directory(numpy_selected: None, tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no such file"):
        HMoG.load(tmp_path / "missing.npz")
    with pytest.raises(ModelFileError, match="is a directory"):
        HMoG.load(tmp_path)


def test_truncated_at_every_twentieth(numpy_selected: None, saved: Path, tmp_path: Path) -> None:
    data = saved.read_bytes()
    cut = tmp_path / "cut.npz"
    for offset in sorted({len(data) * i // 20 for i in range(20)} | {1, len(data) - 1}):
        cut.write_bytes(data[:offset])
        with pytest.raises(ModelFileError, match=r"cut\.npz: not a saved hmog_xp model"):
            HMoG.load(cut)


@given(
    edits=st.lists(st.tuples(st.floats(0.0, 1.0), st.integers(0, 255)), min_size=1, max_size=4),
    keep=st.none() | st.floats(0.0, 1.0),
)
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_random_damage_only_raises_model_file_error(
    numpy_selected: None, saved: Path, edits: list[tuple[float, int]], keep: float | None
) -> None:
    data = bytearray(saved.read_bytes())
    for where, value in edits:
        data[min(int(where * len(data)), len(data) - 1)] = value
    if keep is not None:
        data = data[: int(keep * len(data))]
    damaged = saved.with_name("damaged.npz")
    damaged.write_bytes(bytes(data))
    try:
        loaded = HMoG.load(damaged)
    except ModelFileError as exc:
        message = str(exc)
    else:  # the bytes changed were ones nothing reads (e.g. a time stamp)
        assert np.isfinite(loaded.score_samples(_data()[:5])).all()
        return
    assert message.startswith(f"{damaged}: ")


def test_not_an_npz(numpy_selected: None, tmp_path: Path) -> None:
    text = tmp_path / "notes.npz"
    text.write_text("hello")
    with pytest.raises(ModelFileError, match=r"notes\.npz: not a saved hmog_xp model"):
        HMoG.load(text)
    npy = tmp_path / "array.npz"
    with npy.open("wb") as handle:
        np.save(handle, np.ones(3))
    with pytest.raises(ModelFileError, match=r"array\.npz: not a saved hmog_xp model"):
        HMoG.load(npy)


def _drop(metadata: dict[str, Any], key: str) -> None:
    *parents, last = key.split(".")
    for part in parents:
        metadata = metadata[part]
    del metadata[last]


def _set(metadata: dict[str, Any], key: str, value: Any) -> None:
    *parents, last = key.split(".")
    for part in parents:
        metadata = metadata[part]
    metadata[last] = value


@pytest.mark.parametrize(
    "key",
    [
        "format",
        "version",
        "hyperparameters",
        "model",
        "model.n_features",
        "model.n_factors",
        "fit",
        "fit.backend",
        "fit.dtype",
        "fit.converged",
        "fit.n_iter",
        "fit.log_likelihood",
        "fit.feature_names",
    ],
)
def test_missing_metadata_fields(
    numpy_selected: None, saved: Path, tmp_path: Path, key: str
) -> None:
    arrays, metadata = _contents(saved)
    _drop(metadata, key)
    path = _write(tmp_path / "edited.npz", arrays, metadata)
    with pytest.raises(ModelFileError, match=f"edited.npz.*({key.split('.')[-1]}|format)"):
        HMoG.load(path)


#: (metadata field, edited value, what the message says)
WRONG_METADATA = [
    ("format", "sklearn.GaussianMixture", "not a saved hmog_xp.HMoG model"),
    ("version", 99, "newer hmog_xp"),
    ("version", "1", "'version' must be an integer"),
    ("hyperparameters", ["n_components", 2], "'hyperparameters' must be a JSON object"),
    ("model", 5, "'model' must be a JSON object"),
    ("fit", None, "'fit' must be a JSON object"),
    ("model.n_features", "5", "'model.n_features' must be an integer"),
    ("model.n_features", True, "'model.n_features' must be an integer"),
    ("model.n_factors", 2.0, "'model.n_factors' must be an integer"),
    ("model.n_factors", 0, "'model.n_factors' must be an integer >= 1"),
    ("fit.backend", "tensorflow", "'fit.backend' must be one of"),
    ("fit.dtype", "float16", "'fit.dtype' must be one of"),
    ("fit.converged", "yes", "'fit.converged' must be true or false"),
    ("fit.n_iter", -1, "'fit.n_iter' must be an integer >= 0"),
    ("fit.log_likelihood", [], "'fit.log_likelihood' must be a non-empty list"),
    ("fit.log_likelihood", {"a": 1}, "'fit.log_likelihood' must be a non-empty list"),
    ("fit.log_likelihood", ["-1.0"], "'fit.log_likelihood' must be a non-empty list"),
    ("fit.feature_names", "abcde", "'fit.feature_names' must be null or a list of strings"),
    ("fit.feature_names", [1, 2, 3, 4, 5], "must be null or a list of strings"),
    ("fit.feature_names", ["a", "b"], "2 feature names for 5 features"),
    ("hyperparameters.variant", "quantum", "variant must be one of"),
    ("hyperparameters.noise", "pink", "noise must be one of"),
    ("hyperparameters.latent_rep", 3, "latent_rep must be one of"),
    ("hyperparameters.n_components", "2", "n_components must be an int"),
    ("hyperparameters.tol", [1e-3], "tol must be a finite number"),
    ("hyperparameters.shiny", True, r"unknown hyper-parameter\(s\) \['shiny'\]"),
    ("hyperparameters.callback", "print", r"unknown hyper-parameter\(s\) \['callback'\]"),
    ("hyperparameters.init", [[0.0]], "'init' must be a str"),
    ("hyperparameters.random_state", "0", "'random_state' must be a int"),
    ("hyperparameters.n_factors", 3, "n_factors=3 but the model has d=2"),
    ("model.n_factors", 5, "n_factors=5 must be smaller than n_features=5"),
    ("model.n_factors", 3, r"'params' has shape \(31,\), expected \(\d+,\)"),
    ("model.n_features", 6, r"'params' has shape \(31,\), expected"),
    ("hyperparameters.n_components", 3, r"'params' has shape \(31,\).*n_components=3"),
    ("hyperparameters.variant", "symmetric", r"'params' has shape \(31,\)"),
]


@pytest.mark.parametrize(("key", "value", "message"), WRONG_METADATA)
def test_wrong_metadata(
    numpy_selected: None, saved: Path, tmp_path: Path, key: str, value: Any, message: str
) -> None:
    arrays, metadata = _contents(saved)
    _set(metadata, key, value)
    if key == "model.n_factors" and isinstance(value, int) and value > 2:
        metadata["hyperparameters"]["n_factors"] = value
    path = _write(tmp_path / "edited.npz", arrays, metadata)
    with pytest.raises(ModelFileError, match=f"edited.npz: .*{message}"):
        HMoG.load(path)


def test_metadata_entry_damaged(numpy_selected: None, saved: Path, tmp_path: Path) -> None:
    arrays, _ = _contents(saved)
    cases = {
        "no metadata entry": None,
        "metadata is not JSON": np.asarray('{"format": "hmog_xp.HMoG", '),
        "metadata is a JSON list": np.asarray("[1, 2]"),
        "metadata entry is a float64 array": np.ones(2),
    }
    for message, raw in cases.items():
        path = _write(tmp_path / "edited.npz", arrays, raw=raw)
        with pytest.raises(ModelFileError, match=f"edited.npz: .*{message}"):
            HMoG.load(path)


def _edited_params(saved: Path, tmp_path: Path, params: Any, **extra: Any) -> Path:
    arrays, metadata = _contents(saved)
    arrays.pop("params")
    if params is not None:
        arrays["params"] = params
    return _write(tmp_path / "edited.npz", {**arrays, **extra}, metadata)


def test_wrong_arrays(numpy_selected: None, saved: Path, tmp_path: Path) -> None:
    params = _contents(saved)[0]["params"]
    cases = [
        (None, {}, "the array 'params' is missing"),
        (params[:-1], {}, r"'params' has shape \(30,\), expected \(31,\)"),
        (params.reshape(1, -1), {}, r"'params' has shape \(1, 31\)"),
        (params.astype(np.int64), {}, "holds int64 values, not floats"),
        (params.astype(np.complex128), {}, "holds complex128 values"),
        (np.where(np.arange(31) == 3, np.nan, params), {}, "non-finite values"),
        (np.where(np.arange(31) == 0, np.inf, params), {}, "non-finite values"),
        (params, {"weights": np.ones(3)}, r"unexpected array\(s\) \['weights'\]"),
        (params.astype(object), {}, "holds Python objects, which are never unpickled"),
    ]
    for value, extra, message in cases:
        path = _edited_params(saved, tmp_path, value, **extra)
        with pytest.raises(ModelFileError, match=f"edited.npz: .*{message}"):
            HMoG.load(path)


@pytest.mark.parametrize("variant", ["analytic", "differentiable", "symmetric"])
@pytest.mark.parametrize("part", ["observable", "latent", "coupling"])
def test_parameters_that_are_not_a_distribution(
    numpy_selected: None, tmp_path: Path, variant: str, part: str
) -> None:
    latent_rep = "full" if variant == "analytic" else "diagonal"
    fitted = _fit(_data(), variant=variant, latent_rep=latent_rep, max_iter=3)
    saved = fitted.save(tmp_path / "model.npz")
    model, params = fitted.model_, to_numpy(fitted.params_)
    obs, interaction, upper = model.split_coords(params)
    # Negating a positive definite precision makes it negative definite; a coupling far
    # beyond the latent precision makes the prior precision Λ_y − WᵀΛ_x⁻¹W indefinite.
    edited = {
        "observable": (-obs, interaction, upper),
        "latent": (obs, interaction, -upper),
        "coupling": (obs, 1e4 * interaction, upper),
    }[part]
    path = _edited_params(saved, tmp_path, to_numpy(model.join_coords(*edited)))
    with pytest.raises(ModelFileError, match=r"edited\.npz: the saved parameters do not describe"):
        HMoG.load(path)


# -- the table of stored arrays ------------------------------------------------------------------


def test_optional_arrays_are_saved_restored_and_may_be_missing(
    numpy_selected: None, fitted: HMoG, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    extra = _persist.StoredArray(
        "spread", "spread_", lambda s: (s.n_features,), required=False, positive=True
    )
    old = fitted.save(tmp_path / "old.npz")  # written before the array existed
    monkeypatch.setattr(_persist, "ARRAYS", (*_persist.ARRAYS, extra))
    assert not hasattr(HMoG.load(old), "spread_")
    fitted.spread_ = np.arange(1.0, 6.0)
    try:
        new = fitted.save(tmp_path / "new.npz")
    finally:
        del fitted.spread_
    np.testing.assert_array_equal(HMoG.load(new).spread_, np.arange(1.0, 6.0))
    arrays, metadata = _contents(new)
    _write(new, {**arrays, "spread": -np.ones(5)}, metadata)
    with pytest.raises(ModelFileError, match="the array 'spread' must be positive"):
        HMoG.load(new)
    _write(new, {**arrays, "spread": np.ones(4)}, metadata)
    with pytest.raises(ModelFileError, match=r"'spread' has shape \(4,\), expected \(5,\)"):
        HMoG.load(new)


def test_model_file_error_is_public(numpy_selected: None) -> None:
    assert "ModelFileError" in hmog_xp.__all__
    assert issubclass(hmog_xp.ModelFileError, ValueError)
