"""Missing-values benchmark: one EM step with NaN holes against one on the complete data.

For each case and installed CPU backend this measures, in the same process and on the same
data and parameters:

* ``complete``: one EM step of ``analytic_hmog(p, Diagonal, d, K)`` on the full array
  (``hmog_xp.em.em_step`` with cached data statistics, as ``bench_em.py`` times it);
* ``missing``: one EM step of ``MarginalizedHMoG(model)`` on the same array with a fraction
  of entries replaced by NaN completely at random (10 % and 30 %; a row left empty gets one
  entry back, so every row is observed somewhere);
* ``grouped``: 10 % of the entries missing in only 20 distinct patterns (each row draws one),
  with ``MarginalizedHMoG(model, MissingPatterns.of(xs, 256))``: the ``d × d`` systems are
  formed once per pattern, as the estimator does when patterns repeat.

Both steps go through ``hmog_xp.jit(em_step)`` (compiled with ``jax.jit`` on JAX, run as is
elsewhere) with their model's ``default_chunk_size``. Times are medians of ``--repeat`` runs
after one warm-up call, the three steps taking turns (so that other load on the machine
weighs on all alike); on JAX the warm-up includes compilation, and ``first call − median``
is reported separately as the compile time. The target is ``missing / complete ≤ 5``.
Results print as a table and are written as JSON to ``benchmarks/results/``.

Run with ``OMP_NUM_THREADS=1`` (and the like) for single-thread numbers; the table states
the setting it ran with.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_missing.py
    python benchmarks/bench_missing.py --cases S --backends numpy jax --repeat 7
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

import hmog_xp as hx
from hmog_xp import MarginalizedHMoG, MissingPatterns
from hmog_xp._backend import installed_backends, namespace_for
from hmog_xp.em import default_chunk_size, em_step, observable_statistics

CASES = {
    "S": {"n": 20_000, "p": 50, "d": 5, "k": 8, "dtype": "float64"},
    "L": {"n": 200_000, "p": 100, "d": 10, "k": 20, "dtype": "float64"},
}
FRACTIONS = (0.1, 0.3)
#: Distinct patterns of the grouped row (10 % of the entries missing).
N_PATTERNS = 20
TARGET = 5.0
CPU_BACKENDS = ("numpy", "jax", "torch")


def interleaved(
    fns: dict[str, Callable[[], Any]], sync: Callable[[Any], Any], repeat: int
) -> dict[str, tuple[float, float]]:
    """``(first call, median of repeat later calls)`` wall times of each ``fn`` in seconds.

    After each function's first call, the repeats go round the functions in turn, so a load
    that comes and goes on the machine weighs on every function alike.
    """
    first = {}
    for name, fn in fns.items():
        start = time.perf_counter()
        sync(fn())
        first[name] = time.perf_counter() - start
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeat):
        for name, fn in fns.items():
            start = time.perf_counter()
            sync(fn())
            times[name].append(time.perf_counter() - start)
    return {name: (first[name], statistics.median(times[name])) for name in fns}


def synthetic_data(case: dict[str, Any], seed: int = 0) -> np.ndarray:
    """Observations from a random, well-separated HMoG of the case's shape (as bench_em)."""
    rng = np.random.default_rng(seed)
    n, p, d, k = case["n"], case["p"], case["d"], case["k"]
    labels = rng.integers(0, k, size=n)
    centres = 3.0 * rng.normal(size=(k, d))
    latent = centres[labels] + rng.normal(size=(n, d))
    return latent @ rng.normal(size=(p, d)).T + 0.5 * rng.normal(size=(n, p))


def with_holes(data: np.ndarray, fraction: float, seed: int = 1) -> np.ndarray:
    """``data`` with each entry NaN with probability ``fraction`` (MCAR; no empty row)."""
    rng = np.random.default_rng(seed)
    observed = rng.uniform(size=data.shape) >= fraction
    empty = ~observed.any(axis=1)
    observed[empty, rng.integers(0, data.shape[1], size=int(empty.sum()))] = True
    return np.where(observed, data, np.nan)


def with_patterned_holes(data: np.ndarray, fraction: float, n_patterns: int) -> np.ndarray:
    """``data`` with every row missing the entries of one of ``n_patterns`` random patterns."""
    rng = np.random.default_rng(2)
    patterns = rng.uniform(size=(n_patterns, data.shape[1])) >= fraction
    patterns[:, 0] = True  # no empty row
    return np.where(patterns[rng.integers(0, n_patterns, size=data.shape[0])], data, np.nan)


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


def prepared_step(model: Any, params: Any, xs: Any) -> tuple[Callable[[], Any], int]:
    """One EM step of ``model`` on ``xs`` as a closure (``hmog_xp.jit``), and its chunk size."""
    chunk = default_chunk_size(model, xs.shape[0])
    stats = observable_statistics(model, xs, chunk)
    step = hx.jit(em_step, static_argnums=(0, 4))
    return (lambda: step(model, params, xs, stats, chunk)), chunk


def bench_backend(name: str, case: dict[str, Any], data: np.ndarray, repeat: int) -> list[dict]:
    """Time the complete and the missing-value steps of one case on one backend."""
    if name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
        jax.clear_caches()  # so that each first call compiles (its time is reported)
    xp = namespace_for(name)
    dtype = getattr(xp, case["dtype"])
    model = hx.analytic_hmog(case["p"], hx.Diagonal, case["d"], case["k"])
    xs = xp.asarray(data, dtype=dtype)
    params = model.initialize_from_sample(0, xs)
    steps, chunks = {}, {}
    with hx.validation(False):
        steps[0.0, None], chunks[0.0, None] = prepared_step(model, params, xs)
        for fraction in FRACTIONS:
            holes = xp.asarray(with_holes(data, fraction), dtype=dtype)
            steps[fraction, None], chunks[fraction, None] = prepared_step(
                MarginalizedHMoG(model), params, holes
            )
        holes = xp.asarray(with_patterned_holes(data, 0.1, N_PATTERNS), dtype=dtype)
        grouped = MarginalizedHMoG(model, MissingPatterns.of(holes, 256))
        steps[0.1, N_PATTERNS], chunks[0.1, N_PATTERNS] = prepared_step(grouped, params, holes)
        times = interleaved(steps, _sync(name), repeat)
    complete_ms = 1e3 * times[0.0, None][1]
    rows = []
    for (fraction, patterns), (first, median) in times.items():
        row = {
            "backend": name,
            "missing_fraction": fraction,
            "patterns": patterns,
            "ms": 1e3 * median,
            "first_ms": 1e3 * first,
            "compile_ms": 1e3 * (first - median) if name == "jax" else 0.0,
            "chunk": chunks[fraction, patterns],
        }
        if fraction > 0.0:
            row["ratio"] = row["ms"] / complete_ms
        rows.append(row)
    return rows


def main() -> None:
    """Run the benchmark, print the table, write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--cases", nargs="+", default=["S"], choices=list(CASES))
    parser.add_argument("--backends", nargs="+", default=None)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    backends = args.backends or [b for b in CPU_BACKENDS if b in installed_backends()]
    threads = {v: os.environ.get(v, "unset") for v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    print(f"threads: {threads}; median of {args.repeat} after one warm-up; target ≤ {TARGET}×")

    header = (
        f"{'case':<5}{'backend':<8}{'N':>8}{'p':>5}{'d':>4}{'K':>4}{'missing':>9}{'patterns':>9}"
        f"{'chunk':>7}{'EM ms':>10}{'ratio':>8}{'target':>8}{'compile ms':>12}"
    )
    print(header)
    print("-" * len(header))
    results = []
    for case_name in args.cases:
        case = CASES[case_name]
        data = synthetic_data(case)
        for name in backends:
            for row in bench_backend(name, case, data, args.repeat):
                row.update(case=case_name, **case)
                results.append(row)
                ratio = row.get("ratio")
                verdict = "-" if ratio is None else ("met" if ratio <= TARGET else "MISSED")
                ratio_text = "1.00" if ratio is None else f"{ratio:.2f}"
                print(
                    f"{case_name:<5}{name:<8}{case['n']:>8}{case['p']:>5}{case['d']:>4}"
                    f"{case['k']:>4}{row['missing_fraction']:>8.0%} {row['patterns'] or 'all':>9}"
                    f"{row['chunk']:>7}"
                    f"{row['ms']:>10.1f}{ratio_text:>8}{verdict:>8}{row['compile_ms']:>12.0f}",
                    flush=True,
                )
    result: dict[str, Any] = {
        "machine": {"platform": platform.platform(), "processor": platform.processor()},
        "threads": threads,
        "repeat": args.repeat,
        "target_ratio": TARGET,
        "rows": results,
    }
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"bench_missing_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
