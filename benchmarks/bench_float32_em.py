"""float32 EM against float64 EM on real data: iterations and the log-likelihood gap.

For UCI wine (``K=3``, ``d=2`` and ``d=4``), breast cancer (``K=2``, ``d=4``), both
standardised, and the embedded digits (``K=10``, ``d=16``, ``reg_covar=0.05``) this fits

* ``fit_em`` from one float64 starting point and the same point rounded to float32, with
  ``fit_em``'s default ``tol`` and ``max_iter`` and with ``max_iter=5000``;
* ``HMoG(...).fit`` on float64 and on float32 data (default ``tol`` and ``max_iter``);

and prints the iterations of each and ``ℓ64 − ℓ32``: the float64 fit's average
log-likelihood minus the float32 fit's, both evaluated in float64 (nats per observation).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_float32_em.py
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
from sklearn.datasets import load_breast_cancer, load_wine
from sklearn.preprocessing import StandardScaler

import hmog_xp as hx
from hmog_xp.datasets import load_digits
from hmog_xp.em import fit_em
from hmog_xp.harmoniums.stabilizers import Regularization


def cases() -> list[tuple[str, np.ndarray, int, int, float]]:
    """``(name, data, K, d, reg_covar)`` of the four measured fits."""
    wine = StandardScaler().fit_transform(load_wine().data)
    cancer = StandardScaler().fit_transform(load_breast_cancer().data)
    digits = np.asarray(load_digits()[0], dtype=np.float64)
    return [
        ("wine d=2", wine, 3, 2, 0.0),
        ("wine d=4", wine, 3, 4, 0.0),
        ("cancer d=4", cancer, 2, 4, 0.0),
        ("digits d=16", digits, 10, 16, 0.05),
    ]


def log_likelihood(model: Any, params: Any, data: np.ndarray) -> float:
    """Average log-likelihood of ``params`` evaluated in float64."""
    wide = np.asarray(params, dtype=np.float64)
    return float(model.average_log_observable_density(wide, data))


def main() -> None:
    """Print one row per case and driver."""
    print(f"{'case':12s} {'driver':26s} {'iter64':>6s} {'iter32':>6s} {'l64 - l32':>10s}")
    for name, data, k, d, reg in cases():
        model = hx.analytic_hmog(data.shape[1], hx.Diagonal(), d, k)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            start = hx.HMoG(k, d, reg_covar=reg, random_state=0, max_iter=1).fit(data)
        start_params = np.asarray(start.params_)
        regularization = Regularization(reg, 1e-6, 0.0)
        for max_iter in (100, 5000):
            wide = fit_em(
                model, start_params, data, max_iter=max_iter, regularization=regularization
            )
            narrow = fit_em(
                model,
                start_params.astype(np.float32),
                data.astype(np.float32),
                max_iter=max_iter,
                regularization=regularization,
            )
            gap = log_likelihood(model, wide.params, data) - log_likelihood(
                model, narrow.params, data
            )
            driver = f"fit_em max_iter={max_iter}"
            print(f"{name:12s} {driver:26s} {wide.n_iter:6d} {narrow.n_iter:6d} {gap:+10.1e}")
        fits = []
        for dtype in (np.float64, np.float32):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                fits.append(hx.HMoG(k, d, reg_covar=reg, random_state=0).fit(data.astype(dtype)))
        gap = log_likelihood(fits[0].model_, fits[0].params_, data) - log_likelihood(
            fits[1].model_, fits[1].params_, data
        )
        iterations = f"{fits[0].n_iter_:6d} {fits[1].n_iter_:6d}"
        print(f"{name:12s} {'HMoG.fit (defaults)':26s} {iterations} {gap:+10.1e}")


if __name__ == "__main__":
    main()
