"""Whole fits on the wine data: what a user waits for, next to scikit-learn's GaussianMixture.

``bench_em.py`` times one EM step; a fit is also its start (two k-means / factor-analysis
candidates), SQUAREM's extrapolations and checks, the stopping rule and the final results.
Per CPU backend, in one process, this times:

* ``hmog``: ``hx.HMoG(n_components=3, n_factors=2, n_init=R, random_state=seed).fit(wine)``,
  every other setting at its default (closed-form EM with SQUAREM and the default
  stabilisers), the median over ``--seeds`` seeds after one warm-up fit (on JAX the warm-up
  compiles; the first-fit table of ``bench_first_fit.py`` times that), with the median number
  of EM steps and the median time per EM step of the whole fit;
* ``sklearn``: ``GaussianMixture(3, covariance_type="full", n_init=R, random_state=seed)``
  fitted to the same data, with its default ``tol=1e-3`` (on the change of the per-row lower
  bound: on wine it stops after 2 iterations) and with ``tol=1e-6``, nearer ``HMoG``'s
  ``tol=1e-6`` relative to a log-likelihood of about -15 per row. The ratio column compares
  with the second.

``ms/step`` is the fit time over its EM steps for ``n_init=1`` (with restarts, ``n_iter_``
counts only the kept one's steps).

The data are the 178 x 13 UCI wine data, StandardScaler'd, as NumPy float64 (converted to
the backend's array first). Run with one BLAS thread (``OMP_NUM_THREADS=1``) on a shared
machine. :func:`run_fits` returns the rows for ``bench_em.py``'s JSON.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_fit.py
    OMP_NUM_THREADS=1 python benchmarks/bench_fit.py --backends numpy torch --n-init 1 10
"""

from __future__ import annotations

import argparse
import statistics
import time
import warnings
from typing import Any

import numpy as np

import hmog_xp as hx
from hmog_xp._backend import installed_backends, namespace_for

CPU_BACKENDS = ("numpy", "jax", "torch")


def wine() -> np.ndarray:
    """The UCI wine data (178 x 13), StandardScaler'd."""
    from sklearn.datasets import load_wine
    from sklearn.preprocessing import StandardScaler

    return StandardScaler().fit_transform(load_wine().data)


def _backend_data(name: str, data: np.ndarray) -> Any:
    if name == "jax":
        import jax

        jax.config.update("jax_enable_x64", True)
    if name == "torch":
        import torch

        torch.set_num_threads(1)
    xp = namespace_for(name)
    return xp.asarray(data, dtype=xp.float64)


def time_hmog(name: str, data: np.ndarray, n_init: int, seeds: int) -> dict[str, Any]:
    """Median fit time (ms), EM steps and ms per EM step of ``HMoG(3, 2)`` on one backend."""
    xs = _backend_data(name, data)
    hx.HMoG(n_components=3, n_factors=2, n_init=n_init, random_state=seeds).fit(xs)  # warm-up
    times, steps = [], []
    for seed in range(seeds):
        estimator = hx.HMoG(n_components=3, n_factors=2, n_init=n_init, random_state=seed)
        start = time.perf_counter()
        estimator.fit(xs)
        times.append(time.perf_counter() - start)
        steps.append(estimator.n_iter_)
    fit_ms = 1e3 * statistics.median(times)
    per_step = statistics.median(1e3 * t / s for t, s in zip(times, steps, strict=True))
    return {"fit_ms": fit_ms, "em_steps": statistics.median(steps), "ms_per_em_step": per_step}


def time_sklearn(data: np.ndarray, n_init: int, seeds: int, tol: float) -> dict[str, Any]:
    """Median fit time (ms) and iterations of scikit-learn's full-covariance GaussianMixture."""
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    times, steps = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        options = {"covariance_type": "full", "n_init": n_init, "tol": tol}
        GaussianMixture(3, random_state=seeds, **options).fit(data)
        for seed in range(seeds):
            mixture = GaussianMixture(3, random_state=seed, **options)
            start = time.perf_counter()
            mixture.fit(data)
            times.append(time.perf_counter() - start)
            steps.append(mixture.n_iter_)
    return {"fit_ms": 1e3 * statistics.median(times), "em_steps": statistics.median(steps)}


def run_fits(backends: list[str], n_inits: list[int], seeds: int = 9) -> list[dict[str, Any]]:
    """Time the fits, print the table and return its rows."""
    data = wine()
    print(f"\nwhole wine fits (K 3, d 2), medians of {seeds} seeds after one warm-up fit")
    header = (
        f"{'n_init':>6}  {'backend':<13}{'fit ms':>9}{'EM steps':>10}{'ms/step':>9}"
        f"{'/skl 1e-6':>10}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for n_init in n_inits:
        for tol in (1e-3, 1e-6):
            reference = time_sklearn(data, n_init, seeds, tol)
            rows.append({"n_init": n_init, "backend": f"sklearn tol={tol:g}", **reference})
            print(
                f"{n_init:>6}  {'sklearn ' + f'{tol:g}':<13}{reference['fit_ms']:>9.1f}"
                f"{reference['em_steps']:>10.0f}"
            )
        for name in backends:
            row = {"n_init": n_init, "backend": name, **time_hmog(name, data, n_init, seeds)}
            row["fit_over_sklearn"] = row["fit_ms"] / reference["fit_ms"]
            per_step = f"{row['ms_per_em_step']:>9.3f}" if n_init == 1 else f"{'':>9}"
            rows.append(row)
            print(
                f"{n_init:>6}  {name:<13}{row['fit_ms']:>9.1f}{row['em_steps']:>10.0f}"
                f"{per_step}{row['fit_over_sklearn']:>10.2f}",
                flush=True,
            )
    return rows


def main() -> None:
    """Parse the arguments and run :func:`run_fits`."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=None)
    parser.add_argument("--n-init", nargs="+", type=int, default=[1, 10])
    parser.add_argument("--seeds", type=int, default=9, help="fits per number (median)")
    args = parser.parse_args()
    backends = args.backends or [b for b in CPU_BACKENDS if b in installed_backends()]
    run_fits(backends, args.n_init, args.seeds)


if __name__ == "__main__":
    main()
