"""The M-step shared by the Dask and online drivers (the same as :func:`hmog_xp.em.em_step`)."""

from __future__ import annotations

from typing import Any

from hmog_xp._errors import ValidationError


def check_em_model(model: Any) -> None:
    """Raise unless ``model`` has closed-form EM (``AnalyticHMoG`` and the like).

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.

    Raises
    ------
    ValidationError
        If the model has no ``expectation_maximization``.
    """
    if not hasattr(model, "expectation_maximization"):
        msg = f"{model!r} has no closed-form EM; train it with fit_gradient"
        raise ValidationError(msg)


def check_regularization(regularization: Any) -> Any:
    """Validate the M-step stabilisers.

    Parameters
    ----------
    regularization : Regularization or tuple or None
        ``(reg_covar, min_variance, min_weight)``, or ``None`` for exact EM.

    Returns
    -------
    Regularization or None
        The checked values, or ``None`` when every stabiliser is zero.
    """
    if regularization is None:
        return None
    from hmog_xp.hmog._regularize import Regularization

    checked = Regularization(*regularization).check()
    return None if checked.is_exact else checked


def regularize(model: Any, means: Any, regularization: Any) -> Any:
    """Apply the explicit stabilisers to mean coordinates.

    Parameters
    ----------
    model : AnalyticHMoG
        The model.
    means : array, shape (dim,)
        Mean coordinates.
    regularization : Regularization or None
        Checked stabilisers (``None``: exact, ``means`` is returned).

    Returns
    -------
    array, shape (dim,)
        Regularised mean coordinates.
    """
    if regularization is None:
        return means
    from hmog_xp.hmog._regularize import regularize_means

    return regularize_means(model, means, regularization)


def m_step(model: Any, means: Any, regularization: Any = None) -> Any:
    """Return ``to_natural(whiten_prior(regularize(means)))``, the M-step of ``em_step``.

    Parameters
    ----------
    model : AnalyticHMoG
        The model.
    means : array, shape (dim,)
        Mean posterior statistics.
    regularization : Regularization or None, optional
        Checked stabilisers (default: exact).

    Returns
    -------
    array, shape (dim,)
        Natural parameters with a whitened latent prior.
    """
    return model.to_natural(model.whiten_prior(regularize(model, means, regularization)))
