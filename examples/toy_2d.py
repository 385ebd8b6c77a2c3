"""A two-dimensional toy: three clusters on a line, recovered by closed-form EM.

The ground truth is an HMoG with ``p = 2`` observed dimensions, ``d = 1`` latent factor and
``K = 3`` components: a one-dimensional Gaussian mixture over the factor ``y`` is stretched
along the direction of the loadings ``A`` and blurred by axis-aligned (factor-analysis) noise
``Ψ``. Every observable cluster is therefore elongated along the same line.

The script samples data from that model, fits ``analytic_hmog(2, Diagonal, 1, 3)`` with
:func:`hmog_xp.fit_em` from a few data-driven starts, keeps the best, prints a short summary
and draws three figures into ``--out``:

* ``toy_densities.png``: contours of ``log p(x)`` of the true and of the fitted model over
  the data, points coloured by the fitted model's hard assignments;
* ``toy_latent.png``: the latent mixture ``p(y) = Σ_k π_k N(y; μ_k, σ_k²)`` of both models, each
  component drawn separately. The latent axis of an HMoG is only defined up to an affine map
  (EM whitens it to mean 0 and variance 1, and its sign is arbitrary), so the true model is
  whitened the same way and the fitted factor's sign is aligned with the true loadings;
* ``toy_loglik.png``: the average log-likelihood over the EM steps of every start
  (``EMFit.log_likelihoods``), with the true model's value for reference.

Run:  python examples/toy_2d.py --out figures
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib as mpl

mpl.use("Agg")
import matplotlib.pyplot as plt
import numpy as np

import hmog_xp as hx

#: Ground truth: weights, latent means and variances, loadings A (2, 1), bias b, noise diag Ψ.
TRUE_WEIGHTS = np.array([0.3, 0.45, 0.25])
TRUE_MEANS = np.array([[-3.0], [0.5], [3.5]])
TRUE_VARIANCES = np.array([0.35, 0.6, 0.25])
TRUE_LOADINGS = np.array([[1.2], [0.7]])
TRUE_BIAS = np.array([0.5, -1.0])
TRUE_NOISE = np.array([0.25, 0.4])

COLOURS = ("tab:blue", "tab:orange", "tab:green")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("."), help="folder for the figures")
    parser.add_argument("--seed", type=int, default=0, help="seed of the sample and the starts")
    parser.add_argument("--n-samples", type=int, default=900, help="number of observations")
    parser.add_argument("--max-iter", type=int, default=300, help="EM steps per start at most")
    parser.add_argument("--n-init", type=int, default=3, help="number of EM starts")
    parser.add_argument("--grid", type=int, default=160, help="grid points per axis (contours)")
    return parser.parse_args(argv)


def whitened_generative(model: hx.AnalyticHMoG, params: np.ndarray) -> hx.HMoGParameters:
    """Generative form after mapping the latent prior to mean 0, variance 1 (as EM does)."""
    whitened = model.to_natural(model.whiten_prior(model.to_mean(params)))
    return model.to_generative(whitened)


def aligned(generative: hx.HMoGParameters, reference: hx.HMoGParameters) -> hx.HMoGParameters:
    """Flip the sign of a one-dimensional factor so that its loadings agree with ``reference``."""
    sign = 1.0 if float(np.sum(generative.loadings * reference.loadings)) >= 0 else -1.0
    return generative._replace(means=sign * generative.means, loadings=sign * generative.loadings)


def gaussian_pdf(y: np.ndarray, mean: float, variance: float) -> np.ndarray:
    return np.exp(-0.5 * (y - mean) ** 2 / variance) / np.sqrt(2.0 * np.pi * variance)


def plot_densities(
    model: hx.AnalyticHMoG,
    true_params: np.ndarray,
    fitted: np.ndarray,
    xs: np.ndarray,
    labels: np.ndarray,
    size: int,
    path: Path,
) -> None:
    lower, upper = xs.min(axis=0) - 1.0, xs.max(axis=0) + 1.0
    axis0 = np.linspace(lower[0], upper[0], size)
    axis1 = np.linspace(lower[1], upper[1], size)
    mesh0, mesh1 = np.meshgrid(axis0, axis1)
    grid = np.stack([mesh0.ravel(), mesh1.ravel()], axis=1)
    panels = (("true model", true_params), ("fitted model (EM)", fitted))
    log_densities = [
        np.asarray(model.log_observable_density(params, grid)).reshape(mesh0.shape)
        for _, params in panels
    ]
    floor = max(float(values.max()) for values in log_densities) - 9.0
    levels = np.linspace(floor, max(float(values.max()) for values in log_densities), 12)
    fig, axes = plt.subplots(
        1, 2, figsize=(10, 4.4), sharex=True, sharey=True, layout="constrained"
    )
    for axis, (title, _), values in zip(axes, panels, log_densities, strict=True):
        filled = axis.contourf(mesh0, mesh1, values, levels=levels, cmap="Greys", extend="min")
        axis.contour(mesh0, mesh1, values, levels=levels, colors="k", linewidths=0.4)
        colours = np.array(COLOURS)[labels]
        axis.scatter(xs[:, 0], xs[:, 1], s=5, c=colours, alpha=0.6, linewidths=0)
        axis.set_title(title)
        axis.set_xlabel("$x_1$")
        axis.set_aspect("equal")
    axes[0].set_ylabel("$x_2$")
    fig.colorbar(filled, ax=axes, label=r"$\log p(x)$", shrink=0.85)
    fig.suptitle("Observable density; points coloured by the fitted hard assignment")
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_latent(true_form: hx.HMoGParameters, fitted_form: hx.HMoGParameters, path: Path) -> None:
    ys = np.linspace(-3.2, 3.2, 400)
    fig, axis = plt.subplots(figsize=(7, 3.6))
    for name, form, style in (("true", true_form, "-"), ("fitted", fitted_form, "--")):
        weights = np.asarray(form.weights)
        means = np.asarray(form.means)[:, 0]
        variances = np.asarray(form.covariances)[:, 0, 0]
        order = np.argsort(means)  # colour components by position, the labels are arbitrary
        total = np.zeros_like(ys)
        for colour, k in zip(COLOURS, order, strict=True):
            component = weights[k] * gaussian_pdf(ys, means[k], variances[k])
            total += component
            axis.plot(ys, component, style, color=colour, linewidth=1.2)
        axis.plot(ys, total, style, color="k", linewidth=1.8, label=f"{name} $p(y)$")
    axis.set_xlabel("latent factor $y$ (whitened: mean 0, variance 1)")
    axis.set_ylabel("density")
    axis.set_title(r"Latent mixture: $\pi_k\,\mathcal{N}(y;\mu_k,\sigma_k^2)$ per component")
    axis.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def plot_log_likelihoods(histories: list[list[float]], best: int, true_ll: float, path: Path):
    fig, axis = plt.subplots(figsize=(7, 3.6))
    for start, history in enumerate(histories):
        axis.plot(
            np.arange(len(history)),
            history,
            linewidth=2.0 if start == best else 1.0,
            alpha=1.0 if start == best else 0.6,
            label=f"start {start}" + (" (kept)" if start == best else ""),
        )
    axis.axhline(true_ll, color="k", linestyle=":", label="true model")
    axis.set_xlabel("EM step")
    axis.set_ylabel("average log-likelihood")
    axis.set_title("EM never decreases the log-likelihood")
    axis.legend()
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(args.seed)

    model = hx.analytic_hmog(2, hx.Diagonal, 1, 3)
    true_params = model.from_generative(
        TRUE_WEIGHTS,
        TRUE_MEANS,
        TRUE_VARIANCES[:, None, None],
        TRUE_LOADINGS,
        TRUE_BIAS,
        TRUE_NOISE,
    )
    xs, _, _ = model.sample(rng, true_params, args.n_samples)
    xs = np.asarray(xs)
    true_ll = float(model.average_log_observable_density(true_params, xs))

    fits = []
    for start in range(args.n_init):
        params = model.initialize_from_sample(rng, xs)
        fit = hx.fit_em(model, params, xs, max_iter=args.max_iter, tol=1e-10)
        fits.append(fit)
        print(
            f"start {start}: {fit.n_iter:3d} EM steps, converged={fit.converged}, "
            f"log-likelihood {fit.log_likelihoods[-1]:.4f}"
        )
    best = max(range(len(fits)), key=lambda i: fits[i].log_likelihoods[-1])
    fitted = fits[best].params

    true_form = whitened_generative(model, true_params)
    fitted_form = aligned(model.to_generative(fitted), true_form)
    labels = np.asarray(model.posterior_hard_assignment(fitted, xs))
    # Colour clusters by their position along the factor so both panels use the same colours.
    rank = np.argsort(np.argsort(np.asarray(fitted_form.means)[:, 0]))
    labels = rank[labels]

    plot_densities(
        model, true_params, fitted, xs, labels, args.grid, args.out / "toy_densities.png"
    )
    plot_latent(true_form, fitted_form, args.out / "toy_latent.png")
    plot_log_likelihoods(
        [fit.log_likelihoods for fit in fits], best, true_ll, args.out / "toy_loglik.png"
    )

    fitted_ll = fits[best].log_likelihoods[-1]
    order = np.argsort(np.asarray(fitted_form.means)[:, 0])
    print(f"\ndata: {xs.shape[0]} points in R^2; model {model!r}")
    print(f"true model log-likelihood per point:   {true_ll:.4f}")
    print(f"fitted model log-likelihood per point: {fitted_ll:.4f} (start {best})")
    print(f"true weights   {np.round(np.asarray(true_form.weights), 3)}")
    print(f"fitted weights {np.round(np.asarray(fitted_form.weights)[order], 3)}")
    print(f"figures written to {args.out}/toy_{{densities,latent,loglik}}.png")
    return 0 if fitted_ll >= true_ll - 0.05 else 1


if __name__ == "__main__":
    sys.exit(main())
