"""The machine-readable summary of ``--json``, and the column names saved with a model."""

from __future__ import annotations

import json
import pathlib
import sys
from collections.abc import Sequence
from typing import Any

import numpy as np

from hmog_xp.cli._io import write_text

__all__ = ["model_summary", "save_with_names", "write_json"]


def model_summary(
    estimator: Any, data: Any, scores: tuple[float, float] | None = None
) -> dict[str, Any]:
    """Collect a fitted model's settings and its fit to ``data`` as JSON-ready values.

    Parameters
    ----------
    estimator : HMoG
        The fitted estimator.
    data : array, shape (N, p)
        The observations (in the estimator's backend).
    scores : tuple of float, optional
        The average log-likelihood and the BIC of ``data`` when already computed.

    Returns
    -------
    dict
        ``settings`` (the hyper-parameters), ``n_samples``, ``n_features``,
        ``log_likelihood`` (average per observation), ``bic``, ``converged`` and ``n_iter``.
    """
    keys = ("n_components", "n_factors", "noise", "variant", "max_iter", "tol", "n_init")
    settings = {key: getattr(estimator, key) for key in keys}
    settings |= {
        "reg_covar": float(estimator.reg_covar),
        "random_state": estimator.random_state if isinstance(estimator.random_state, int) else None,
        "backend": estimator.backend,
        "missing": getattr(estimator, "missing", "error"),
    }
    if scores is None:
        scores = float(estimator.score(data)), float(estimator.bic(data))
    return {
        "settings": settings,
        "n_samples": int(data.shape[0]),
        "n_features": int(data.shape[1]),
        "log_likelihood": scores[0],
        "bic": scores[1],
        "converged": bool(estimator.converged_),
        "n_iter": int(estimator.n_iter_),
    }


def write_json(target: str, payload: dict[str, Any]) -> None:
    """Write a summary as JSON to a file, or to stdout when ``target`` is ``'-'``.

    Parameters
    ----------
    target : str
        The ``--json`` argument: a file name, or ``'-'`` for stdout.
    payload : dict
        JSON-ready values.
    """
    text = json.dumps(payload, indent=2, sort_keys=False) + "\n"
    if target == "-":
        sys.stdout.write(text)
        sys.stdout.flush()
    else:
        write_text(target, text)


def save_with_names(estimator: Any, path: str | pathlib.Path, names: Sequence[str] | None) -> str:
    """Save a fitted model with its feature columns' names (when they are distinct).

    ``HMoG.save`` keeps ``feature_names_in_``; it is set for the save only, since scikit-learn
    warns when a model with names is given an unnamed array.

    Parameters
    ----------
    estimator : HMoG
        The fitted estimator.
    path : str or path
        The model file.
    names : sequence of str, optional
        The feature columns' header names; None when the file has none.

    Returns
    -------
    str
        The file written.
    """
    pathlib.Path(path).parent.mkdir(parents=True, exist_ok=True)
    if names is None or len(set(names)) != len(names):
        return str(estimator.save(path))
    estimator.feature_names_in_ = np.asarray(list(names), dtype=object)
    try:
        return str(estimator.save(path))
    finally:
        del estimator.feature_names_in_
