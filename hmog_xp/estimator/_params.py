"""Hyper-parameter checks of the estimator (run in ``fit``, never in ``__init__``)."""

from __future__ import annotations

import numbers
from typing import TYPE_CHECKING

from hmog_xp import _backend as B
from hmog_xp.estimator._training import INITS, REPS, VARIANTS, build_model

if TYPE_CHECKING:
    from hmog_xp.estimator._estimator import HMoG
    from hmog_xp.hmog import HierarchicalMixtureOfGaussians


def _integer(name: str, value: object, minimum: int, *, optional: bool = False) -> None:
    if optional and value is None:
        return
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        msg = f"{name} must be an int >= {minimum}; got {value!r}"
        raise ValueError(msg)


def _real(name: str, value: object, *, positive: bool = False) -> None:
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool)
    if ok:
        number = float(value)  # type: ignore[arg-type]
        ok = (number > 0.0 if positive else number >= 0.0) and number < float("inf")
    if not ok:
        bound = "> 0" if positive else ">= 0"
        msg = f"{name} must be a finite number {bound}; got {value!r}"
        raise ValueError(msg)


def _choice(name: str, value: object, options: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in options:
        msg = f"{name} must be one of {list(options)}; got {value!r}"
        raise ValueError(msg)


def check_hyperparameters(estimator: HMoG) -> None:
    """Validate every hyper-parameter with a message naming it and what it accepts.

    Parameters
    ----------
    estimator : HMoG
        The estimator.

    Raises
    ------
    ValueError
        For the first invalid hyper-parameter (``BackendError``, a ``ValueError``, for an
        unknown or missing backend).
    """
    _integer("n_components", estimator.n_components, 1)
    _integer("n_factors", estimator.n_factors, 1, optional=True)
    _choice("noise", estimator.noise, tuple(REPS))
    _choice("variant", estimator.variant, VARIANTS)
    _choice("latent_rep", estimator.latent_rep, tuple(REPS))
    _integer("max_iter", estimator.max_iter, 1)
    _real("tol", estimator.tol)
    _integer("n_init", estimator.n_init, 1)
    if isinstance(estimator.init, str):
        _choice("init", estimator.init, INITS)
    _real("reg_covar", estimator.reg_covar)
    _real("noise_floor", estimator.noise_floor)
    _real("learning_rate", estimator.learning_rate, positive=True)
    _integer("batch_size", estimator.batch_size, 1, optional=True)
    _real("learning_offset", estimator.learning_offset, positive=True)
    decay = estimator.learning_decay
    if isinstance(decay, bool) or not isinstance(decay, numbers.Real) or not 0.5 < decay <= 1:
        msg = f"learning_decay must be in (0.5, 1]; got {decay!r}"
        raise ValueError(msg)
    _integer("verbose", estimator.verbose, 0)
    _integer("verbose_interval", estimator.verbose_interval, 1)
    if estimator.callback is not None and not callable(estimator.callback):
        msg = f"callback must be callable or None; got {estimator.callback!r}"
        raise ValueError(msg)
    if estimator.backend is not None:
        B.namespace_for(estimator.backend)  # BackendError listing what is installed


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
        If ``n_samples < n_components`` or ``d >= n_features``.
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
        The estimator.
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
        estimator.n_components,
    )
