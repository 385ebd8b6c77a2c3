"""Throughput of EM on Dask (threads, and a 2-worker LocalCluster) against in-memory fit_em.

One data set (Gaussian clusters through a random linear map, float64), one starting point,
the same number of EM iterations in every mode:

* ``in-memory``: :func:`hmog_xp.fit_em` on a NumPy array;
* ``dask-threads``: :func:`hmog_xp.scale.fit_em_dask` on the same data as an in-memory Dask
  array (``da.from_array``), Dask's threaded scheduler;
* ``dask-cluster``: ``fit_em_dask`` with a ``distributed.LocalCluster`` of ``--workers``
  single-threaded worker processes on loopback; the data are generated on the workers
  chunk by chunk and persisted there (never on the client).

The time of one EM iteration (E-step pass over all rows, reduction, M-step) is the median
interval between the driver's per-iteration callbacks; throughput is rows per second per
iteration. The final parameters of the Dask fits are compared with the in-memory fit
(largest difference relative to the largest parameter).
Results print as a table and are written as JSON to ``benchmarks/results/``.

Usage::

    python benchmarks/bench_dask.py                       # N = 1,000,000, p = 50, d = 5, K = 8
    python benchmarks/bench_dask.py --rows 200000 --iterations 5
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import dask
import dask.array as da
import distributed
import numpy as np

import hmog_xp as hx
from hmog_xp.em import fit_em
from hmog_xp.scale import fit_em_dask


def _block(block_id: tuple[int, int], rows: int, p: int, d: int, k: int, seed: int) -> Any:
    """Rows of one chunk, generated from the chunk index (same data wherever it runs)."""
    loading = np.random.default_rng(seed).normal(size=(p, d))
    centres = 4.0 * np.random.default_rng(seed + 1).normal(size=(k, d))
    rng = np.random.default_rng([seed, block_id[0]])
    latent = centres[rng.integers(0, k, size=rows)] + 0.5 * rng.normal(size=(rows, d))
    return latent @ loading.T + 0.3 * rng.normal(size=(rows, p))


def lazy_data(n: int, p: int, d: int, k: int, chunk: int, seed: int = 0) -> Any:
    """A Dask array whose chunks are generated where they are computed."""
    chunks = [chunk] * (n // chunk) + ([n % chunk] if n % chunk else [])
    return da.map_blocks(
        lambda block_info=None: _block(
            block_info[None]["chunk-location"],
            block_info[None]["chunk-shape"][0],
            p,
            d,
            k,
            seed,
        ),
        chunks=(tuple(chunks), (p,)),
        dtype=np.float64,
        meta=np.empty((0, 0)),
    )


def timed_fit(fit: Any) -> tuple[Any, float, float]:
    """Run ``fit(callback)``; return the result, the median iteration time and the total."""
    stamps: list[float] = []
    start = time.perf_counter()
    result = fit(lambda iteration, value: stamps.append(time.perf_counter()))
    total = time.perf_counter() - start
    intervals = [b - a for a, b in itertools.pairwise(stamps)]
    return result, statistics.median(intervals), total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--cols", type=int, default=50)
    parser.add_argument("--lat", type=int, default=5)
    parser.add_argument("--components", type=int, default=8)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--iterations", type=int, default=8)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    n, p, d, k = args.rows, args.cols, args.lat, args.components
    lazy = lazy_data(n, p, d, k, args.chunk_rows)
    data = lazy.compute()
    model = hx.analytic_hmog(p, hx.Diagonal, d, k)
    params = model.initialize_from_sample(0, data[:5000])
    iters = args.iterations

    results: dict[str, Any] = {}
    reference, step, total = timed_fit(
        lambda cb: fit_em(model, params, data, max_iter=iters, tol=0.0, callback=cb)
    )
    results["in-memory"] = {"iteration_s": step, "total_s": total}

    in_memory = da.from_array(data, chunks=(args.chunk_rows, p))
    fit, step, total = timed_fit(
        lambda cb: fit_em_dask(
            model, params, in_memory, max_iter=iters, tol=0.0, scheduler="threads", callback=cb
        )
    )
    results["dask-threads"] = {"iteration_s": step, "total_s": total, "fit": fit}

    with (
        distributed.LocalCluster(
            n_workers=args.workers,
            processes=True,
            threads_per_worker=1,
            host="127.0.0.1",
            dashboard_address=None,
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        persisted = client.persist(lazy)
        distributed.wait(persisted)
        fit, step, total = timed_fit(
            lambda cb: fit_em_dask(model, params, persisted, max_iter=iters, tol=0.0, callback=cb)
        )
    results[f"dask-cluster-{args.workers}w"] = {"iteration_s": step, "total_s": total, "fit": fit}

    print(f"N={n} p={p} d={d} K={k} chunk={args.chunk_rows} iterations={iters} float64")
    print(f"{'mode':<18}{'s/iter':>10}{'rows/s':>14}{'vs in-memory':>14}{'max |Δθ|/|θ|':>15}")
    base = results["in-memory"]["iteration_s"]
    record: dict[str, Any] = {}
    for name, row in results.items():
        fit = row.pop("fit", None)
        scale = float(np.max(np.abs(reference.params)))
        difference = 0.0 if fit is None else float(np.max(np.abs(fit.params - reference.params)))
        difference /= scale
        row.update(rows_per_s=n / row["iteration_s"], speed=base / row["iteration_s"])
        row["max_relative_param_difference"] = difference
        record[name] = row
        print(
            f"{name:<18}{row['iteration_s']:>10.3f}{row['rows_per_s']:>14,.0f}"
            f"{row['speed']:>14.2f}{difference:>15.1e}"
        )
    out = Path(__file__).parent / "results" / f"bench_dask_{time.strftime('%Y%m%d-%H%M%S')}.json"
    out.parent.mkdir(exist_ok=True)
    meta = {
        "case": {"n": n, "p": p, "d": d, "k": k, "chunk": args.chunk_rows, "iterations": iters},
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
        "versions": {"dask": dask.__version__, "numpy": np.__version__},
    }
    out.write_text(json.dumps({**meta, "results": record}, indent=2))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
