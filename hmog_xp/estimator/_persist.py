"""Saving and loading fitted estimators as backend-neutral ``.npz`` files.

A file holds the natural parameters (``params``) and JSON metadata: a format tag, the
hyper-parameters, the model's shape and the fit's scalars. Loading rebuilds the model from
the metadata, so the parameters can be put on any backend.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from hmog_xp import _backend as B
from hmog_xp._backend.transfer import from_numpy, load_arrays, object_array, save_arrays
from hmog_xp.estimator._training import build_model

if TYPE_CHECKING:
    from hmog_xp.estimator._estimator import HMoG

#: Format tag and version written into every file.
FORMAT = "hmog_xp.HMoG"
VERSION = 1
#: Hyper-parameters not stored as they are: ``init`` only when it is a name, ``random_state``
#: only when it is an int, ``callback`` never.
_NOT_STORED = ("init", "random_state", "callback")


def save(estimator: HMoG, path: str | Path) -> Path:
    """Write a fitted estimator to ``path`` (see the module docstring).

    Parameters
    ----------
    estimator : HMoG
        A fitted estimator.
    path : str or Path
        Destination.

    Returns
    -------
    Path
        The file written.
    """
    params = estimator.get_params()
    hyper = {name: value for name, value in params.items() if name not in _NOT_STORED}
    if isinstance(estimator.init, str):
        hyper["init"] = estimator.init
    if isinstance(estimator.random_state, int):
        hyper["random_state"] = estimator.random_state
    names = getattr(estimator, "feature_names_in_", None)
    p, d = estimator.model_.int_shape
    metadata = {
        "format": FORMAT,
        "version": VERSION,
        "hyperparameters": hyper,
        "model": {"n_features": p, "n_factors": d},
        "fit": {
            "backend": B.backend_name_of(B.array_namespace(estimator.params_)),
            "dtype": _dtype_name(estimator.params_),
            "converged": estimator.converged_,
            "n_iter": estimator.n_iter_,
            "log_likelihood": estimator.log_likelihood_,
            "feature_names": None if names is None else [str(name) for name in names],
        },
    }
    return save_arrays(path, {"params": estimator.params_}, metadata)


def _dtype_name(array: Any) -> str:
    xp = B.array_namespace(array)
    return "float32" if array.dtype == xp.float32 else "float64"


def load(cls: type[HMoG], path: str | Path, *, backend: str | None = None) -> HMoG:
    """Read an estimator written by :func:`save`.

    Parameters
    ----------
    cls : type
        The estimator class.
    path : str or Path
        The file.
    backend : str, optional
        Backend to load into (default: the one it was fitted on).

    Returns
    -------
    HMoG
        A fitted estimator.

    Raises
    ------
    ValueError
        If the file is not a saved ``HMoG`` or its parameters do not fit its metadata.
    """
    arrays, metadata = load_arrays(path)
    if metadata.get("format") != FORMAT or "params" not in arrays:
        msg = f"{path} is not a saved {FORMAT} model"
        raise ValueError(msg)
    if metadata.get("version", 0) > VERSION:
        msg = f"{path} was written by a newer hmog_xp (format version {metadata['version']})"
        raise ValueError(msg)
    hyper = dict(metadata["hyperparameters"])
    fit = metadata["fit"]
    name = backend or hyper.get("backend") or fit["backend"]
    if backend is not None:
        hyper["backend"] = backend
    estimator = cls(**hyper)
    shape = metadata["model"]
    model = build_model(
        hyper["variant"],
        hyper["noise"],
        hyper["latent_rep"],
        shape["n_features"],
        shape["n_factors"],
        hyper["n_components"],
    )
    xp = B.namespace_for(name)
    if fit["dtype"] not in ("float32", "float64"):
        msg = f"{path}: unsupported parameter dtype {fit['dtype']!r}"
        raise ValueError(msg)
    params = xp.astype(from_numpy(arrays["params"], xp), getattr(xp, fit["dtype"]))
    if tuple(params.shape) != (model.dim,):
        msg = f"{path}: parameters of shape {tuple(params.shape)} do not fit {model!r}"
        raise ValueError(msg)
    estimator._set_fitted(model, params, xp)
    estimator.n_features_in_ = shape["n_features"]
    if fit["feature_names"] is not None:
        estimator.feature_names_in_ = object_array(fit["feature_names"])
    estimator.converged_ = bool(fit["converged"])
    estimator.n_iter_ = int(fit["n_iter"])
    estimator.log_likelihood_ = [float(value) for value in fit["log_likelihood"]]
    estimator.lower_bound_ = estimator.log_likelihood_[-1]
    return estimator
