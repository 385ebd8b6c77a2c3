"""The M-step pieces shared by the Dask and online drivers (see :func:`hmog_xp.em.m_step`)."""

from __future__ import annotations

from typing import Any

from hmog_xp.em import check_em_model, m_step

__all__ = ["check_em_model", "check_regularization", "m_step", "regularize"]


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
