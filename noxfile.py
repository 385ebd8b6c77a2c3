"""Nox sessions: the test suite once per array backend, lint and type checks.

Run everything (what CI runs)::

    python -m pip install nox && python -m nox

Run one session, passing arguments through to pytest::

    python -m nox -s tests-jax -- -k normal -x

The backend sessions run on one pytest-xdist worker per core; ``-- -n 0`` runs one process
(for ``-s`` or ``--pdb``).

Every session builds a fresh virtual environment with the Python that runs nox (no version
pinning), installs what it needs from ``backends/*.txt`` and the package's extras, and runs.
Add ``-r`` to reuse the environments between runs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import nox

nox.needs_version = ">=2024.3.2"
nox.options.default_venv_backend = "virtualenv"
# Sessions use the running interpreter (python=None), so no interpreter can be missing; a
# session that asks for one later must not be skipped silently.
nox.options.error_on_missing_interpreters = True

ROOT = Path(__file__).parent

#: nox session suffix -> (requirements file in backends/, name understood by tests/conftest.py)
BACKENDS: dict[str, tuple[str, str]] = {
    "numpy": ("numpy.txt", "numpy"),  # also runs the read-only NumPy variant
    "strict": ("strict.txt", "array_api_strict"),
    "jax": ("jax.txt", "jax"),
    "torch": ("torch.txt", "torch"),
    "cupy": ("cupy.txt", "cupy"),
}

nox.options.sessions = [
    "lint",
    "typecheck",
    *(f"tests-{name}" for name in BACKENDS),
    "tests-dask",
]


def _cuda_gpu_missing() -> str | None:
    """Why no CUDA GPU is usable here, or None when ``nvidia-smi`` lists one."""
    nvidia_smi = shutil.which("nvidia-smi")
    if nvidia_smi is None:
        return "nvidia-smi is not on PATH"
    try:
        result = subprocess.run(
            [nvidia_smi, "--list-gpus"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.SubprocessError) as exc:
        return f"nvidia-smi failed: {exc}"
    if result.returncode != 0:
        return f"nvidia-smi failed (exit {result.returncode}): {result.stderr.strip()}"
    if "GPU" not in result.stdout:
        return "nvidia-smi lists no GPU"
    return None


#: XLA options of the JAX test session. Its tests are compile-bound (thousands of small
#: programs, each run once or twice on tiny arrays). Without XLA's CPU fusion emitters and
#: without LLVM's optimisations a typical program compiles in a quarter of the default time;
#: the programs run slower, which these tiny arrays do not notice. Users' programs keep XLA's
#: defaults. The cross-backend tests still hold at 1e-10 (the one exception, an EM step on
#: seven points, is explained at ``tests/test_mixture.py::EM_STEP_TOLERANCE``).
JAX_TEST_XLA_FLAGS = "--xla_cpu_use_fusion_emitters=false --xla_backend_optimization_level=0"

#: Hypothesis examples per property on JAX (15 elsewhere). Each new shape is a new compile on
#: JAX, and the properties' values are already checked over 15 examples on the other
#: backends; two examples still run every property through JAX's tracing and compiling.
JAX_HYPOTHESIS_EXAMPLES = "2"

#: JAX's persistent compilation cache, for every program however quick to compile: about
#: half of the session's programs recur (in later test modules, after the per-module
#: ``jax.clear_caches()``, or in the other worker), and a hit skips XLA. It lives in the
#: session's tmp folder, so ``nox -r`` reruns reuse it.
JAX_TEST_CACHE = {"JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0"}

#: Lower the session's programs in one MLIR context instead of a fresh one per program (about
#: 7 ms each; 4 min 25 s -> 3 min 41 s); see ``_share_one_mlir_context`` in tests/conftest.py.
JAX_TEST_SHARED_CONTEXT = {"HMOG_XP_TEST_SHARED_MLIR_CONTEXT": "1"}

#: pytest-xdist workers of the backend sessions: one per core (CI has two).
TEST_WORKERS = ("-n", "auto", "--dist", "worksteal")


#: pip options of every session's install: no bytecode compiled ahead for the thousands of
#: files of SciPy, scikit-learn and the backends (about 10 s of each session; Python compiles
#: the modules a session imports when it first imports them).
PIP_OPTIONS = ("--no-compile",)


def _install(session: nox.Session, requirements: str, package: str) -> None:
    """Install ``backends/<requirements>`` and the package (with extras) in one pip run."""
    session.install(*PIP_OPTIONS, "-r", f"backends/{requirements}", "-e", package)


def _tests(session: nox.Session, requirements: str, backend: str) -> None:
    _install(session, requirements, ".[test]")
    env = {"HMOG_XP_TEST_BACKENDS": backend}
    if backend == "jax":
        env["XLA_FLAGS"] = " ".join(filter(None, [os.environ.get("XLA_FLAGS"), JAX_TEST_XLA_FLAGS]))
        env["HYPOTHESIS_MAX_EXAMPLES"] = os.environ.get(
            "HYPOTHESIS_MAX_EXAMPLES", JAX_HYPOTHESIS_EXAMPLES
        )
        env["JAX_COMPILATION_CACHE_DIR"] = str(Path(session.create_tmp()) / "jax-cache")
        env.update(JAX_TEST_CACHE)
        env.update(JAX_TEST_SHARED_CONTEXT)
    session.run("pytest", *TEST_WORKERS, *session.posargs, env=env)


def _register_tests(suffix: str, requirements: str, backend: str) -> None:
    @nox.session(name=f"tests-{suffix}", python=None)
    def tests(session: nox.Session) -> None:
        if suffix == "cupy":
            reason = _cuda_gpu_missing()
            if reason is not None:
                session.skip(f"CuPy needs a CUDA GPU and none is usable here ({reason})")
        _tests(session, requirements, backend)

    tests.__doc__ = (
        f"Run the test suite on the {backend} backend "
        f"(installs backends/{requirements}; the other backends are skipped)."
    )


for _suffix, (_requirements, _backend) in BACKENDS.items():
    _register_tests(_suffix, _requirements, _backend)


@nox.session(name="tests-dask", python=None)
def tests_dask(session: nox.Session) -> None:
    """Run the Dask and online-EM tests on NumPy (installs the ``dask`` extra).

    Includes a real two-process ``dask.distributed.LocalCluster`` on loopback.
    """
    _install(session, "numpy.txt", ".[test,dask]")
    session.run(
        "pytest",
        "tests/test_dask.py",
        "tests/test_online.py",
        *session.posargs,
        env={"HMOG_XP_TEST_BACKENDS": "numpy"},
    )


@nox.session(python=None)
def lint(session: nox.Session) -> None:
    """Run ruff (lint and format check) and validate the package's numpydoc docstrings."""
    session.install(*PIP_OPTIONS, "ruff>=0.6", "numpydoc>=1.8")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")
    sources = sorted(str(path.relative_to(ROOT)) for path in (ROOT / "hmog_xp").rglob("*.py"))
    # Checks and exclusions: [tool.numpydoc_validation] in pyproject.toml.
    session.run("numpydoc", "lint", *sources)


@nox.session(python=None)
def typecheck(session: nox.Session) -> None:
    """Type-check the package with mypy (configured in pyproject.toml)."""
    session.install(*PIP_OPTIONS, "-e", ".", "mypy>=1.10")
    session.run("mypy")


@nox.session(python=None)
def bench(session: nox.Session) -> None:
    """EM speed (``bench_em.py``, ``bench_missing.py``) and fit quality (``bench_quality.py``).

    Not part of the default sessions. ``bench_em.py`` runs with one BLAS thread
    (``OMP_NUM_THREADS=1``): the wine-size row W, cases S, L and S32 on every CPU backend with
    the two- and four-GEMM floors and scikit-learn, then the first-fit (compile) table of
    ``bench_first_fit.py`` (``--first-fit``) and the whole wine fits of ``bench_fit.py``
    (``--fits``). Arguments after ``--`` replace those defaults
    (e.g. ``-- --cases S`` or ``-- --huge --first-fit``); ``-- quality ARGS`` runs only
    ``benchmarks/bench_quality.py`` with ``ARGS`` (e.g. ``-- quality --fa-start``).
    """
    # Compiled bytecode as usual: the first-fit table times fresh interpreters.
    session.install("-r", "backends/jax.txt", "-r", "backends/torch.txt", "-e", ".[test]")
    if session.posargs[:1] == ["quality"]:
        session.run("python", "benchmarks/bench_quality.py", *session.posargs[1:])
        return
    em_args = session.posargs or ["--first-fit", "--fits"]
    session.run("python", "benchmarks/bench_em.py", *em_args, env={"OMP_NUM_THREADS": "1"})
    session.run("python", "benchmarks/bench_missing.py")
    session.run("python", "benchmarks/bench_gradient.py", env={"OMP_NUM_THREADS": "1"})
    session.run("python", "benchmarks/bench_quality.py")


@nox.session(python=None)
def docs(session: nox.Session) -> None:
    """Build the HTML documentation with Sphinx, warnings as errors.

    Not part of the default sessions. Runs the example scripts first, which draw the figures
    the pages include into ``docs/_generated/`` (gitignored); the site goes to
    ``docs/_build/html``. Arguments after ``--`` go to ``sphinx-build``.
    """
    session.install("-e", ".[docs]")
    env = {"HMOG_XP_BACKEND": "numpy", "MPLBACKEND": "Agg"}
    scripts = ("examples/toy_2d.py", "examples/digits_clustering.py", "examples/model_selection.py")
    for script in scripts:
        session.run("python", script, "--out", "docs/_generated", env=env)
    session.run(
        "sphinx-build",
        "-W",
        "--keep-going",
        "-b",
        "html",
        *session.posargs,
        "docs",
        "docs/_build/html",
    )
