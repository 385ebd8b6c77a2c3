"""Cluster the handwritten digits with the estimator :class:`hmog_xp.HMoG`.

The data are the 1,797 UCI optical digits shipped with hmog_xp (8×8 images, pixel counts
0..16, as 64 features) with their true labels 0..9, which the fit never sees. The script fits
``HMoG(n_components=10, n_factors=8, noise="isotropic")`` by closed-form EM (best of a few
starts), prints a summary (log-likelihood, BIC, adjusted Rand index against the true labels,
the dominant digit of every cluster) and draws three figures into ``--out``:

* ``digits_means.png``: each component's mean image ``A μ_k + b``, titled with its weight and
  the true digit most of its members carry;
* ``digits_scores.png``: the factor scores ``E[y | x]`` (``transform``), projected onto their
  two principal directions, coloured by the true digit;
* ``digits_bic.png``: BIC (and AIC) of fits with 10 components and an increasing number of
  factors.

Why isotropic noise (probabilistic PCA): the pixels share one unit and are about equally
noisy. The estimator's fit is unit-free: with diagonal noise it standardises every pixel on
its own, so the faint border pixels (almost always 0) count as much as the strokes, and the
adjusted Rand index drops from about 0.72 to about 0.47. Isotropic noise is standardised with
one common scale, which keeps the pixels' relative sizes. Try ``--noise diagonal``.

Runs on the default backend (``HMOG_XP_BACKEND``); takes well under a minute on a laptop CPU.

Run:  python examples/digits_clustering.py --out figures
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

if os.environ.get("HMOG_XP_BACKEND") == "jax":
    import jax

    jax.config.update("jax_enable_x64", True)

from sklearn.metrics import adjusted_rand_score

from hmog_xp import HMoG
from hmog_xp.datasets import load_digits


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the figures")
    parser.add_argument("--seed", type=int, default=0, help="random_state of the fits")
    parser.add_argument("--n-factors", type=int, default=8, help="latent factors of the fit")
    parser.add_argument("--n-init", type=int, default=3, help="EM starts of the main fit")
    parser.add_argument(
        "--noise",
        choices=["isotropic", "diagonal", "full"],
        default="isotropic",
        help="structure of the pixel noise",
    )
    parser.add_argument(
        "--bic-factors",
        type=int,
        nargs="*",
        default=[2, 4, 6, 8, 10],
        help="numbers of factors for the BIC curve (none: skip it)",
    )
    return parser.parse_args(argv)


def to_numpy(array: object) -> np.ndarray:
    """Host copy of an array of any backend (CuPy needs ``.get()``)."""
    get = getattr(array, "get", None)
    return np.asarray(get() if callable(get) else array)


def fit(xs: object, n_factors: int, n_init: int, noise: str, seed: int) -> HMoG:
    estimator = HMoG(
        n_components=10,
        n_factors=n_factors,
        noise=noise,
        variant="analytic",
        max_iter=200,
        tol=1e-6,
        n_init=n_init,
        random_state=seed,
    )
    with warnings.catch_warnings():
        # A start that stops at max_iter warns; the summary reports convergence instead.
        warnings.simplefilter("ignore")
        return estimator.fit(xs)


def plot_means(
    estimator: HMoG, assigned: np.ndarray, truth: np.ndarray, path: Path
) -> list[tuple[int, float]]:
    loadings, bias = to_numpy(estimator.loadings_), to_numpy(estimator.bias_)
    images = to_numpy(estimator.means_) @ loadings.T + bias  # (K, 64): A μ_k + b
    weights = to_numpy(estimator.weights_)
    dominant = []
    for k in range(images.shape[0]):
        members = truth[assigned == k]
        if members.size:
            counts = np.bincount(members, minlength=10)
            dominant.append((int(counts.argmax()), float(counts.max() / members.size)))
        else:
            dominant.append((-1, 0.0))
    order = np.argsort([digit if digit >= 0 else 99 for digit, _ in dominant], kind="stable")
    fig, axes = plt.subplots(2, 5, figsize=(10, 4.6), layout="constrained")
    for axis, k in zip(axes.ravel(), order, strict=True):
        axis.imshow(images[k].reshape(8, 8), cmap="gray_r", vmin=0.0, vmax=16.0)
        digit, share = dominant[k]
        label = f"mostly {digit} ({share:.0%})" if digit >= 0 else "empty"
        axis.set_title(f"π = {weights[k]:.3f}\n{label}", fontsize=9)
        axis.set_axis_off()
    fig.suptitle(r"Component means $A\mu_k + b$ as 8×8 images")
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return dominant


def plot_scores(scores: np.ndarray, truth: np.ndarray, path: Path) -> None:
    centred = scores - scores.mean(axis=0)
    _, _, directions = np.linalg.svd(centred, full_matrices=False)
    plane = centred @ directions[:2].T
    fig, axis = plt.subplots(figsize=(6.4, 5.2), layout="constrained")
    cmap = plt.get_cmap("tab10")
    for digit in range(10):
        chosen = truth == digit
        axis.scatter(*plane[chosen].T, s=6, color=cmap(digit), alpha=0.7, linewidths=0)
        axis.annotate(
            str(digit),
            plane[chosen].mean(axis=0),
            fontsize=13,
            weight="bold",
            color=cmap(digit),
            ha="center",
            va="center",
            bbox={"boxstyle": "circle,pad=0.15", "fc": "white", "ec": cmap(digit), "alpha": 0.85},
        )
    axis.set_xlabel("first principal direction of the factor scores")
    axis.set_ylabel("second principal direction")
    axis.set_title(r"Factor scores $E[y \mid x]$ coloured by the true digit")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def plot_bic(factors: list[int], bics: list[float], aics: list[float], path: Path) -> None:
    fig, axis = plt.subplots(figsize=(6.4, 3.8), layout="constrained")
    axis.plot(factors, bics, "o-", label="BIC")
    axis.plot(factors, aics, "s--", label="AIC")
    best = int(np.argmin(bics))
    axis.plot(factors[best], bics[best], "k*", markersize=14, label="lowest BIC")
    axis.set_xlabel("number of factors $d$ (10 components)")
    axis.set_ylabel("criterion (lower is better)")
    axis.set_xticks(factors)
    axis.set_title("Model selection over the latent dimension")
    axis.legend()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    xs, labels = load_digits()
    truth = to_numpy(labels).astype(np.int64)
    print(f"digits: {tuple(xs.shape)} on the {type(xs).__module__.split('.')[0]} backend")

    start = time.perf_counter()
    estimator = fit(xs, args.n_factors, args.n_init, args.noise, args.seed)
    seconds = time.perf_counter() - start
    assigned = to_numpy(estimator.predict(xs))
    ari = adjusted_rand_score(truth, assigned)
    dominant = plot_means(estimator, assigned, truth, args.out / "digits_means.png")
    plot_scores(to_numpy(estimator.transform(xs)), truth, args.out / "digits_scores.png")
    print(
        f"HMoG(K=10, d={args.n_factors}, {args.noise} noise), "
        f"best of {args.n_init} starts: "
        f"{seconds:.1f} s, {estimator.n_iter_} EM steps, converged={estimator.converged_}"
    )
    print(f"  log-likelihood per image {estimator.score(xs):.3f}, BIC {estimator.bic(xs):.0f}")
    print(f"  adjusted Rand index against the true digits: {ari:.3f}")
    print("  dominant digit per cluster:", ", ".join(f"{d} ({s:.0%})" for d, s in dominant))

    if args.bic_factors:
        bics, aics = [], []
        for n_factors in args.bic_factors:
            candidate = fit(xs, n_factors, 1, args.noise, args.seed)
            bics.append(float(candidate.bic(xs)))
            aics.append(float(candidate.aic(xs)))
            print(f"  d = {n_factors:2d}: BIC {bics[-1]:.0f}, AIC {aics[-1]:.0f}")
        plot_bic(args.bic_factors, bics, aics, args.out / "digits_bic.png")
    drawn = "means,scores,bic" if args.bic_factors else "means,scores"
    print(f"figures written to {args.out}/digits_{{{drawn}}}.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
