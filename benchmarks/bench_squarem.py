"""SQUAREM benchmark: EM steps, wall time and final log-likelihood, plain vs accelerated.

Every case fits standardised data (column mean 0, variance 1; one common scale for isotropic
noise, as the estimator does) from the estimator's k-means++ starting point
(``hmog_xp.estimator._init.starting_point``) of each seed, with the estimator's stabilisers
``Regularization(reg_covar, 1e-6, 10 eps)``, by ``fit_em`` with ``accelerate`` False,
``'squarem'`` (mean coordinates) and ``'squarem-natural'``. It reports medians over seeds of
the EM steps (``n_iter``), the wall time (after one warm-up fit), the final average
log-likelihood and, per seed, the difference from the plain fit's. Run with
``OMP_NUM_THREADS=1``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_squarem.py --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine

import hmog_xp as hx
import hmog_xp.datasets
from hmog_xp.em import Regularization, fit_em
from hmog_xp.estimator._init import starting_point

EPS = float(np.finfo(np.float64).eps)
CASES = {
    "wine K3 d2": ("wine", hx.Diagonal, 2, 3, 1e-6),
    "wine K3 d4": ("wine", hx.Diagonal, 4, 3, 1e-6),
    "cancer K2 d4": ("cancer", hx.Diagonal, 4, 2, 1e-6),
    "cancer K1 d4": ("cancer", hx.Diagonal, 4, 1, 1e-6),
    "digits K10 d12 Scale": ("digits", hx.Scale, 12, 10, 0.05),
}


def standardized(name: str, common: bool) -> np.ndarray:
    """The dataset, centred and scaled (one common scale when ``common``)."""
    if name == "wine":
        data = load_wine().data
    elif name == "cancer":
        data = load_breast_cancer().data
    else:
        data = np.asarray(hmog_xp.datasets.load_digits(backend="numpy")[0], dtype=np.float64)
    centred = data - data.mean(axis=0)
    scale = centred.std(axis=0)
    scale = np.where(scale > 0, scale, 1.0)
    return centred / (np.sqrt(np.mean(scale**2)) if common else scale)


def run(case: str, seeds: list[int], max_iter: int, tol: float, methods: list[str]) -> None:
    """Fit one case with every method and print the medians."""
    name, rep, lat_dim, k, reg_covar = CASES[case]
    xs = standardized(name, rep is hx.Scale)
    model = hx.analytic_hmog(xs.shape[1], rep, lat_dim, k)
    regularization = Regularization(reg_covar, 1e-6, 10 * EPS)
    starts = [starting_point(model, xs, "kmeans++", seed, reg_covar, 1e-6) for seed in seeds]
    options = {"max_iter": max_iter, "tol": tol, "regularization": regularization}
    results = {}
    for method in [{"plain": False}.get(name, name) for name in methods]:
        fit_em(model, starts[0], xs, accelerate=method, **options)  # warm-up
        rows = []
        for start in starts:
            begin = time.perf_counter()
            fit = fit_em(model, start, xs, accelerate=method, **options)
            rows.append((fit.n_iter, time.perf_counter() - begin, fit.log_likelihoods[-1], fit))
        results[method] = rows
    plain = [row[2] for row in results[False]]
    for method, rows in results.items():
        gaps = [row[2] - base for row, base in zip(rows, plain, strict=True)]
        unconverged = sum(not row[3].converged for row in rows)
        kept = statistics.median(row[3].n_extrapolated for row in rows)
        print(
            f"{case:22s} {method!s:16s} steps {statistics.median(r[0] for r in rows):7.0f} "
            f"time {statistics.median(r[1] for r in rows):7.3f}s "
            f"loglik {statistics.median(r[2] for r in rows):.8f} "
            f"vs plain min {min(gaps):+.1e} max {max(gaps):+.1e} "
            f"kept {kept:.0f} unconverged {unconverged}"
        )


def main() -> None:
    """Parse the arguments and run the cases."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--cases", nargs="+", default=list(CASES))
    parser.add_argument("--max-iter", type=int, default=5000)
    parser.add_argument("--tol", type=float, default=1e-8)
    parser.add_argument("--methods", nargs="+", default=["plain", "squarem", "squarem-natural"])
    args = parser.parse_args()
    for case in args.cases:
        run(case, args.seeds, args.max_iter, args.tol, args.methods)


if __name__ == "__main__":
    main()
