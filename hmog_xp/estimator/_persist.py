"""Saving and loading fitted estimators as backend-neutral ``.npz`` files.

A file holds the arrays of :data:`ARRAYS` (the natural parameters ``params``, and any
optional array the estimator has) and JSON metadata: a format tag, the hyper-parameters, the
model's shape and the fit's scalars (:data:`METADATA`). Saving replaces the file atomically.
Loading checks everything before it builds anything: the archive, every metadata field's
type, the hyper-parameters, each array's dtype, shape and finiteness, and that the
parameters describe a distribution (a finite log-partition function). Any problem raises
:class:`~hmog_xp.ModelFileError` naming the file and what is wrong. Both tables drive saving
and loading alike, so a new stored array or field is one line.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._backend.transfer import from_numpy, load_arrays, object_array, save_arrays
from hmog_xp._errors import BackendError
from hmog_xp._files import ModelFileError
from hmog_xp._validation import validation
from hmog_xp.estimator._params import check_hyperparameters
from hmog_xp.estimator._training import build_model
from hmog_xp.hmog import Standardization

if TYPE_CHECKING:
    from hmog_xp.estimator._estimator import HMoG
    from hmog_xp.hmog import HierarchicalMixtureOfGaussians

#: Format tag and version written into every file.
FORMAT = "hmog_xp.HMoG"
#: 2: parameters of the standardised data plus ``location`` and ``scale``.
VERSION = 2
#: Hyper-parameters not stored as they are: ``init`` only when it is a name, ``random_state``
#: only when it is an int, ``callback`` never.
_NOT_STORED = ("init", "random_state", "callback")
_DTYPES = ("float32", "float64")


class Shape(NamedTuple):
    """The dimensions a saved model's arrays are checked against.

    Attributes
    ----------
    n_features : int
        ``p``.
    n_factors : int
        ``d``.
    n_components : int
        ``K``.
    dim : int
        Length of the natural parameter vector.
    """

    n_features: int
    n_factors: int
    n_components: int
    dim: int


@dataclass(frozen=True)
class StoredArray:  # numpydoc ignore=PR02
    """One array of a saved file: where it lives on the estimator and what it must be.

    Parameters
    ----------
    name : str
        Key in the file.
    attribute : str
        Estimator attribute saved (skipped when absent or None, if optional) and restored
        (before the fitted state is rebuilt from ``params_``).
    shape : callable
        ``shape(Shape) -> tuple of int``, the expected shape.
    required : bool
        Whether a file must hold it (an optional array may be missing, e.g. in older files).
    positive : bool
        Whether every entry must be > 0.
    """

    name: str
    attribute: str
    shape: Callable[[Shape], tuple[int, ...]]
    required: bool = True
    positive: bool = False


#: The arrays of a saved file: the natural parameters of the standardised data and the
#: standardisation (version 1 files hold data-unit parameters and no standardisation).
ARRAYS: tuple[StoredArray, ...] = (
    StoredArray("params", "_standard_params", lambda s: (s.dim,)),
    StoredArray("location", "location_", lambda s: (s.n_features,), required=False),
    StoredArray("scale", "scale_", lambda s: (s.n_features,), required=False, positive=True),
)


def _is_int(value: object, minimum: int) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= minimum


def _mapping(value: object) -> str | None:
    return None if isinstance(value, dict) else "a JSON object"


def _positive(value: object) -> str | None:
    return None if _is_int(value, 1) else "an integer >= 1"


def _count(value: object) -> str | None:
    return None if _is_int(value, 0) else "an integer >= 0"


def _flag(value: object) -> str | None:
    return None if isinstance(value, bool) else "true or false"


def _numbers(value: object) -> str | None:
    ok = isinstance(value, list) and len(value) > 0
    if isinstance(value, list):
        ok = ok and all(
            isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)
            for v in value
        )
    return None if ok else "a non-empty list of finite numbers"


def _names(value: object) -> str | None:
    ok = value is None or (isinstance(value, list) and all(isinstance(v, str) for v in value))
    return None if ok else "null or a list of strings"


def _one_of(options: tuple[str, ...]) -> Callable[[object], str | None]:
    def check(value: object) -> str | None:
        return None if isinstance(value, str) and value in options else f"one of {list(options)}"

    return check


#: Metadata fields (dotted paths into the JSON) and their checks: each returns None when the
#: value is fine, else what it should be. Objects come before their fields.
METADATA: tuple[tuple[str, Callable[[object], str | None]], ...] = (
    ("hyperparameters", _mapping),
    ("model", _mapping),
    ("model.n_features", _positive),
    ("model.n_factors", _positive),
    ("fit", _mapping),
    ("fit.backend", _one_of(B.BACKEND_NAMES)),
    ("fit.dtype", _one_of(_DTYPES)),
    ("fit.converged", _flag),
    ("fit.n_iter", _count),
    ("fit.log_likelihood", _numbers),
    ("fit.feature_names", _names),
)


def _field(metadata: dict[str, Any], key: str) -> Any:
    value: Any = metadata
    for part in key.split("."):
        value = value[part]
    return value


def save(estimator: HMoG, path: str | Path) -> Path:
    """Write a fitted estimator to ``path`` (see the module docstring).

    Parameters
    ----------
    estimator : HMoG
        A fitted estimator.
    path : str or Path
        Destination; replaced atomically.

    Returns
    -------
    Path
        The file written.
    """
    plain = check_hyperparameters(estimator)  # NumPy scalars as Python numbers (JSON)
    params = plain.get_params()
    hyper = {name: value for name, value in params.items() if name not in _NOT_STORED}
    if isinstance(plain.init, str):
        hyper["init"] = plain.init
    if isinstance(plain.random_state, int):
        hyper["random_state"] = plain.random_state
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
    arrays = {spec.name: getattr(estimator, spec.attribute, None) for spec in ARRAYS}
    stored = {name: value for name, value in arrays.items() if value is not None}
    return save_arrays(path, stored, metadata)


def _dtype_name(array: Any) -> str:
    xp = B.array_namespace(array)
    return "float32" if array.dtype == xp.float32 else "float64"


def _check_metadata(metadata: dict[str, Any], path: str | Path) -> None:
    if metadata.get("format") != FORMAT:
        msg = f"{path}: not a saved {FORMAT} model (format tag {metadata.get('format')!r})"
        raise ModelFileError(msg)
    version = metadata.get("version")
    if not isinstance(version, int) or not _is_int(version, 1):
        msg = f"{path}: metadata field 'version' must be an integer >= 1; got {version!r}"
        raise ModelFileError(msg)
    if version > VERSION:
        msg = f"{path}: written by a newer hmog_xp (format version {version} > {VERSION})"
        raise ModelFileError(msg)
    for key, check in METADATA:
        try:
            value = _field(metadata, key)
        except KeyError:
            msg = f"{path}: metadata field {key!r} is missing"
            raise ModelFileError(msg) from None
        expected = check(value)
        if expected is not None:
            msg = f"{path}: metadata field {key!r} must be {expected}; got {value!r}"
            raise ModelFileError(msg)
    names = _field(metadata, "fit.feature_names")
    if names is not None and len(names) != _field(metadata, "model.n_features"):
        msg = f"{path}: {len(names)} feature names for {metadata['model']['n_features']} features"
        raise ModelFileError(msg)


def _estimator_from(
    cls: type[HMoG], hyper: dict[str, Any], path: str | Path, backend: str | None
) -> HMoG:
    known = set(cls().get_params())
    unknown = sorted(str(name) for name in hyper if name not in known or name == "callback")
    if unknown:
        msg = f"{path}: unknown hyper-parameter(s) {unknown} in the metadata"
        raise ModelFileError(msg)
    for name, kind in (("init", str), ("random_state", int)):
        if name in hyper and (not isinstance(hyper[name], kind) or isinstance(hyper[name], bool)):
            msg = f"{path}: saved hyper-parameter {name!r} must be a {kind.__name__}"
            raise ModelFileError(msg)
    if backend is not None:
        hyper = {**hyper, "backend": backend}
    estimator = cls(**hyper)
    try:
        check_hyperparameters(estimator)
    except BackendError:
        raise
    except ValueError as exc:
        msg = f"{path}: invalid saved hyper-parameter: {exc}"
        raise ModelFileError(msg) from None
    return estimator


def _model_from(
    estimator: HMoG, model_meta: dict[str, Any], path: str | Path
) -> tuple[HierarchicalMixtureOfGaussians, Shape]:
    p, d, K = model_meta["n_features"], model_meta["n_factors"], estimator.n_components
    if estimator.n_factors is not None and estimator.n_factors != d:
        msg = f"{path}: hyper-parameter n_factors={estimator.n_factors} but the model has d={d}"
        raise ModelFileError(msg)
    if not d < p:
        msg = f"{path}: n_factors={d} must be smaller than n_features={p}"
        raise ModelFileError(msg)
    model = build_model(estimator.variant, estimator.noise, estimator.latent_rep, p, d, K)
    return model, Shape(p, d, K, int(model.dim))


def _check_arrays(arrays: dict[str, Any], shape: Shape, path: str | Path) -> None:
    unexpected = sorted(set(arrays) - {spec.name for spec in ARRAYS})
    if unexpected:
        msg = f"{path}: unexpected array(s) {unexpected} in the file"
        raise ModelFileError(msg)
    for spec in ARRAYS:
        if spec.name not in arrays:
            if spec.required:
                msg = f"{path}: the array {spec.name!r} is missing"
                raise ModelFileError(msg)
            continue
        value, expected = arrays[spec.name], spec.shape(shape)
        if value.dtype.kind != "f":
            msg = f"{path}: the array {spec.name!r} holds {value.dtype} values, not floats"
            raise ModelFileError(msg)
        if tuple(value.shape) != expected:
            msg = (
                f"{path}: the array {spec.name!r} has shape {tuple(value.shape)}, expected "
                f"{expected} for n_features={shape.n_features}, n_factors={shape.n_factors}, "
                f"n_components={shape.n_components}"
            )
            raise ModelFileError(msg)
        if not bool((abs(value) < math.inf).all()):
            msg = f"{path}: the array {spec.name!r} holds non-finite values"
            raise ModelFileError(msg)
        if spec.positive and not bool((value > 0).all()):
            msg = f"{path}: the array {spec.name!r} must be positive"
            raise ModelFileError(msg)


def _check_distribution(
    model: HierarchicalMixtureOfGaussians, params: Any, path: str | Path
) -> None:
    """Refuse parameters that do not describe a distribution (on the host, in float64)."""
    try:
        with validation(True):
            value = float(model.log_partition_function(params))
    except ValueError as exc:  # ValidationError, or a failed factorisation (LinAlgError)
        msg = f"{path}: the saved parameters do not describe a distribution: {exc}"
        raise ModelFileError(msg) from None
    if not math.isfinite(value):
        msg = f"{path}: the saved parameters do not describe a distribution (log-partition {value})"
        raise ModelFileError(msg)


def load(cls: type[HMoG], path: str | Path, *, backend: str | None = None) -> HMoG:
    """Read an estimator written by :func:`save`, checking everything first.

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
    FileNotFoundError
        If the file does not exist.
    ModelFileError
        (a ``ValueError``) If the file is not a saved ``HMoG``, is damaged, or its arrays and
        metadata do not agree or do not describe a distribution.
    BackendError
        If the backend (given, or the one it was fitted on) is not installed.
    """
    arrays, metadata = load_arrays(path)
    _check_metadata(metadata, path)
    fit = metadata["fit"]
    estimator = _estimator_from(cls, metadata["hyperparameters"], path, backend)
    model, shape = _model_from(estimator, metadata["model"], path)
    _check_arrays(arrays, shape, path)
    host = B.namespace_for("numpy")
    _check_distribution(model, host.astype(arrays["params"], host.float64), path)
    xp = B.namespace_for(estimator.backend or fit["backend"])
    dtype = getattr(xp, fit["dtype"])
    restored = {name: xp.astype(from_numpy(value, xp), dtype) for name, value in arrays.items()}
    for spec in ARRAYS:
        if spec.name in restored:
            setattr(estimator, spec.attribute, restored[spec.name])
    standardization = None
    if "location" in restored and "scale" in restored:
        standardization = Standardization(restored["location"], restored["scale"])
    estimator._set_fitted(model, restored["params"], xp, standardization)
    estimator.n_features_in_ = shape.n_features
    if fit["feature_names"] is not None:
        estimator.feature_names_in_ = object_array(fit["feature_names"])
    estimator.converged_ = fit["converged"]
    estimator.n_iter_ = fit["n_iter"]
    estimator.log_likelihood_ = [float(value) for value in fit["log_likelihood"]]
    # EM returns its last iterate, gradient training the best one it saw.
    history = estimator.log_likelihood_
    estimator.lower_bound_ = history[-1] if estimator.variant == "analytic" else max(history)
    return estimator
