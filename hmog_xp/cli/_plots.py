"""Figures of a fitted HMoG, drawn with matplotlib's Agg renderer (no display needed).

One figure serves ``demo`` and ``fit --plot``: on top, the components' means mapped to data
space (as images when the data are images, otherwise a bar chart of the mixture weights);
below, the log-likelihood per EM iteration and the factor scores ``E[y | x]`` of every
observation projected on their two principal axes, coloured by predicted cluster.
"""

from __future__ import annotations

import math
import pathlib
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from hmog_xp._files import atomic_write


@dataclass(frozen=True)
class FigureData:  # numpydoc ignore=PR02
    """Collect what the summary figure shows, as NumPy arrays.

    Parameters
    ----------
    weights : numpy.ndarray, shape (K,)
        Mixture weights.
    data_means : numpy.ndarray, shape (K, p)
        Component means mapped to data space, ``loadings @ mean_k + bias``.
    history : numpy.ndarray, shape (n_iter,)
        Average log-likelihood after each EM iteration.
    scores : numpy.ndarray, shape (N, d)
        Factor scores ``E[y | x]``.
    latent_means : numpy.ndarray, shape (K, d)
        Component means in the latent space (they choose the scatter plot's axes).
    predicted : numpy.ndarray, shape (N,)
        Predicted cluster of every observation, integers in ``0..K-1``.
    title : str
        Figure title.
    image_shape : tuple of int, optional
        ``(rows, columns)`` with ``rows * columns == p``: draw the means as images.
    value_range : tuple of float, optional
        Grey-level range of the images; the range of ``data_means`` when None.
    component_notes : list of str, optional
        One short note per component under its image (e.g. the majority true label).
    """

    weights: np.ndarray
    data_means: np.ndarray
    history: np.ndarray
    scores: np.ndarray
    latent_means: np.ndarray | None
    predicted: np.ndarray
    title: str
    image_shape: tuple[int, int] | None = None
    value_range: tuple[float, float] | None = None
    component_notes: list[str] | None = None


def project_2d(
    scores: np.ndarray, centres: np.ndarray | None = None, weights: np.ndarray | None = None
) -> np.ndarray:
    """Project points on the two directions that best show their clusters.

    With cluster centres, the directions are the two leading principal axes of the weighted
    centres (the between-cluster scatter); otherwise those of the points themselves.

    Parameters
    ----------
    scores : numpy.ndarray, shape (N, d)
        The points.
    centres : numpy.ndarray, shape (K, d), optional
        Cluster centres in the same space.
    weights : numpy.ndarray, shape (K,), optional
        Cluster weights (equal when None).

    Returns
    -------
    numpy.ndarray, shape (N, 2)
        Coordinates along the two directions, centred; a second column of zeros when
        ``d == 1``.
    """
    mean = scores.mean(axis=0)
    if scores.shape[1] == 1:
        return np.concatenate([scores - mean, np.zeros_like(scores)], axis=1)
    if centres is not None and centres.shape[0] >= 3:
        w = np.full(centres.shape[0], 1.0) if weights is None else np.asarray(weights)
        spread = (centres - w @ centres / w.sum()) * np.sqrt(w / w.sum())[:, None]
    else:
        spread = scores - mean
    _, _, vt = np.linalg.svd(spread, full_matrices=False)
    return (scores - mean) @ vt[:2].T


def _colours(n: int) -> Any:
    import matplotlib as mpl

    name = "tab10" if n <= 10 else "tab20" if n <= 20 else "turbo"
    cmap = mpl.colormaps[name]
    if name == "turbo":
        return [cmap(i / max(n - 1, 1)) for i in range(n)]
    return [cmap(i) for i in range(n)]


def _draw_images(subfig: Any, data: FigureData) -> None:
    assert data.image_shape is not None
    K = data.weights.shape[0]
    n_rows = 1 if K <= 6 else 2 if K <= 16 else 3 if K <= 30 else 4
    n_cols = math.ceil(K / n_rows)
    axes = np.atleast_1d(subfig.subplots(n_rows, n_cols, squeeze=False)).reshape(-1)
    low, high = data.value_range or (float(data.data_means.min()), float(data.data_means.max()))
    order = np.argsort(-data.weights)
    for ax in axes:
        ax.set_axis_off()
    for slot, k in enumerate(order):
        ax = axes[slot]
        ax.imshow(data.data_means[k].reshape(data.image_shape), cmap="gray_r", vmin=low, vmax=high)
        note = f"\n{data.component_notes[k]}" if data.component_notes else ""
        ax.set_title(f"k={k}  π={data.weights[k]:.2f}{note}", fontsize=8)
    subfig.suptitle("component means in data space (A μ_k + b), by weight", fontsize=10)


def _draw_weights(subfig: Any, data: FigureData) -> None:
    ax = subfig.subplots()
    K = data.weights.shape[0]
    ax.bar(np.arange(K), data.weights, color=_colours(K))
    ax.set_xlabel("component k")
    ax.set_ylabel("weight π_k")
    ax.set_title("mixture weights", fontsize=10)


def _draw_history(ax: Any, history: np.ndarray) -> None:
    iterations = np.arange(1, history.shape[0] + 1)
    ax.plot(iterations, history, marker="." if history.shape[0] < 60 else None)
    ax.set_xlabel("EM iteration")
    ax.set_ylabel("average log-likelihood")
    ax.set_title("training curve", fontsize=10)
    ax.grid(alpha=0.3)


def _draw_scores(ax: Any, data: FigureData) -> None:
    K = data.weights.shape[0]
    points = project_2d(data.scores, data.latent_means, data.weights)
    colours = _colours(K)
    size = 6.0 if points.shape[0] > 2000 else 10.0
    for k in range(K):
        chosen = data.predicted == k
        if np.any(chosen):
            ax.scatter(points[chosen, 0], points[chosen, 1], s=size, color=colours[k], label=str(k))
    # Limits from the central 99% of the points: a few far-out scores do not squash the rest.
    low, high = np.percentile(points, [0.5, 99.5], axis=0)
    margin = 0.08 * (high - low) + 1e-12
    ax.set_xlim(low[0] - margin[0], high[0] + margin[0])
    ax.set_ylim(low[1] - margin[1], high[1] + margin[1])
    where = "between-cluster" if data.latent_means is not None else "principal"
    ax.set_xlabel(f"factor scores, 1st {where} axis")
    ax.set_ylabel(f"2nd {where} axis")
    ax.set_title("E[y | x] coloured by predicted cluster", fontsize=10)
    if K <= 20:
        ax.legend(fontsize=7, markerscale=1.5, ncols=2, title="cluster", title_fontsize=7)


def write_figure(path: str | pathlib.Path, data: FigureData) -> pathlib.Path:
    """Draw the summary figure of a fitted model and save it as an image file.

    Parameters
    ----------
    path : str or path
        Destination; the format follows the suffix (``.png``, ``.pdf``, ``.svg``); parent
        directories are created, and the file is replaced atomically.
    data : FigureData
        What to draw.

    Returns
    -------
    pathlib.Path
        The path written.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    images = data.image_shape is not None and data.weights.shape[0] <= 40
    figure = Figure(figsize=(11.0, 9.0 if images else 7.0), layout="constrained")
    FigureCanvasAgg(figure)
    ratios = [1.0, 1.1] if images else [0.7, 1.0]
    top, bottom = cast(Any, figure.subfigures(2, 1, height_ratios=ratios))
    if images:
        _draw_images(top, data)
    else:
        _draw_weights(top, data)
    history_ax, scores_ax = bottom.subplots(1, 2, width_ratios=[1.0, 1.3])
    _draw_history(history_ax, data.history)
    _draw_scores(scores_ax, data)
    figure.suptitle(data.title, fontsize=12)
    with atomic_write(path) as handle:
        figure.savefig(handle, dpi=100, format=path.suffix.lstrip(".").lower() or None)
    return path
