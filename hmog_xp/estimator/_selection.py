"""Choosing ``K`` and ``d``: a grid of fits scored by BIC, ICL or AIC (:func:`select_model`).

Every grid point is fitted by :class:`HMoG` with the user's hyper-parameters (its restarts
included). A model with ``K`` components also gets one start from the best ``K − 1``
component model with the same ``d``: that model with its widest component split in two along
its principal axis (the split keeps the mixture's mean and covariance). The more likely of
the two fits is kept, so the best ``K`` fit is never worse than its neighbour allows, and the
criterion curve over ``K`` is not ragged from unlucky restarts.
"""

from __future__ import annotations

import math
import time
import warnings
from collections.abc import Iterable
from typing import Any

from sklearn.base import clone
from sklearn.exceptions import ConvergenceWarning

from hmog_xp import _backend as B
from hmog_xp.estimator._estimator import HMoG
from hmog_xp.estimator._params import check_hyperparameters
from hmog_xp.hmog import HMoGParameters

__all__ = ["ModelSelection", "select_model"]

#: The criteria :func:`select_model` ranks by (all: lower is better).
CRITERIA = ("bic", "icl", "aic")
#: The columns of :attr:`ModelSelection.results_`.
COLUMNS = (
    "n_components",
    "n_factors",
    "criterion",
    "bic",
    "icl",
    "aic",
    "log_likelihood",
    "n_iter",
    "converged",
    "fit_time",
)


class ModelSelection:
    """The outcome of :func:`select_model`: every fit's scores and the best model.

    Parameters
    ----------
    criterion : str
        The ranking criterion.
    results : dict of lists
        The table (see :attr:`results_`).
    estimators : list of HMoG
        The fitted models, one per row of ``results``.

    Attributes
    ----------
    criterion : str
        The criterion the models were ranked by (``'bic'``, ``'icl'`` or ``'aic'``).
    best_estimator_ : HMoG
        The fitted model with the lowest criterion.
    best_params_ : dict
        Its ``n_components`` and ``n_factors``.
    best_index_ : int
        Its row in :attr:`results_`.
    results_ : dict of lists
        One entry per grid point, in fitting order (``d`` outer, ``K`` inner): the columns
        ``n_components``, ``n_factors``, ``criterion`` (the ranking criterion's value),
        ``bic``, ``icl``, ``aic``, ``log_likelihood`` (average per sample), ``n_iter``,
        ``converged`` and ``fit_time`` (seconds, both starts). ``pandas.DataFrame(results_)``
        makes it a frame.
    estimators_ : list of HMoG
        Every fitted model, in the order of :attr:`results_`.
    """

    def __init__(
        self, criterion: str, results: dict[str, list[Any]], estimators: list[HMoG]
    ) -> None:
        self.criterion = criterion
        self.results_ = results
        self.estimators_ = estimators
        values = results["criterion"]
        self.best_index_ = min(range(len(values)), key=values.__getitem__)
        self.best_estimator_ = estimators[self.best_index_]
        self.best_params_ = {
            "n_components": results["n_components"][self.best_index_],
            "n_factors": results["n_factors"][self.best_index_],
        }

    def __repr__(self) -> str:
        """Return a one-line summary."""
        return (
            f"ModelSelection(criterion={self.criterion!r}, best_params_={self.best_params_}, "
            f"{len(self.estimators_)} models)"
        )

    def ranked_by(self, criterion: str) -> ModelSelection:
        """The same fits ranked by another criterion (nothing is refitted).

        Parameters
        ----------
        criterion : {'bic', 'icl', 'aic'}
            The criterion.

        Returns
        -------
        ModelSelection
            A selection over the same estimators whose ``criterion`` column and best model
            follow ``criterion``.
        """
        if criterion not in CRITERIA:
            msg = f"criterion must be one of {CRITERIA}; got {criterion!r}"
            raise ValueError(msg)
        results = {**self.results_, "criterion": list(self.results_[criterion])}
        return ModelSelection(criterion, results, self.estimators_)

    def plot(self, ax: Any = None) -> Any:
        """Draw the criterion against ``K``, one line per ``d``, the best model marked.

        Parameters
        ----------
        ax : matplotlib.axes.Axes, optional
            Where to draw (default: a new figure's axes).

        Returns
        -------
        matplotlib.axes.Axes
            The axes drawn on.
        """
        if ax is None:
            import matplotlib.pyplot as plt

            _, ax = plt.subplots(figsize=(6, 4))
        results = self.results_
        for d in sorted(set(results["n_factors"])):
            rows = [i for i, value in enumerate(results["n_factors"]) if value == d]
            ks = [results["n_components"][i] for i in rows]
            ax.plot(ks, [results["criterion"][i] for i in rows], marker="o", label=f"d = {d}")
        best = self.best_index_
        ax.plot(
            [results["n_components"][best]],
            [results["criterion"][best]],
            marker="*",
            markersize=16,
            color="black",
            linestyle="none",
            label=(
                f"best: K = {self.best_params_['n_components']}, "
                f"d = {self.best_params_['n_factors']}"
            ),
        )
        ax.set_xlabel("number of components K")
        ax.set_ylabel(f"{self.criterion.upper()} (lower is better)")
        ax.legend()
        return ax


def _grid(values: int | Iterable[int], name: str) -> list[int]:
    """A sorted list of distinct positive integers from an int or an iterable of ints."""
    items = [values] if isinstance(values, int) else list(values)
    checked = []
    for item in items:
        if isinstance(item, bool) or not isinstance(item, int) or item < 1:
            msg = f"{name} must hold positive integers; got {item!r}"
            raise ValueError(msg)
        checked.append(int(item))
    if not checked:
        msg = f"{name} must hold at least one value"
        raise ValueError(msg)
    return sorted(set(checked))


def split_start(estimator: HMoG) -> HMoGParameters:
    """A ``K + 1`` component start: ``estimator``'s widest component split in two.

    The component with the largest ``weight × top eigenvalue`` becomes two with half its
    weight each, at ``μ ± a v`` along its top eigenvector ``v`` (eigenvalue ``λ``,
    ``a = 0.8 √λ``), with covariance ``Σ − a² v vᵀ``: the pair has the component's mean and
    covariance, so the mixture is unchanged in its first two moments.

    Parameters
    ----------
    estimator : HMoG
        A fitted model.

    Returns
    -------
    HMoGParameters
        Generative parameters in the data's units (an ``init`` for :class:`HMoG`).
    """
    xp = B.array_namespace(estimator.weights_)
    weights, means, covariances = estimator.weights_, estimator.means_, estimator.covariances_
    eigenvalues, eigenvectors = xp.linalg.eigh(covariances)  # ascending
    top = eigenvalues[:, -1]
    k = int(xp.argmax(weights * top))
    offset = 0.8 * xp.sqrt(top[k]) * eigenvectors[k, :, -1]
    shrunk = covariances[k, ...] - offset[:, None] * offset[None, :]
    keep = [i for i in range(int(weights.shape[0])) if i != k]
    index = xp.asarray(keep, dtype=xp.int64, device=B.device_of(weights))
    half = weights[k : k + 1] / 2.0
    return HMoGParameters(
        weights=xp.concat([xp.take(weights, index), half, half]),
        means=xp.concat(
            [
                xp.take(means, index, axis=0),
                (means[k] + offset)[None, :],
                (means[k] - offset)[None, :],
            ]
        ),
        covariances=xp.concat(
            [xp.take(covariances, index, axis=0), shrunk[None, ...], shrunk[None, ...]]
        ),
        loadings=estimator.loadings_,
        bias=estimator.bias_,
        noise=estimator.noise_,
    )


def _fit_quietly(estimator: HMoG, X: Any) -> tuple[HMoG, float]:
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported in results_
        estimator.fit(X)
    return estimator, time.perf_counter() - start


def select_model(
    X: Any,
    n_components: int | Iterable[int] = range(1, 9),
    n_factors: int | Iterable[int] | None = None,
    *,
    criterion: str = "bic",
    warm_start: bool = True,
    progress: bool = False,
    **hmog_params: Any,
) -> ModelSelection:
    """Fit :class:`HMoG` over a grid of ``K`` and ``d`` and keep the best by a criterion.

    Parameters
    ----------
    X : array-like or dask.array.Array, shape (n_samples, n_features)
        Data (any supported backend; NaN entries with ``missing='marginalize'``).
    n_components : int or iterable of int, default=range(1, 9)
        The ``K`` to try.
    n_factors : int or iterable of int or None, default=None
        The ``d`` to try (None: ``1 .. min(n_features − 1, 5)``).
    criterion : {'bic', 'icl', 'aic'}, default='bic'
        What ranks the models (lower is better). ``'icl'`` adds twice the assignment
        entropy to BIC, favouring well-separated clusters.
    warm_start : bool, default=True
        Also start every ``K`` from the best ``K − 1`` model (same ``d``) with a component
        split in two, keeping the more likely fit.
    progress : bool, default=False
        Show a progress bar (tqdm) over the grid, when stderr is a terminal.
    **hmog_params
        Any other :class:`HMoG` hyper-parameters (``noise``, ``n_init``, ``random_state``,
        ``missing``, ...).

    Returns
    -------
    ModelSelection
        ``best_estimator_``, ``best_params_``, ``results_`` and ``plot()``.

    Raises
    ------
    ValueError
        For an unknown criterion, an empty or invalid grid, or an invalid HMoG
        hyper-parameter (named, before any fit).
    """
    if criterion not in CRITERIA:
        msg = f"criterion must be one of {CRITERIA}; got {criterion!r}"
        raise ValueError(msg)
    ks = _grid(n_components, "n_components")
    n_features = int(X.shape[1]) if hasattr(X, "shape") else len(X[0])
    ds = _grid(
        range(1, max(1, min(n_features - 1, 5)) + 1) if n_factors is None else n_factors,
        "n_factors",
    )
    template = HMoG(**hmog_params)
    check_hyperparameters(template)  # a bad value fails now, not after hours of fits
    results: dict[str, list[Any]] = {column: [] for column in COLUMNS}
    estimators: list[HMoG] = []
    grid = [(d, k) for d in ds for k in ks]
    bar = _progress_bar(len(grid)) if progress else None
    previous: dict[int, HMoG] = {}  # best fit of the last K for each d
    # Small grids run single-threaded (see HMoG's Notes); Dask arrays keep their scheduler's.
    foreign = hasattr(X, "shape") and hasattr(X, "dtype")  # an array of no hmog_xp backend
    name = template.backend or B.transfer.backend_of_array(X) or (None if foreign else "numpy")
    with B.compute_threads(name, B.threads.step_work(X, max(ks), max(ds))):
        for d, k in grid:
            est, seconds = _fit_quietly(clone(template).set_params(n_components=k, n_factors=d), X)
            neighbour = previous.get(d)
            if warm_start and neighbour is not None and neighbour.n_components == k - 1:
                warm = clone(template).set_params(
                    n_components=k, n_factors=d, init=split_start(neighbour), n_init=1
                )
                warm, warm_seconds = _fit_quietly(warm, X)
                seconds += warm_seconds
                if warm.lower_bound_ > est.lower_bound_:
                    est = warm
            previous[d] = est
            scores = {"bic": est.bic(X), "aic": est.aic(X)}
            entropy = est.assignment_entropy(X) if k > 1 else 0.0
            scores["icl"] = scores["bic"] + 2.0 * entropy
            row = {
                "n_components": k,
                "n_factors": d,
                "criterion": scores[criterion],
                **scores,
                "log_likelihood": float(est.lower_bound_),
                "n_iter": int(est.n_iter_),
                "converged": bool(est.converged_),
                "fit_time": seconds,
            }
            for column in COLUMNS:
                results[column].append(row[column])
            estimators.append(est)
            if bar is not None:
                bar.set_postfix_str(f"K={k} d={d} {criterion}={scores[criterion]:.6g}")
                bar.update(1)
    if bar is not None:
        bar.close()
    if not all(math.isfinite(value) for value in results["criterion"]):
        msg = f"some fits gave a non-finite {criterion}: {results['criterion']}"
        warnings.warn(msg, RuntimeWarning, stacklevel=2)
    return ModelSelection(criterion, results, estimators)


def _progress_bar(total: int) -> Any:
    """A tqdm bar over the grid (None when tqdm is not installed)."""
    try:
        from tqdm.auto import tqdm
    except ImportError:  # pragma: no cover - tqdm is a dependency of the command
        return None
    # disable=None: drawn only on a terminal, so log files get no carriage returns.
    return tqdm(total=total, desc="select_model", unit="fit", disable=None)
