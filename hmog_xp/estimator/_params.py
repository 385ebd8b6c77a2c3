"""Hyper-parameter checks of the estimator (run at the start of ``fit``, never in ``__init__``).

scikit-learn keeps hyper-parameters exactly as they were set (``clone`` and ``GridSearchCV``
rely on it), so NumPy scalars from ``np.arange`` or ``np.linspace`` grids reach ``fit`` as
they are. :func:`check_hyperparameters` accepts NumPy integer and floating scalars (and 0-d
NumPy arrays) wherever a Python ``int`` or ``float`` is accepted, refuses every value that
cannot work, by name, before any data are touched, and returns a copy of the estimator whose
hyper-parameters are plain Python values: that copy is what the model factories, the
training loops and the saved metadata see. As in scikit-learn, an integer hyper-parameter
refuses bools and floats (``3.0``); a real one accepts integers and refuses bools, NaN,
infinities and strings.

``reg_covar`` and ``noise_floor`` act in the coordinates the estimator fits in (unit-free),
so their bounds do not depend on the data's units: ``noise_floor`` must be positive (a
constant column has no other noise), ``reg_covar`` may be zero.
"""

from __future__ import annotations

import math
import numbers
import operator
from typing import TYPE_CHECKING, Any

from sklearn.utils import check_random_state

from hmog_xp import _backend as B
from hmog_xp._lbfgs import SOLVERS
from hmog_xp.estimator._training import INITS, MISSING, REPS, VARIANTS, build_model
from hmog_xp.hmog import HMoGParameters

if TYPE_CHECKING:
    from hmog_xp.estimator._estimator import HMoG
    from hmog_xp.hmog import HierarchicalMixtureOfGaussians

__all__ = ["as_int", "check_hyperparameters", "model_for", "n_factors_for"]


def _is_bool(value: object) -> bool:
    """Whether ``value`` is a Python, NumPy or other backend's boolean (scalar or 0-d)."""
    return isinstance(value, bool) or "bool" in str(getattr(value, "dtype", ""))


def as_int(name: str, value: object, minimum: int) -> int:
    """Return ``value`` as a Python ``int`` if it is an integer ``>= minimum``.

    Parameters
    ----------
    name : str
        The parameter's name (for the message).
    value : object
        A Python or NumPy integer, or a 0-d integer array.
    minimum : int
        Smallest accepted value.

    Returns
    -------
    int
        The value.

    Raises
    ------
    ValueError
        For bools, floats (even integral ones), strings, other objects, or too small values.
    """
    try:
        number = None if _is_bool(value) else operator.index(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        number = None
    if number is None or number < minimum:
        msg = f"{name} must be an int >= {minimum}; got {value!r}"
        raise ValueError(msg)
    return int(number)


def _optional_int(name: str, value: object, minimum: int) -> int | None:
    return None if value is None else as_int(name, value, minimum)


def _as_number(value: object) -> float | None:
    """Python ``float`` of a real scalar (Python, NumPy, or 0-d NumPy array); None otherwise."""
    if _is_bool(value) or isinstance(value, (str, bytes)):
        return None
    if isinstance(value, numbers.Real):
        return float(value)
    kind = getattr(getattr(value, "dtype", None), "kind", None)
    if getattr(value, "shape", None) == () and kind in ("i", "u", "f"):
        return float(value)  # type: ignore[arg-type]
    return None


def _real(name: str, value: object, *, positive: bool = False) -> float:
    number = _as_number(value)
    if number is None or not math.isfinite(number) or number < 0.0 or (positive and number == 0):
        bound = "> 0" if positive else ">= 0"
        msg = f"{name} must be a finite number {bound}; got {value!r}"
        raise ValueError(msg)
    return number


def _flag(name: str, value: object) -> bool:
    """Check a boolean hyper-parameter (True, False or a NumPy bool)."""
    if not _is_bool(value):
        msg = f"{name} must be True or False; got {value!r}"
        raise ValueError(msg)
    return bool(value)


def _choice(name: str, value: object, options: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in options:
        msg = f"{name} must be one of {list(options)}; got {value!r}"
        raise ValueError(msg)
    return str(value)


def _check_init(init: object) -> object:
    """Check the form of ``init`` (its size is checked against the model in ``fit``)."""
    message = (
        "init must be 'kmeans++', 'random', a callable, HMoGParameters, a dict of the "
        f"generative fields {list(HMoGParameters._fields)} or a 1-D array of natural "
        f"parameters; got "
    )
    if isinstance(init, str):
        return _choice("init", init, INITS)
    if callable(init) or isinstance(init, HMoGParameters):
        return init
    if isinstance(init, dict):
        if set(init) != set(HMoGParameters._fields):
            msg = f"{message}a dict with keys {sorted(map(str, init))}"
            raise ValueError(msg)
        return init
    if getattr(init, "ndim", None) == 1:
        return init
    msg = f"{message}{type(init).__name__} {getattr(init, 'shape', '')}".rstrip()
    raise ValueError(msg)


def _check_random_state(value: object) -> object:
    if value is None:
        return None
    if not _is_bool(value) and not isinstance(value, (str, bytes)):
        try:
            seed = operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            seed = None
        if seed is not None and 0 <= seed < 2**32:
            return int(seed)
        if seed is None and _is_random_state(value):
            return value  # kept, not copied: it advances as the caller expects
    msg = f"random_state must be None, an int in [0, 2**32) or a RandomState; got {value!r}"
    raise ValueError(msg)


def _is_random_state(value: object) -> bool:
    try:
        return check_random_state(value) is value
    except (TypeError, ValueError):
        return False


def _check_backend(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        msg = f"backend must be a backend name or None; got {value!r}"
        raise ValueError(msg)
    B.namespace_for(value)  # BackendError naming the backend and listing what is installed
    return str(value)


def check_hyperparameters(estimator: HMoG) -> HMoG:
    """Validate every hyper-parameter and return them as plain Python values.

    Parameters
    ----------
    estimator : HMoG
        The estimator (not modified).

    Returns
    -------
    HMoG
        An unfitted copy of ``estimator`` whose hyper-parameters are Python ``int``,
        ``float``, ``str`` or ``None`` (``init``, ``callback`` and a ``RandomState`` are
        shared, not copied).

    Raises
    ------
    ValueError
        For the first invalid hyper-parameter, naming it and what it accepts
        (``BackendError``, a ``ValueError``, for an unknown or missing backend).
    """
    decay = _as_number(estimator.learning_decay)
    if decay is None or not 0.5 < decay <= 1.0:
        msg = f"learning_decay must be in (0.5, 1]; got {estimator.learning_decay!r}"
        raise ValueError(msg)
    if estimator.callback is not None and not callable(estimator.callback):
        msg = f"callback must be callable or None; got {estimator.callback!r}"
        raise ValueError(msg)
    verbose = estimator.verbose
    plain = {
        "n_components": as_int("n_components", estimator.n_components, 1),
        "n_factors": _optional_int("n_factors", estimator.n_factors, 1),
        "noise": _choice("noise", estimator.noise, tuple(REPS)),
        "variant": _choice("variant", estimator.variant, VARIANTS),
        "latent_rep": _choice("latent_rep", estimator.latent_rep, tuple(REPS)),
        "missing": _choice("missing", estimator.missing, MISSING),
        "max_iter": as_int("max_iter", estimator.max_iter, 1),
        "tol": _real("tol", estimator.tol),
        "accelerate": _flag("accelerate", estimator.accelerate),
        "n_init": as_int("n_init", estimator.n_init, 1),
        "init": _check_init(estimator.init),
        "reg_covar": _real("reg_covar", estimator.reg_covar),
        "noise_floor": _real("noise_floor", estimator.noise_floor, positive=True),
        "learning_rate": _real("learning_rate", estimator.learning_rate, positive=True),
        "batch_size": _optional_int("batch_size", estimator.batch_size, 1),
        "solver": _choice("solver", estimator.solver, SOLVERS),
        "learning_offset": _real("learning_offset", estimator.learning_offset, positive=True),
        "learning_decay": decay,
        "backend": _check_backend(estimator.backend),
        "random_state": _check_random_state(estimator.random_state),
        # Like scikit-learn's, ``verbose`` also takes a bool.
        "verbose": int(bool(verbose)) if _is_bool(verbose) else as_int("verbose", verbose, 0),
        "verbose_interval": as_int("verbose_interval", estimator.verbose_interval, 1),
    }
    check_missing_settings(plain)
    return type(estimator)(**{**estimator.get_params(deep=False), **plain})


def check_missing_settings(settings: dict[str, Any]) -> None:
    """Refuse the settings that cannot marginalise missing entries, naming them.

    Parameters
    ----------
    settings : dict
        Hyper-parameters (``missing``, ``variant``, ``noise``).

    Raises
    ------
    ValueError
        For ``missing='marginalize'`` with a gradient-trained variant or full noise.
    """
    plain = settings
    if plain["missing"] != "marginalize":
        return
    if plain["variant"] != "analytic":
        msg = (
            f"missing='marginalize' needs variant='analytic' (EM on the observed entries); "
            f"got variant={plain['variant']!r}"
        )
        raise ValueError(msg)
    if plain["noise"] == "full":
        msg = "missing='marginalize' needs noise='diagonal' or 'isotropic'; got noise='full'"
        raise ValueError(msg)


def n_factors_for(estimator: HMoG, n_samples: int, n_features: int) -> int:
    """Resolve ``n_factors`` for data of this size and check the data are large enough.

    Parameters
    ----------
    estimator : HMoG
        The estimator.
    n_samples : int
        Number of samples.
    n_features : int
        Number of features.

    Returns
    -------
    int
        The latent dimension ``d`` (``min(n_features - 1, 10)`` when ``n_factors`` is None).

    Raises
    ------
    ValueError
        If ``n_samples < n_components``, ``d >= n_features`` or ``batch_size > n_samples``.
    """
    if n_samples < estimator.n_components:
        msg = (
            f"Expected n_samples >= n_components; got n_samples={n_samples} and "
            f"n_components={estimator.n_components}"
        )
        raise ValueError(msg)
    n_factors = estimator.n_factors
    if n_factors is None:
        n_factors = min(n_features - 1, 10)
    if not 1 <= n_factors < n_features:
        msg = (
            f"n_factors must satisfy 1 <= n_factors < n_features; got n_factors={n_factors} "
            f"and n_features={n_features} (factor analysis needs at least 2 features)"
        )
        raise ValueError(msg)
    if estimator.batch_size is not None and estimator.batch_size > n_samples:
        msg = f"batch_size={estimator.batch_size} exceeds n_samples={n_samples}"
        raise ValueError(msg)
    return int(n_factors)


def model_for(
    estimator: HMoG, n_samples: int, n_features: int, variant: str | None = None
) -> HierarchicalMixtureOfGaussians:
    """Build the model of the estimator's hyper-parameters for data of this size.

    Parameters
    ----------
    estimator : HMoG
        The estimator, as returned by :func:`check_hyperparameters` (Python values).
    n_samples : int
        Number of samples (checked by :func:`n_factors_for`).
    n_features : int
        Number of features.
    variant : str, optional
        Override of ``estimator.variant``.

    Returns
    -------
    HierarchicalMixtureOfGaussians
        The model.
    """
    n_factors = n_factors_for(estimator, n_samples, n_features)
    return build_model(
        variant or estimator.variant,
        estimator.noise,
        estimator.latent_rep,
        n_features,
        n_factors,
        int(estimator.n_components),
    )
