"""Fit quality with 0 %, 10 % and 30 % of the entries missing at random, on real data.

``HMoG(missing="marginalize")`` against mean imputation followed by the same complete-data
``HMoG`` (estimator defaults unless listed). For each hole pattern (entries removed
completely at random; a row left empty gets its first entry back):

* ARI of the labels against the true classes;
* RMSE of the imputed entries against the true values, in units of each column's standard
  deviation (the column mean scores about 1);
* the average log-likelihood of the *complete* data under the fitted model (how well the
  density was learned).

Medians over the hole patterns, ARI ranges in brackets. Run with ``OMP_NUM_THREADS=1``.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_missing_quality.py
    python benchmarks/bench_missing_quality.py wine     # cases whose name contains "wine"
"""

from __future__ import annotations

import sys
import time
import warnings
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.metrics import adjusted_rand_score

from hmog_xp import HMoG
from hmog_xp.datasets import load_digits

#: name -> (loader, hyper-parameters, number of hole patterns)
CASES: dict[str, tuple[Any, dict[str, Any], int]] = {
    "wine K3 d2": (
        lambda: load_wine(return_X_y=True),
        {"n_components": 3, "n_factors": 2, "n_init": 10},
        5,
    ),
    "breast cancer K2 d4": (
        lambda: load_breast_cancer(return_X_y=True),
        {"n_components": 2, "n_factors": 4, "n_init": 10},
        5,
    ),
    "digits K10 d12 isotropic": (
        load_digits,
        {"n_components": 10, "n_factors": 12, "noise": "isotropic", "reg_covar": 0.05, "n_init": 3},
        3,
    ),
}
FRACTIONS = (0.0, 0.1, 0.3)


def holes_of(shape: tuple[int, int], fraction: float, seed: int) -> np.ndarray:
    """Entries missing completely at random (True: missing), no row left empty."""
    holes = np.random.default_rng(seed).random(shape) < fraction
    holes[holes.all(axis=1), 0] = False
    return holes


def measure(X: np.ndarray, y: np.ndarray, params: dict[str, Any], holes: np.ndarray) -> dict:
    """ARI, imputation RMSE and complete-data log-likelihood of both methods, one pattern."""
    scale = X.std(axis=0)
    scale[scale == 0] = 1.0
    holed = np.where(holes, np.nan, X)
    start = time.perf_counter()
    marginal = HMoG(missing="marginalize", random_state=0, **params).fit(holed)
    seconds = time.perf_counter() - start
    filled = np.where(holes, np.nanmean(holed, axis=0), holed)
    imputed = HMoG(random_state=0, **params).fit(filled)
    rows = {}
    for name, est, completed, data in (
        ("marginalize", marginal, marginal.impute(holed), holed),
        ("mean-imputed", imputed, filled, filled),
    ):
        error = ((completed - X) / scale)[holes]
        rows[name] = (
            adjusted_rand_score(y, est.predict(data)),
            float(np.sqrt(np.mean(error**2))) if holes.any() else 0.0,
            est.score(X),
        )
    return {"rows": rows, "seconds": seconds}


def main() -> None:
    """Print one line per case and missing fraction."""
    warnings.simplefilter("ignore")
    selected = sys.argv[1:]
    for case, (loader, params, n_patterns) in CASES.items():
        if selected and not any(word in case for word in selected):
            continue
        X, y = loader()
        for fraction in FRACTIONS:
            runs = [
                measure(X, y, params, holes_of(X.shape, fraction, seed))
                for seed in range(n_patterns if fraction else 1)
            ]
            parts = [f"{case} {fraction:.0%}:"]
            for name in ("marginalize", "mean-imputed"):
                values = np.array([run["rows"][name] for run in runs])
                ari, rmse, loglik = np.median(values, axis=0)
                low, high = values[:, 0].min(), values[:, 0].max()
                parts.append(
                    f"{name}: ARI {ari:.3f} [{low:.3f}, {high:.3f}] RMSE {rmse:.3f} "
                    f"loglik(complete X) {loglik:.3f}"
                )
            parts.append(f"fit {np.median([run['seconds'] for run in runs]):.1f} s")
            print("  ".join(parts), flush=True)


if __name__ == "__main__":
    main()
