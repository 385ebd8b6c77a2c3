"""Input handling of the estimator: array-likes in, the compute backend's arrays out.

Arrays of a supported backend keep their namespace (the estimator answers in it); anything
else (lists, pandas frames, NumPy arrays) goes through scikit-learn's ``validate_data``, which
gives the messages scikit-learn users know (NaN, sparse, complex, feature names and counts).
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

from sklearn.utils.validation import validate_data

from hmog_xp import _backend as B
from hmog_xp._backend.transfer import backend_of_array, from_numpy, to_numpy, transfer

#: Backends whose arrays are validated by hmog_xp itself (no host copy).
_NATIVE = ("array_api_strict", "jax", "torch", "cupy")


def caller_namespace(X: Any) -> ModuleType:
    """Return the namespace results for ``X`` should be given in (NumPy for array-likes).

    Parameters
    ----------
    X : array or array-like
        The caller's data.

    Returns
    -------
    module
        Namespace of ``X`` when it is a supported backend's array, else NumPy's.
    """
    name = backend_of_array(X)
    return B.namespace_for(name if name in _NATIVE else "numpy")


def check_finite(X: Any, *, missing: bool) -> None:
    """Refuse infinities always, and NaN unless they mark missing entries.

    Parameters
    ----------
    X : array, shape (n_samples, n_features)
        Floating data.
    missing : bool
        Whether NaN entries are missing values (``missing='marginalize'``).

    Raises
    ------
    ValueError
        For an infinite entry, or a NaN one when ``missing`` is False (the message names
        ``missing='marginalize'``).
    """
    xp = B.array_namespace(X)
    if bool(xp.all(xp.isfinite(X))):
        return
    if bool(xp.any(xp.isinf(X))):
        msg = "Input X contains infinity (only NaN marks a missing entry)"
        raise ValueError(msg)
    if not missing:
        msg = (
            "Input X contains NaN; to fit and score the observed entries, treating NaN as "
            "missing at random, use missing='marginalize'"
        )
        raise ValueError(msg)


def _check_native(estimator: Any, X: Any, *, reset: bool) -> Any:
    """Validate a supported backend's array the way ``validate_data`` validates NumPy input."""
    xp = B.array_namespace(X)
    name = type(estimator).__name__
    if X.ndim != 2:
        msg = (
            f"Expected 2D array, got {X.ndim}D array instead; reshape your data to "
            f"(n_samples, n_features)"
        )
        raise ValueError(msg)
    if xp.isdtype(X.dtype, "complex floating"):
        msg = "Complex data not supported"
        raise ValueError(msg)
    if not xp.isdtype(X.dtype, "real floating"):
        X = xp.astype(X, B.default_float_dtype(xp))
    if X.shape[0] < 1 or X.shape[1] < 1:
        msg = f"Found array with shape {tuple(X.shape)}; {name} needs at least 1 sample and feature"
        raise ValueError(msg)
    if reset:
        estimator.n_features_in_ = int(X.shape[1])
        if hasattr(estimator, "feature_names_in_"):
            del estimator.feature_names_in_
    elif X.shape[1] != estimator.n_features_in_:
        msg = (
            f"X has {X.shape[1]} features, but {name} is expecting "
            f"{estimator.n_features_in_} features as input"
        )
        raise ValueError(msg)
    return X


def check_data(
    estimator: Any,
    X: Any,
    *,
    reset: bool,
    xp: ModuleType,
    dtype: Any = None,
    missing: bool | None = None,
) -> tuple[Any, ModuleType]:
    """Validate ``X`` and move it to the compute namespace ``xp``.

    Parameters
    ----------
    estimator : HMoG
        The estimator (``n_features_in_`` / ``feature_names_in_`` are set when ``reset``).
    X : array or array-like, shape (n_samples, n_features)
        Data.
    reset : bool
        Whether this is ``fit`` (record the feature count) or a later call (check it).
    xp : module
        Compute namespace.
    dtype : dtype, optional
        Floating dtype in ``xp`` (default: float32 input stays float32, else the
        namespace's default float).
    missing : bool, optional
        Whether NaN entries are missing values (default: the estimator's
        ``missing == 'marginalize'``).

    Returns
    -------
    xs : array, shape (n_samples, n_features)
        Floating data in ``xp``: finite, or NaN where an entry is missing.
    caller_xp : module
        The namespace results should be returned in.

    Raises
    ------
    ValueError
        For data that are not a 2-D real matrix (finite but for missing entries), or have
        the wrong feature count.
    """
    if missing is None:
        missing = getattr(estimator, "missing", "error") == "marginalize"
    caller_xp = caller_namespace(X)
    if backend_of_array(X) in _NATIVE:
        checked = _check_native(estimator, X, reset=reset)
        check_finite(checked, missing=missing)
        float32 = checked.dtype == caller_xp.float32
        xs = transfer(checked, xp)
    else:
        host = validate_data(
            estimator, X, reset=reset, dtype=("float64", "float32"), ensure_all_finite="allow-nan"
        )
        check_finite(host, missing=missing)
        float32 = host.dtype.name == "float32"
        xs = from_numpy(host, xp)
    if dtype is None:
        dtype = xp.float32 if float32 else B.default_float_dtype(xp)
    if xs.dtype != dtype:
        xs = xp.astype(xs, dtype)
    return xs, caller_xp


def check_fit_data(estimator: Any, X: Any) -> tuple[Any, ModuleType]:
    """Validate training data and move it to the compute namespace (``backend`` or ``X``'s).

    Parameters
    ----------
    estimator : HMoG
        The estimator (``n_features_in_`` is recorded).
    X : array or array-like, shape (n_samples, n_features)
        Training data.

    Returns
    -------
    xs : array, shape (n_samples, n_features)
        The data in the compute namespace.
    caller_xp : module
        The namespace results should be returned in.
    """
    backend = estimator.backend
    xp = B.get_namespace(backend) if backend else caller_namespace(X)
    return check_data(estimator, X, reset=True, xp=xp)


def to_caller(value: Any, caller_xp: ModuleType) -> Any:
    """Return a result in the caller's namespace.

    Parameters
    ----------
    value : array
        A result in the compute namespace.
    caller_xp : module
        The namespace of the caller's data.

    Returns
    -------
    array
        The same values in ``caller_xp``.
    """
    if B.backend_name_of(caller_xp) == "numpy":
        return to_numpy(value)
    return transfer(value, caller_xp)
