"""Thread limits for small work (``hmog_xp._backend.threads``) and their use in the estimator.

Thread counts are read back from the libraries themselves (``torch.get_num_threads``,
``threadpoolctl.threadpool_info``), never from hmog_xp. No timings are asserted.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from sklearn.datasets import load_wine
from threadpoolctl import threadpool_info, threadpool_limits

import hmog_xp as hx
from hmog_xp import _backend as B
from hmog_xp._backend import compute_threads
from hmog_xp._backend.threads import SMALL_WORK, step_work
from hmog_xp._errors import BackendError
from hmog_xp.estimator import _estimator, _selection

SMALL, LARGE = 1.0, 10.0 * SMALL_WORK


def _selected(name: str) -> bool:
    wanted = os.environ.get("HMOG_XP_TEST_BACKENDS", "").strip()
    return not wanted or name in {w.strip() for w in wanted.split(",")}


@pytest.fixture
def torch() -> Iterator[Any]:
    """PyTorch with two intra-op threads (the user's setting), restored afterwards."""
    if not _selected("torch"):
        pytest.skip("torch not in HMOG_XP_TEST_BACKENDS")
    module = pytest.importorskip("torch", reason="PyTorch is not installed")
    before = module.get_num_threads()
    module.set_num_threads(2)
    yield module
    module.set_num_threads(before)


def _blas_threads() -> list[int]:
    return [lib["num_threads"] for lib in threadpool_info() if lib["user_api"] == "blas"]


@pytest.fixture
def blas() -> Iterator[list[int]]:
    """NumPy's BLAS pools at up to two threads (the user's setting); yields their counts."""
    if not _blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can control is loaded")
    with threadpool_limits(limits=2, user_api="blas"):
        yield _blas_threads()


def _wine() -> np.ndarray:
    return load_wine().data


# -- the context manager -----------------------------------------------------------------------


def test_step_work_formula() -> None:
    n, p, k, d = 178, 13, 3, 2
    expected = n * p * d + n * k * d * d  # the two data products and the K posterior moments
    assert step_work(np.zeros((n, p)), k, d) == expected
    assert step_work([[0.0] * p] * n, k, d) == expected


def test_step_work_unknown_shape_is_large() -> None:
    class Unknown:  # a Dask array with unknown chunk sizes reports NaN rows
        shape = (float("nan"), 13)

    assert step_work(Unknown(), 3, 2) == float("inf")
    assert step_work(np.zeros(13), 3, 2) == float("inf")
    assert step_work([1.0, 2.0], 3, 2) == float("inf")


def test_bad_partial_fit_data_keep_the_estimators_message() -> None:
    with pytest.raises(ValueError, match="Expected 2D array"):
        hx.HMoG(2, 1).partial_fit(np.zeros(13))


def test_torch_small_work_runs_one_thread_and_restores(torch: Any) -> None:
    with compute_threads(torch, SMALL):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


def test_torch_restored_after_an_exception(torch: Any) -> None:
    inside: list[int] = []

    def fail() -> None:
        with compute_threads("torch", SMALL):
            inside.append(torch.get_num_threads())
            raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        fail()
    assert inside == [1]
    assert torch.get_num_threads() == 2


def test_torch_large_work_keeps_the_setting(torch: Any) -> None:
    with compute_threads(torch, LARGE):
        assert torch.get_num_threads() == 2
    with compute_threads(torch, SMALL, threshold=0):
        assert torch.get_num_threads() == 2


def test_torch_never_raises_the_users_setting(torch: Any) -> None:
    torch.set_num_threads(1)
    for work in (SMALL, LARGE):
        with compute_threads(torch, work):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1


def test_torch_nested_contexts_restore_the_outer_setting(torch: Any) -> None:
    with compute_threads(torch, SMALL):
        with compute_threads(torch, SMALL):
            assert torch.get_num_threads() == 1
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == 2


@pytest.mark.parametrize("name", ["numpy", "array_api_strict", "torch"])
def test_blas_small_work_runs_one_thread_and_restores(blas: list[int], name: str) -> None:
    with compute_threads(name, SMALL):
        assert set(_blas_threads()) == {1}
    assert _blas_threads() == blas


def test_blas_restored_after_an_exception(blas: list[int]) -> None:
    inside: list[set[int]] = []

    def fail() -> None:
        with compute_threads(np, SMALL):
            inside.append(set(_blas_threads()))
            raise RuntimeError("inside")

    with pytest.raises(RuntimeError, match="inside"):
        fail()
    assert inside == [{1}]
    assert _blas_threads() == blas


def test_blas_large_work_keeps_the_setting(blas: list[int]) -> None:
    with compute_threads(np, LARGE):
        assert _blas_threads() == blas
    assert _blas_threads() == blas


def test_blas_never_raised() -> None:
    if not _blas_threads():
        pytest.skip("no BLAS library that threadpoolctl can control is loaded")
    with threadpool_limits(limits=1, user_api="blas"):
        for work in (SMALL, LARGE):
            with compute_threads(np, work):
                assert set(_blas_threads()) == {1}
            assert set(_blas_threads()) == {1}


@pytest.mark.parametrize("xp", [None, "jax", "cupy"])
def test_other_backends_change_nothing(blas: list[int], xp: str | None) -> None:
    with compute_threads(xp, SMALL):
        assert _blas_threads() == blas


def test_jax_leaves_torch_alone(torch: Any) -> None:
    with compute_threads("jax", SMALL):
        assert torch.get_num_threads() == 2


def test_unknown_backend_name_is_refused() -> None:
    with pytest.raises(BackendError, match=r"unknown backend 'tensorflow'"):
        compute_threads("tensorflow", SMALL).__enter__()


@pytest.mark.parametrize("work", [-1.0, float("nan")])
def test_bad_work_is_refused(work: float) -> None:
    with pytest.raises(ValueError, match="work must be a non-negative number"):
        compute_threads(np, work).__enter__()


# -- the estimator -----------------------------------------------------------------------------


def _unlimited(xp: Any, work: float, **kwargs: Any) -> Any:
    return compute_threads(xp, work, threshold=0)


def test_torch_fit_runs_one_thread_and_matches_the_unlimited_fit(
    torch: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    X = torch.asarray(_wine())
    seen: list[int] = []

    def record(iteration: int, log_likelihood: float) -> None:
        seen.append(torch.get_num_threads())

    limited = hx.HMoG(3, 2, random_state=0, callback=record).fit(X)
    assert set(seen) == {1}
    assert torch.get_num_threads() == 2

    seen.clear()
    monkeypatch.setattr(B, "compute_threads", _unlimited)
    unlimited = hx.HMoG(3, 2, random_state=0, callback=record).fit(X)
    assert set(seen) == {2}
    # Same arithmetic up to the order of the threads' partial sums.
    assert limited.n_iter_ == unlimited.n_iter_
    np.testing.assert_allclose(
        np.asarray(limited.params_), np.asarray(unlimited.params_), rtol=1e-10, atol=1e-10
    )
    np.testing.assert_allclose(limited.lower_bound_, unlimited.lower_bound_, rtol=1e-12)


def test_numpy_fit_runs_blas_single_threaded(blas: list[int]) -> None:
    seen: list[set[int]] = []

    def record(iteration: int, log_likelihood: float) -> None:
        seen.append(set(_blas_threads()))

    hx.HMoG(3, 2, random_state=0, callback=record).fit(_wine())
    assert seen
    assert all(threads == {1} for threads in seen)
    assert _blas_threads() == blas


def test_fit_restores_threads_when_it_raises(torch: Any) -> None:
    def fail(iteration: int, log_likelihood: float) -> None:
        raise KeyboardInterrupt  # a user stopping a fit from a progress callback

    with pytest.raises(KeyboardInterrupt):
        hx.HMoG(2, 2, random_state=0, callback=fail).fit(torch.asarray(_wine()))
    assert torch.get_num_threads() == 2


def test_partial_fit_runs_one_thread(torch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original = _estimator.partial_fit

    def spy(estimator: Any, X: Any) -> None:
        seen.append(torch.get_num_threads())
        original(estimator, X)

    monkeypatch.setattr(_estimator, "partial_fit", spy)
    X = torch.asarray(_wine())
    est = hx.HMoG(2, 2, random_state=0)
    est.partial_fit(X[:100])
    est.partial_fit(X[100:])
    assert seen == [1, 1]
    assert torch.get_num_threads() == 2


def test_select_model_grid_runs_one_thread(torch: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    original = _selection.split_start

    def spy(estimator: Any) -> Any:  # called in the grid loop, between the fits
        seen.append(torch.get_num_threads())
        return original(estimator)

    monkeypatch.setattr(_selection, "split_start", spy)
    X = torch.asarray(_wine())
    hx.select_model(X, n_components=[1, 2], n_factors=1, max_iter=10, random_state=0)
    assert seen == [1]
    assert torch.get_num_threads() == 2
