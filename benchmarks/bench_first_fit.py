"""First-fit (compile) time: import, first and second wine fit, and the demo, fresh interpreters.

Every measurement runs in a FRESH interpreter (``sys.executable -c ...`` or ``-m hmog_xp``),
so caches of earlier runs (JAX's traces, PyTorch's lazy initialisation, imported modules) do not
hide what a new user waits for. Per CPU backend it times:

* ``import``: ``import hmog_xp`` (the first statement of the interpreter);
* ``backend``: importing the backend and converting the wine data to a float64 array of it
  (JAX with ``jax_enable_x64``);
* ``fit 1`` and ``fit 2``: ``hx.HMoG(n_components=3, n_factors=2, random_state=0).fit(wine)``
  twice with every other setting at its default (``--n-init`` changes the restarts), on the
  178 x 13 UCI wine data, StandardScaler'd; ``fit 2`` shows what compiling costs ``fit 1``;
* ``demo`` (NumPy and JAX): the wall time of the whole ``python -m hmog_xp demo --backend NAME
  --quiet`` subprocess, and the fit time the demo prints itself.

Run with one BLAS thread on a shared machine (``OMP_NUM_THREADS=1``, which the subprocesses
inherit). Results print as a table; :func:`run_first_fit` returns them for ``bench_em.py``'s JSON.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_first_fit.py
    OMP_NUM_THREADS=1 python benchmarks/bench_first_fit.py --backends jax --no-demo
    OMP_NUM_THREADS=1 python benchmarks/bench_first_fit.py --n-init 10   # ten restarts a fit
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CPU_BACKENDS = ("numpy", "jax", "torch")
DEMO_BACKENDS = ("numpy", "jax")
TARGET_JAX_FIRST_FIT_S = 8.0
TARGET_DEMO_S = 15.0

# Run in a fresh interpreter; prints one JSON line. {backend} is substituted.
_FIT_CODE = """
import time
start = time.perf_counter()
import hmog_xp as hx
imported = time.perf_counter()
import json
from sklearn.datasets import load_wine
from sklearn.preprocessing import StandardScaler
wine = StandardScaler().fit_transform(load_wine().data)
loaded = time.perf_counter()
if "{backend}" == "jax":
    import jax
    jax.config.update("jax_enable_x64", True)
from hmog_xp._backend import namespace_for
xp = namespace_for("{backend}")
data = xp.asarray(wine, dtype=xp.float64)
ready = time.perf_counter()
times = []
for _ in range(2):
    begin = time.perf_counter()
    est = hx.HMoG(n_components=3, n_factors=2, random_state=0{extra}).fit(data)
    float(est.lower_bound_)
    times.append(time.perf_counter() - begin)
threads = None
if "{backend}" == "torch":
    import torch
    threads = torch.get_num_threads()
print(json.dumps({{
    "import_s": imported - start, "backend_s": ready - loaded,
    "fit1_s": times[0], "fit2_s": times[1], "n_init": est.n_init, "n_iter": est.n_iter_,
    "max_iter": est.max_iter, "lower_bound": float(est.lower_bound_), "torch_threads": threads,
}}))
"""


def fit_times(backend: str, n_init: int | None = None, timeout: float = 900.0) -> dict[str, Any]:
    """Import, backend and two wine-fit times of one backend in a fresh interpreter.

    Parameters
    ----------
    backend : str
        ``numpy``, ``jax`` or ``torch``.
    n_init : int, optional
        Restarts of each fit (default: the estimator's default).
    timeout : float, optional
        Seconds before the subprocess is abandoned.

    Returns
    -------
    dict
        ``import_s``, ``backend_s``, ``fit1_s``, ``fit2_s`` (seconds), the fit's ``n_init``,
        ``n_iter``, ``max_iter``, ``lower_bound``, ``torch_threads`` and the subprocess's
        ``wall_s``; or ``error`` with the subprocess's last output lines.
    """
    extra = "" if n_init is None else f", n_init={int(n_init)}"
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-c", _FIT_CODE.format(backend=backend, extra=extra)],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    wall = time.perf_counter() - start
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"backend": backend, "error": (done.stderr or done.stdout)[-2000:]}
    return {"backend": backend, "wall_s": wall, **json.loads(lines[-1])}


def demo_times(backend: str, timeout: float = 900.0) -> dict[str, Any]:
    """Wall time of ``python -m hmog_xp demo --backend NAME --quiet`` and its reported fit time.

    Parameters
    ----------
    backend : str
        The demo's ``--backend``.
    timeout : float, optional
        Seconds before the subprocess is abandoned.

    Returns
    -------
    dict
        ``demo_wall_s`` (the whole subprocess) and ``demo_fit_s`` (the ``fit ... s`` the demo
        prints; None when it prints none), or ``error`` with the subprocess's last output.
    """
    with tempfile.TemporaryDirectory() as out_dir:
        command = [sys.executable, "-m", "hmog_xp", "demo", "--backend", backend, "--quiet"]
        start = time.perf_counter()
        done = subprocess.run(
            [*command, "--out-dir", out_dir],
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        wall = time.perf_counter() - start
    if done.returncode != 0:
        return {"backend": backend, "error": (done.stderr or done.stdout)[-2000:]}
    match = re.search(r"\bfit (\d+(?:\.\d+)?) s", done.stdout)
    return {
        "backend": backend,
        "demo_wall_s": wall,
        "demo_fit_s": float(match.group(1)) if match else None,
    }


def _cell(row: dict[str, Any], key: str) -> str:
    value = row.get(key)
    return f"{value:>10.2f}" if isinstance(value, float) else f"{'-':>10}"


def run_first_fit(
    backends: list[str], demo: bool = True, n_init: int | None = None
) -> list[dict[str, Any]]:
    """Measure and print the first-fit table and its targets for ``backends``.

    Parameters
    ----------
    backends : list of str
        CPU backends to measure (each in its own interpreters).
    demo : bool, optional
        Also time the demo on the NumPy and JAX backends among ``backends``.
    n_init : int, optional
        Restarts of each wine fit (default: the estimator's default).

    Returns
    -------
    list of dict
        One row per backend (see :func:`fit_times` and :func:`demo_times`).
    """
    print(
        f"\nFirst fit, fresh interpreter per row (OMP_NUM_THREADS="
        f"{os.environ.get('OMP_NUM_THREADS')}); wine 178 x 13, HMoG(3, 2, random_state=0) "
        + ("with default settings" if n_init is None else f"with n_init={n_init}")
    )
    header = (
        f"{'backend':<8}{'import s':>10}{'backend s':>10}{'fit 1 s':>10}{'fit 2 s':>10}"
        f"{'n_init':>8}{'n_iter':>8}{'demo s':>10}{'demo fit s':>12}"
    )
    print(header)
    print("-" * len(header))
    rows = []
    for name in backends:
        row = fit_times(name, n_init)
        if demo and name in DEMO_BACKENDS:
            row.update({k: v for k, v in demo_times(name).items() if k != "backend"})
        rows.append(row)
        if "error" in row:
            print(f"{name:<8} failed: {row['error'].strip().splitlines()[-1:]}", flush=True)
            continue
        print(
            f"{name:<8}{_cell(row, 'import_s')}{_cell(row, 'backend_s')}{_cell(row, 'fit1_s')}"
            f"{_cell(row, 'fit2_s')}{row['n_init']:>8}{row['n_iter']:>8}"
            f"{_cell(row, 'demo_wall_s')}{_cell(row, 'demo_fit_s'):>12}",
            flush=True,
        )
    _print_targets(rows)
    return rows


def _verdict(value: float | None, target: float) -> str:
    if value is None:
        return "not measured"
    state = "holds" if value <= target else f"MISSED by {value / target:.2f} x"
    return f"{value:.2f} s, target {target:g} s: {state}"


def _print_targets(rows: list[dict[str, Any]]) -> None:
    jax = next((row for row in rows if row["backend"] == "jax" and "error" not in row), None)
    if jax is None:
        print("targets: JAX not measured")
        return
    print(f"target  JAX first wine fit <= {TARGET_JAX_FIRST_FIT_S:g} s: ", end="")
    print(_verdict(jax.get("fit1_s"), TARGET_JAX_FIRST_FIT_S))
    print(f"target  JAX demo (whole command) <= {TARGET_DEMO_S:g} s: ", end="")
    print(_verdict(jax.get("demo_wall_s"), TARGET_DEMO_S))


def main() -> None:
    """Run the first-fit measurements, print the table, write JSON."""
    from hmog_xp._backend import installed_backends

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", nargs="+", default=None)
    parser.add_argument("--no-demo", action="store_true", help="skip the demo timings")
    parser.add_argument("--n-init", type=int, default=None, help="restarts of the wine fits")
    args = parser.parse_args()
    backends = args.backends or [b for b in CPU_BACKENDS if b in installed_backends()]
    rows = run_first_fit(backends, demo=not args.no_demo, n_init=args.n_init)
    out_dir = Path(__file__).parent / "results"
    out_dir.mkdir(exist_ok=True)
    out = out_dir / f"bench_first_fit_{time.strftime('%Y%m%d-%H%M%S')}.json"
    result = {"omp_num_threads": os.environ.get("OMP_NUM_THREADS"), "first_fit": rows}
    out.write_text(json.dumps(result, indent=1))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
