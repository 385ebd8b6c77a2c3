"""EM benchmark: AnalyticHMoG iterations against the GEMM floor and scikit-learn, in one run.

For each case and installed CPU backend this measures, in the same process:

* ``em``: one EM step of ``analytic_hmog(p, Diagonal, d, K)`` (``hmog_xp.em.em_step``:
  chunked E-step with cached data statistics, whitening, M-step; ``jit``-compiled on JAX);
* ``loglik``: one ``average_log_observable_density`` evaluation;
* ``floor``: the two data GEMMs alone, ``X @ W`` (N x p x d) and ``X.T @ M`` (N x p x d);
* ``sklearn``: one EM iteration of ``sklearn.mixture.GaussianMixture(K, "full")`` on an
  ``(N, d)`` array (warm-started ``fit`` with ``max_iter=5``, divided by 5; each ``fit`` also
  runs one extra E-step for its labels) — the latent clustering a user would otherwise run.

Times are the best of ``--repeat`` runs after one warm-up. Ratios compare numbers from this
run only. Results print as a table and are written as JSON to ``benchmarks/results/``.

Usage::

    python benchmarks/bench_em.py                 # cases S and L, every installed backend
    python benchmarks/bench_em.py --cases S --backends numpy torch
    python benchmarks/bench_em.py --huge          # also the N = 1,000,000 fit (peak memory)
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import hmog_xp as hx
from hmog_xp._backend import installed_backends, namespace_for
from hmog_xp.em import default_chunk_size, em_step, fit_em, observable_statistics

CASES = {
    "S": {"n": 20_000, "p": 50, "d": 5, "k": 8, "dtype": "float64"},
    "L": {"n": 200_000, "p": 100, "d": 10, "k": 20, "dtype": "float64"},
    "S32": {"n": 20_000, "p": 50, "d": 5, "k": 8, "dtype": "float32"},
}
HUGE = {"n": 1_000_000, "p": 100, "d": 10, "k": 20, "dtype": "float64"}
CPU_BACKENDS = ("numpy", "jax", "torch")


def best_time(fn: Callable[[], Any], sync: Callable[[Any], Any], repeat: int) -> float:
    """Best wall time of ``fn`` over ``repeat`` runs after one warm-up (seconds)."""
    sync(fn())
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        sync(fn())
        times.append(time.perf_counter() - start)
    return min(times)


def synthetic_data(case: dict[str, Any], seed: int = 0) -> np.ndarray:
    """Observations from a well-separated HMoG of the case's shape (NumPy, float64)."""
    rng = np.random.default_rng(seed)
    n, p, d, k = case["n"], case["p"], case["d"], case["k"]
    labels = rng.integers(0, k, size=n)
    centres = 3.0 * rng.normal(size=(k, d))
    latent = centres[labels] + rng.normal(size=(n, d))
    return latent @ rng.normal(size=(p, d)).T + 0.5 * rng.normal(size=(n, p))


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


def bench_backend(name: str, case: dict[str, Any], data: np.ndarray, repeat: int) -> dict:
    """Time one case on one backend."""
    if name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    xp = namespace_for(name)
    dtype = getattr(xp, case["dtype"])
    xs = xp.asarray(data, dtype=dtype)
    model = hx.analytic_hmog(case["p"], hx.Diagonal, case["d"], case["k"])
    params = model.initialize_from_sample(0, xs)
    chunk = default_chunk_size(model, case["n"])
    sync = _sync(name)
    with hx.validation(False):
        stats = observable_statistics(model, xs, chunk)
        step = hx.jit(em_step, static_argnums=(0, 4))
        em = best_time(lambda: step(model, params, xs, stats, chunk), sync, repeat)
        loglik_fn = hx.jit(model.average_log_observable_density)
        loglik = best_time(lambda: loglik_fn(params, xs), sync, repeat)
    loadings = xp.asarray(np.ones((case["p"], case["d"])), dtype=dtype)
    scores = xp.asarray(np.ones((case["n"], case["d"])), dtype=dtype)
    gemms = hx.jit(lambda x, w, m: (x @ w, xp.matrix_transpose(x) @ m))
    floor = best_time(lambda: gemms(xs, loadings, scores), sync, repeat)
    return {"backend": name, "em_ms": 1e3 * em, "loglik_ms": 1e3 * loglik, "floor_ms": 1e3 * floor}


def bench_sklearn(case: dict[str, Any], repeat: int) -> float:
    """Milliseconds per EM iteration of scikit-learn's full-covariance GaussianMixture."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    rng = np.random.default_rng(1)
    centres = 3.0 * rng.normal(size=(case["k"], case["d"]))
    latent = centres[rng.integers(0, case["k"], size=case["n"])] + rng.normal(
        size=(case["n"], case["d"])
    )
    latent = latent.astype(case["dtype"])
    iterations = 5
    mixture = GaussianMixture(
        case["k"],
        covariance_type="full",
        max_iter=iterations,
        tol=0.0,
        init_params="random_from_data",
        warm_start=True,
        random_state=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        seconds = best_time(lambda: mixture.fit(latent), lambda v: v, repeat)
    return 1e3 * seconds / iterations


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


def main() -> None:
    """Run the benchmark, print the table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=list(CASES), choices=list(CASES))
    parser.add_argument("--backends", nargs="+", default=None)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--huge", action="store_true", help="also fit N = 1,000,000")
    args = parser.parse_args()
    backends = args.backends or [b for b in CPU_BACKENDS if b in installed_backends()]

    rows = []
    header = (
        f"{'case':<5}{'backend':<8}{'N':>9}{'p':>5}{'d':>4}{'K':>4} {'dtype':<8}"
        f"{'EM ms':>10}{'loglik ms':>11}{'floor ms':>10}{'sklearn ms':>12}"
        f"{'EM/floor':>10}{'EM/sklearn':>12}{'EM/numpy':>10}"
    )
    print(header)
    print("-" * len(header))
    for case_name in args.cases:
        case = CASES[case_name]
        data = synthetic_data(case)
        sklearn_ms = bench_sklearn(case, args.repeat)
        numpy_em = None
        for name in backends:
            row = bench_backend(name, case, data, args.repeat)
            row.update(case=case_name, sklearn_ms=sklearn_ms, **case)
            numpy_em = row["em_ms"] if name == "numpy" else numpy_em
            row["em_over_floor"] = row["em_ms"] / row["floor_ms"]
            row["em_over_sklearn"] = row["em_ms"] / sklearn_ms
            row["em_over_numpy"] = row["em_ms"] / numpy_em if numpy_em else float("nan")
            rows.append(row)
            print(
                f"{case_name:<5}{name:<8}{case['n']:>9}{case['p']:>5}{case['d']:>4}{case['k']:>4}"
                f" {case['dtype']:<8}{row['em_ms']:>10.1f}{row['loglik_ms']:>11.1f}"
                f"{row['floor_ms']:>10.2f}{sklearn_ms:>12.1f}{row['em_over_floor']:>10.2f}"
                f"{row['em_over_sklearn']:>12.2f}{row['em_over_numpy']:>10.2f}",
                flush=True,
            )
    result: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "rows": rows,
    }
    if args.huge:
        result["huge"] = bench_huge(args.repeat)
        print(f"\nN = 1,000,000: {json.dumps(result['huge'], indent=1)}")
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"bench_em_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
