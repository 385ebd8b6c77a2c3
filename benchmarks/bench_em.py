"""EM benchmark: AnalyticHMoG iterations against two GEMM floors and scikit-learn, in one run.

For each case and installed CPU backend this measures, in the same process:

* ``em``: one EM step as ``HMoG.fit`` runs it (``hmog_xp.em.fit_steps(...).step``: chunked
  E-step with cached data statistics, whitening, M-step with the estimator's default
  stabilisers (``reg_covar`` and ``noise_floor`` 1e-6, a pseudo-weight of 10 machine
  epsilons), the M-step's log-partition handed to the next E-step; ``jit``-compiled on JAX),
  each from the previous step's result. Cases S,
  L, S32: ``analytic_hmog(p, Diagonal, d, K)`` on synthetic data from a random start. Case W:
  the 178 x 13 UCI wine data,
  StandardScaler'd, with the model and parameters of ``HMoG(3, 2, n_init=1, max_iter=5)``
  fitted to it (a realistic point of a real fit);
* ``loglik``: one ``average_log_observable_density`` evaluation;
* ``floor2``: the two data GEMMs, ``X @ W`` (N x p x d) and ``X.T @ M`` (N x p x d);
* ``floor4``: those two plus the two an iteration cannot avoid either: the spreads
  ``U @ [S_1 ... S_K]`` ((N, d) @ (d, K d)) and the second moments ``R.T @ (U (x) U)``
  ((K, N) @ (N, d(d+1)/2), packed outer products of the rows of U); the case's shapes and
  dtype on the same backend, ``jit``-compiled on JAX like ``em``, in the E-step's row chunks
  (``default_chunk_size``; the reductions accumulate over chunks), so that the (N, K d) spreads
  are never held at once, as in EM;
* ``sklearn``: one iteration (``_e_step`` then ``_m_step``) of
  ``sklearn.mixture.GaussianMixture(K, "full")`` started by one ``fit``. For S, L, S32 on an
  ``(N, d)`` latent array (the latent clustering a user would otherwise run); for W on the same
  13-dimensional wine data (the issue's target: a wine-size EM iteration at most one
  scikit-learn iteration on the same data).

Times are the MEDIAN of ``--repeat`` runs after one warm-up (``--repeat-small`` runs for W,
whose step takes about a millisecond). Ratios compare numbers of this run only. Run with one BLAS
thread (``OMP_NUM_THREADS=1``) on a shared machine; the thread settings and load print with the
table. JAX's CPU thread pool ignores ``OMP_NUM_THREADS``: pin it as well with
``XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1"``.
``--first-fit`` adds the compile-time table of ``bench_first_fit.py`` (fresh interpreters),
``--fits`` the whole wine fits of ``bench_fit.py``.
Results print as tables with the issue's targets and are written as JSON to
``benchmarks/results/``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_em.py                # W, S, L, S32, every backend
    OMP_NUM_THREADS=1 python benchmarks/bench_em.py --first-fit    # and the first-fit table
    OMP_NUM_THREADS=1 python benchmarks/bench_em.py --cases W S --backends numpy torch
    python benchmarks/bench_em.py --huge          # also the N = 1,000,000 fit (peak memory)
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import sys
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import hmog_xp as hx
from hmog_xp._backend import installed_backends, namespace_for
from hmog_xp.em import (
    as_regularization,
    default_chunk_size,
    fit_em,
    fit_steps,
    observable_statistics,
)

CASES: dict[str, dict[str, Any]] = {
    "W": {"n": 178, "p": 13, "d": 2, "k": 3, "dtype": "float64"},
    "S": {"n": 20_000, "p": 50, "d": 5, "k": 8, "dtype": "float64"},
    "L": {"n": 200_000, "p": 100, "d": 10, "k": 20, "dtype": "float64"},
    "S32": {"n": 20_000, "p": 50, "d": 5, "k": 8, "dtype": "float32"},
}
HUGE: dict[str, Any] = {"n": 1_000_000, "p": 100, "d": 10, "k": 20, "dtype": "float64"}
CPU_BACKENDS = ("numpy", "jax", "torch")
TARGET_EM_OVER_FLOOR4 = 3.0  # cases S and L, NumPy and JAX
TARGET_W_EM_OVER_SKLEARN = 1.0
TARGET_W_TORCH_OVER_NUMPY = 2.0


def median_time(fn: Callable[[], Any], sync: Callable[[Any], Any], repeat: int) -> float:
    """Median wall time of ``fn`` over ``repeat`` runs after one warm-up (seconds)."""
    sync(fn())
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def synthetic_data(case: dict[str, Any], seed: int = 0) -> np.ndarray:
    """Observations from a well-separated HMoG of the case's shape (NumPy, float64)."""
    rng = np.random.default_rng(seed)
    n, p, d, k = case["n"], case["p"], case["d"], case["k"]
    labels = rng.integers(0, k, size=n)
    centres = 3.0 * rng.normal(size=(k, d))
    latent = centres[labels] + rng.normal(size=(n, d))
    return latent @ rng.normal(size=(p, d)).T + 0.5 * rng.normal(size=(n, p))


def wine_data() -> np.ndarray:
    """The UCI wine data (178 x 13), StandardScaler'd (NumPy, float64)."""
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(load_wine().data)


def wine_start(data: np.ndarray) -> tuple[Any, np.ndarray]:
    """Model and natural parameters of a short real fit to the wine data (NumPy)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = hx.HMoG(CASES["W"]["k"], CASES["W"]["d"], n_init=1, max_iter=5, random_state=0)
        est.fit(data)
    return est.model_, np.asarray(est.params_)


def _sync(name: str) -> Callable[[Any], Any]:
    def sync(value: Any) -> Any:
        leaves = value if isinstance(value, tuple) else (value,)
        for leaf in leaves:
            if name == "jax" and hasattr(leaf, "block_until_ready"):
                leaf.block_until_ready()
            elif name == "torch" and hasattr(leaf, "sum"):
                float(leaf.sum())
        return value

    return sync


def _floors(
    xp: Any, case: dict[str, Any], xs: Any, chunk: int, repeat: int, sync: Any
) -> tuple[float, float]:
    """Seconds of the two data GEMMs (whole arrays) and of the four GEMMs (EM's row chunks)."""
    n, p, d, k = case["n"], case["p"], case["d"], case["k"]
    rng = np.random.default_rng(2)

    def operand(*shape: int) -> Any:
        return xp.asarray(rng.normal(size=shape), dtype=xs.dtype)

    loadings, scores, latent = operand(p, d), operand(n, d), operand(n, d)
    spreads, resp, packed = operand(d, k * d), operand(n, k), operand(n, d * (d + 1) // 2)
    two = hx.jit(lambda x, w, m: (x @ w, xp.matrix_transpose(x) @ m))
    floor2 = median_time(lambda: two(xs, loadings, scores), sync, repeat)

    # Chunked like the E-step, so the (rows, K d) spreads stay cache-sized as they do in EM:
    # the two reductions accumulate over chunks, the two row-wise products are per chunk.
    def first_chunk(w: Any, s: Any, x: Any, m: Any, u: Any, r: Any, uu: Any) -> Any:
        t = xp.matrix_transpose
        return t(x) @ m, t(r) @ uu, x @ w, u @ s

    def next_chunk(
        w: Any, s: Any, am: Any, auu: Any, x: Any, m: Any, u: Any, r: Any, uu: Any
    ) -> Any:
        t = xp.matrix_transpose
        return am + t(x) @ m, auu + t(r) @ uu, x @ w, u @ s

    first, step = hx.jit(first_chunk), hx.jit(next_chunk)
    chunks = [
        tuple(a[lo : min(lo + chunk, n), :] for a in (xs, scores, latent, resp, packed))
        for lo in range(0, n, chunk)
    ]

    def four() -> Any:
        out = first(loadings, spreads, *chunks[0])
        for part in chunks[1:]:
            out = step(loadings, spreads, out[0], out[1], *part)
        return out

    floor4 = median_time(four, sync, repeat)
    return floor2, floor4


def bench_backend(
    name: str, case: dict[str, Any], data: np.ndarray, start: Any, repeat: int
) -> dict[str, Any]:
    """Time one case on one backend; ``start`` is (model, NumPy params) or None (random)."""
    if name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    xp = namespace_for(name)
    dtype = getattr(xp, case["dtype"])
    xs = xp.asarray(data, dtype=dtype)
    if start is None:
        model = hx.analytic_hmog(case["p"], hx.Diagonal, case["d"], case["k"])
        params = model.initialize_from_sample(0, xs)
    else:
        model, params = start[0], xp.asarray(start[1], dtype=dtype)
    chunk = default_chunk_size(model, case["n"])
    sync = _sync(name)
    with hx.validation(False):
        stats = observable_statistics(model, xs, chunk)
        # what fit_em runs per iteration (compiled on JAX), each step from the last one's
        # result (a model whose M-step gives the log-partition hands it on)
        steps = fit_steps(model, params, xs, stats, chunk, estimator_regularization(dtype, xp))
        state = [params]

        def one_step() -> Any:
            state[0], log_likelihood = steps.step(state[0])
            return log_likelihood

        em = median_time(one_step, sync, repeat)
        loglik_fn = hx.jit(model.average_log_observable_density)
        loglik = median_time(lambda: loglik_fn(params, xs), sync, repeat)
    floor2, floor4 = _floors(xp, case, xs, chunk, repeat, sync)
    return {
        "backend": name,
        "em_ms": 1e3 * em,
        "loglik_ms": 1e3 * loglik,
        "floor_ms": 1e3 * floor2,
        "floor4_ms": 1e3 * floor4,
        "chunk_size": chunk,
    }


def estimator_regularization(dtype: Any, xp: Any) -> Any:
    """The stabilisers ``HMoG.fit`` gives EM by default (see ``HMoG``'s ``reg_covar``)."""
    defaults = hx.HMoG()
    pseudo_weight = 10.0 * float(xp.finfo(dtype).eps)
    return as_regularization((defaults.reg_covar, defaults.noise_floor, pseudo_weight))


def bench_sklearn(data: np.ndarray, k: int, repeat: int, init: str = "kmeans") -> float:
    """Time one EM iteration of scikit-learn's full-covariance GaussianMixture.

    One ``fit`` (one iteration) starts the mixture; then an iteration is its own ``_e_step``
    followed by ``_m_step``, what ``fit`` runs per iteration, without ``fit``'s input checks
    and final labelling E-step. Falls back to a warm-started ``fit`` of 5 iterations divided
    by 5 if those methods are missing.
    """
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    mixture = GaussianMixture(
        k, covariance_type="full", max_iter=1, tol=0.0, init_params=init, random_state=0
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        mixture.fit(data)
        if hasattr(mixture, "_e_step") and hasattr(mixture, "_m_step"):

            def iteration() -> None:
                _, log_resp = mixture._e_step(data)
                mixture._m_step(data, log_resp)

            return 1e3 * median_time(iteration, lambda v: v, repeat)
        mixture.set_params(max_iter=5, warm_start=True)
        return 1e3 * median_time(lambda: mixture.fit(data), lambda v: v, repeat) / 5


def sklearn_reference(case_name: str, data: np.ndarray, repeat: int) -> float:
    """The case's sklearn column: W on its own data, the others on an (N, d) latent array."""
    case = CASES[case_name]
    if case_name == "W":
        return bench_sklearn(data, case["k"], repeat)
    rng = np.random.default_rng(1)
    centres = 3.0 * rng.normal(size=(case["k"], case["d"]))
    latent = centres[rng.integers(0, case["k"], size=case["n"])] + rng.normal(
        size=(case["n"], case["d"])
    )
    return bench_sklearn(latent.astype(case["dtype"]), case["k"], repeat, "random_from_data")


def bench_huge(repeat: int) -> dict:
    """Fit the N = 1,000,000 case for a few EM steps; report time and peak memory."""
    data = synthetic_data(HUGE)
    model = hx.analytic_hmog(HUGE["p"], hx.Diagonal, HUGE["d"], HUGE["k"])
    params = model.initialize_from_sample(0, data)
    start = time.perf_counter()
    fit = fit_em(model, params, data, max_iter=3, tol=0.0)
    seconds = time.perf_counter() - start
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "case": "N=1e6",
        "seconds_for_3_steps": seconds,
        "peak_rss_gib": peak_kib / 2**20,
        "data_gib": data.nbytes / 2**30,
        "log_likelihoods": fit.log_likelihoods,
    }


def thread_settings(backends: list[str]) -> dict[str, Any]:
    """Return OMP_NUM_THREADS, XLA_FLAGS and PyTorch's thread count (torch benchmarked).

    JAX's CPU thread pool ignores OMP_NUM_THREADS (XLA_FLAGS sets it).
    """
    settings: dict[str, Any] = {
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
    }
    if "torch" in backends:
        import torch

        settings["torch_threads"] = torch.get_num_threads()
    return settings


def _row_text(row: dict[str, Any]) -> str:
    return (
        f"{row['case']:<5}{row['backend']:<8}{row['n']:>8}{row['p']:>5}{row['d']:>4}{row['k']:>4}"
        f" {row['dtype']:<8}{row['em_ms']:>10.2f}{row['loglik_ms']:>10.2f}"
        f"{row['floor_ms']:>10.3f}{row['floor4_ms']:>10.3f}{row['sklearn_ms']:>11.2f}"
        f"{row['em_over_floor']:>9.2f}{row['em_over_floor4']:>9.2f}"
        f"{row['em_over_sklearn']:>9.2f}{row['em_over_numpy']:>9.2f}"
    )


HEADER = (
    f"{'case':<5}{'backend':<8}{'N':>8}{'p':>5}{'d':>4}{'K':>4} {'dtype':<8}"
    f"{'EM ms':>10}{'loglik ms':>10}{'floor2 ms':>10}{'floor4 ms':>10}{'sklearn ms':>11}"
    f"{'EM/fl2':>9}{'EM/fl4':>9}{'EM/skl':>9}{'EM/np':>9}"
)


def _check(label: str, value: float | None, target: float, strict: bool = False) -> str:
    if value is None:
        return f"target  {label}: not measured"
    holds = value < target if strict else value <= target
    verdict = "holds" if holds else f"MISSED by {value / target:.2f} x"
    return f"target  {label} {'<' if strict else '<='} {target:g}: {value:.2f}, {verdict}"


def print_targets(rows: list[dict[str, Any]]) -> None:
    """Print the issue's speed targets with this run's ratios."""

    def ratio(case: str, backend: str, key: str) -> float | None:
        found = [r[key] for r in rows if r["case"] == case and r["backend"] == backend]
        return found[0] if found else None

    print()
    for backend in CPU_BACKENDS:
        value = ratio("W", backend, "em_over_sklearn")
        if value is not None:
            print(_check(f"W {backend} EM/sklearn", value, TARGET_W_EM_OVER_SKLEARN))
    for case in ("S", "L"):
        for backend in ("numpy", "jax"):
            value = ratio(case, backend, "em_over_floor4")
            if value is not None:
                line = _check(f"{case} {backend} EM/floor4", value, TARGET_EM_OVER_FLOOR4)
                versus_numpy = ratio(case, backend, "em_over_numpy_floor4")
                print(
                    f"{line} (EM/NumPy's floor4 {versus_numpy:.2f})" if backend != "numpy" else line
                )
    value = ratio("W", "torch", "em_over_numpy")
    if value is not None:
        print(_check("W torch EM/numpy EM", value, TARGET_W_TORCH_OVER_NUMPY))
    value = ratio("L", "torch", "em_over_numpy")
    if value is not None:
        print(_check("L torch EM/numpy EM", value, 1.0, strict=True))


def main() -> None:
    """Run the benchmark, print the tables and targets, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--backends", nargs="+", default=None)
    parser.add_argument("--repeat", type=int, default=5, help="timed runs per number (median)")
    parser.add_argument("--repeat-small", type=int, default=50, help="timed runs for case W")
    parser.add_argument("--huge", action="store_true", help="also fit N = 1,000,000")
    parser.add_argument(
        "--first-fit", action="store_true", help="also the first-fit (compile) table"
    )
    parser.add_argument("--fits", action="store_true", help="also whole wine fits (bench_fit)")
    args = parser.parse_args()
    backends = args.backends or [b for b in CPU_BACKENDS if b in installed_backends()]
    threads = thread_settings(backends)
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    print(f"threads: {threads}; load average {load}")
    if threads["OMP_NUM_THREADS"] != "1":
        print(
            "note: time with one BLAS thread on a shared machine: OMP_NUM_THREADS=1 python "
            "benchmarks/bench_em.py",
            file=sys.stderr,
        )
    print(f"medians of {args.repeat} runs ({args.repeat_small} for W) after one warm-up")
    print(HEADER)
    print("-" * len(HEADER))
    rows = []
    for case_name in args.cases:
        case = CASES[case_name]
        repeat = args.repeat_small if case_name == "W" else args.repeat
        data = wine_data() if case_name == "W" else synthetic_data(case)
        start = wine_start(data) if case_name == "W" else None
        sklearn_ms = sklearn_reference(case_name, data, repeat)
        numpy_em = numpy_floor4 = None
        for name in backends:
            row = bench_backend(name, case, data, start, repeat)
            row.update(case=case_name, sklearn_ms=sklearn_ms, repeat=repeat, **case)
            if name == "numpy":
                numpy_em, numpy_floor4 = row["em_ms"], row["floor4_ms"]
            row["em_over_floor"] = row["em_ms"] / row["floor_ms"]
            row["em_over_floor4"] = row["em_ms"] / row["floor4_ms"]
            row["em_over_sklearn"] = row["em_ms"] / sklearn_ms
            row["em_over_numpy"] = row["em_ms"] / numpy_em if numpy_em else float("nan")
            row["em_over_numpy_floor4"] = (
                row["em_ms"] / numpy_floor4 if numpy_floor4 else float("nan")
            )
            rows.append(row)
            print(_row_text(row), flush=True)
    print_targets(rows)
    result: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "threads": threads,
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    if args.huge:
        result["huge"] = bench_huge(args.repeat)
        print(f"\nN = 1,000,000: {json.dumps(result['huge'], indent=1)}")
    if args.first_fit:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_first_fit import run_first_fit

        result["first_fit"] = run_first_fit(backends)
    if args.fits:
        sys.path.insert(0, str(Path(__file__).parent))
        from bench_fit import run_fits

        result["fits"] = run_fits(backends, [1, 10])
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"bench_em_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
