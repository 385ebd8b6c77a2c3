"""Multi-backend test harness: the ``xp`` fixture and the Hypothesis profiles.

Every test that takes ``xp`` runs once per backend: ``numpy``, ``numpy_readonly`` (NumPy with
read-only inputs, to catch in-place writes), ``array_api_strict``, ``jax`` (float64 enabled),
``torch`` and ``cupy`` (only with a CUDA GPU). A backend that is not installed is skipped
with the reason. ``HMOG_XP_TEST_BACKENDS=jax,torch`` limits a run to some backends (the nox
sessions use it); tests on the others are then not collected.

Device: the ``device`` fixture is where a test puts its inputs, in the spirit of
array-api-extra's. It is ``array_api_strict.Device("device1")`` for ``array_api_strict``, a
device that is not the default, so an array the library creates without ``device=`` (which
would land on the host on CuPy or torch-CUDA) meets one on ``device1`` and strict raises; for
the other backends it is the namespace's default device (CPU here, the current GPU on CuPy).
Create inputs with ``xp.asarray(..., device=device)`` and check outputs with
``tests.helpers.assert_device`` (``assert_close`` also checks that devices agree).

Hypothesis profiles: ``ci`` (default; derandomised, no deadline, ``HYPOTHESIS_MAX_EXAMPLES``
examples, default 15) and ``dev`` (randomised, 100 examples). Choose with
``HYPOTHESIS_PROFILE``.
"""

from __future__ import annotations

import importlib
import os
import sys
from types import ModuleType
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

from hmog_xp._backend import device_of
from tests.helpers import xp_name

settings.register_profile(
    "ci",
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", "15")),
    deadline=None,
    derandomize=True,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
)
settings.register_profile(
    "dev",
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.differing_executors],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

BACKENDS = ("numpy", "numpy_readonly", "array_api_strict", "jax", "torch", "cupy")


class ReadOnlyNumpy:
    """The NumPy namespace, except that ``asarray`` returns read-only copies."""

    __name__ = "array_api_compat.numpy"

    def __init__(self) -> None:
        self._namespace = importlib.import_module("array_api_compat.numpy")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._namespace, name)

    def asarray(self, obj: Any, dtype: Any = None, device: Any = None, copy: Any = None) -> Any:
        array = np.array(obj, dtype=dtype, copy=True)
        array.flags.writeable = False
        return array


def _selected(name: str) -> bool:
    wanted = os.environ.get("HMOG_XP_TEST_BACKENDS", "").strip()
    if not wanted:
        return True
    names = {w.strip() for w in wanted.split(",")}
    return name in names or (name == "numpy_readonly" and "numpy" in names)


def load_namespace(name: str) -> ModuleType | ReadOnlyNumpy:
    """Import a backend's namespace for tests, or skip the test with the reason."""
    if not _selected(name):
        pytest.skip(f"backend {name} not selected (HMOG_XP_TEST_BACKENDS)")
    if name == "numpy_readonly":
        return ReadOnlyNumpy()
    if name == "jax":
        jax = pytest.importorskip("jax", reason="jax is not installed")
        jax.config.update("jax_enable_x64", True)
        return importlib.import_module("jax.numpy")
    if name == "cupy":
        cupy = pytest.importorskip("cupy", reason="cupy is not installed")
        try:
            n_devices = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # no driver / no device
            pytest.skip(f"cupy is installed but no CUDA GPU is usable: {exc}")
        if n_devices < 1:
            pytest.skip("cupy is installed but no CUDA GPU is present")
        return importlib.import_module("array_api_compat.cupy")
    pytest.importorskip(name, reason=f"{name} is not installed")
    if name == "array_api_strict":
        return importlib.import_module("array_api_strict")
    return importlib.import_module(f"array_api_compat.{name}")


#: The backends a run tests (``HMOG_XP_TEST_BACKENDS``): tests are not even collected for the
#: others, which spares every session a few thousand skips (about 10 s of a JAX session).
SELECTED_BACKENDS = tuple(name for name in BACKENDS if _selected(name))


@pytest.fixture(params=SELECTED_BACKENDS, scope="session")
def xp(request: pytest.FixtureRequest) -> ModuleType | ReadOnlyNumpy:
    """The array namespace under test (one test run per selected backend)."""
    return load_namespace(request.param)


#: Markers that trim a parameter grid on JAX, where every case compiles its own programs: the
#: most parameters a kept case may have off their first value.
JAX_GRID_MARKERS = {
    "star_on_jax": (
        1,
        "on JAX, collect only the cases at most one parameter away from the first case (every "
        "value of every parameter still runs once); the full grid runs on the other backends",
    ),
    "first_on_jax": (
        0,
        "on JAX, collect only the first case (the other backends run every case)",
    ),
}


def pytest_configure(config: pytest.Config) -> None:
    for name, (_, text) in JAX_GRID_MARKERS.items():
        config.addinivalue_line("markers", f"{name}: {text}")


def _trimmed_on_jax(item: pytest.Item) -> bool:
    """Whether a JAX case of a marked test is off the cases its marker keeps."""
    callspec = getattr(item, "callspec", None)
    if callspec is None or callspec.params.get("xp") != "jax":
        return False
    for name, (most_away, _) in JAX_GRID_MARKERS.items():
        if item.get_closest_marker(name) is not None:
            away = [key for key, index in callspec.indices.items() if key != "xp" and index > 0]
            return len(away) > most_away
    return False


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Deselect the JAX cases that ``star_on_jax`` and ``first_on_jax`` leave out.

    JAX's test time is compile time, which is per program, not per value; a grid multiplies
    it. The values each marked test leaves out on JAX are still checked against it through
    the cases it keeps, and run in full on NumPy, array-api-strict and torch.
    """
    dropped = [item for item in items if _trimmed_on_jax(item)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        kept = set(map(id, dropped))
        items[:] = [item for item in items if id(item) not in kept]


@pytest.fixture
def numpy_selected() -> None:
    """Skip unless NumPy is a selected test backend (for tests that need run only once)."""
    load_namespace("numpy")


@pytest.fixture(scope="session")
def dtype(xp: Any) -> Any:
    """float64 of the namespace under test."""
    return xp.float64


@pytest.fixture(scope="session")
def device(xp: Any) -> Any:
    """A device to place inputs on: a non-default one where the backend has it (see above)."""
    if xp_name(xp) == "array_api_strict":
        return xp.Device("device1")
    return device_of(xp.empty((0,), dtype=xp.float64))


def _share_one_mlir_context() -> None:
    """Lower every JAX program of this process in one MLIR context (``tests-jax`` opts in).

    JAX makes a fresh MLIR context for each program it lowers, loading every dialect again:
    about 7 ms, a quarter of the JAX session's time, which is thousands of small programs.
    One shared context only keeps the types and attributes it has seen (MLIR's own reason to
    make new ones), which one test process does not notice. This reaches into a private part
    of JAX, so it is a test-session switch (``HMOG_XP_TEST_SHARED_MLIR_CONTEXT=1``, set by
    ``noxfile.py``), never library behaviour, and is skipped where JAX has no such function.
    """
    try:
        from jax._src.interpreters import mlir
    except ImportError:
        return
    make_context = getattr(mlir, "make_ir_context", None)
    if make_context is None:
        return
    context = make_context()
    mlir.make_ir_context = lambda: context


if os.environ.get("HMOG_XP_TEST_SHARED_MLIR_CONTEXT") == "1" and _selected("jax"):
    _share_one_mlir_context()


@pytest.fixture(autouse=True, scope="module")
def _release_jax_compilations() -> Any:
    """Drop JAX's compiled programs after each test module (when JAX is in use).

    A full JAX session compiles thousands of small programs; kept for the whole session they
    grow the process past 5 GB and XLA's compiler has crashed late in such a session. Modules
    rarely share shapes, so little is recompiled.
    """
    yield
    jax = sys.modules.get("jax")
    if jax is not None:
        jax.clear_caches()
