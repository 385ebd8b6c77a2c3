"""Data with missing entries in the estimator: detection, checks, the EM model, the starts.

With ``missing='marginalize'`` and NaN in the training data, ``fit`` checks that every row
and column has an observed entry, standardises on the observed entries, starts from the data
with each NaN at its column's mean, and runs EM through :class:`~hmog_xp.MarginalizedHMoG`
(grouped by missingness pattern where that pays); log-likelihoods in the data's units shift
each row by the log-Jacobian of its own observed columns.
"""

from __future__ import annotations

from typing import Any

from hmog_xp import _backend as B
from hmog_xp.hmog import (
    HierarchicalMixtureOfGaussians,
    MarginalizedHMoG,
    MissingPatterns,
    Standardization,
    worthwhile_patterns,
)

__all__ = [
    "average_log_density_shift",
    "check_observed_columns",
    "has_missing_entries",
    "marginalized_model",
    "mean_filled",
]


def has_missing_entries(xs: Any) -> bool:
    """Whether the data hold a NaN entry (a missing value, for ``missing='marginalize'``).

    Parameters
    ----------
    xs : array, shape (N, p)
        Data.

    Returns
    -------
    bool
        True when some entry is NaN.
    """
    xp = B.array_namespace(xs)
    return bool(xp.any(xp.isnan(xs)))


def check_observed_columns(xs: Any) -> None:
    """Refuse training data with a column that has no observed entry, naming it.

    Parameters
    ----------
    xs : array, shape (N, p)
        Training data (NaN: missing).

    Raises
    ------
    ValueError
        For the first column whose entries are all NaN, or the first row whose are.
    """
    xp = B.array_namespace(xs)
    observed = xp.logical_not(xp.isnan(xs))
    for axis, what in ((0, "column"), (1, "row")):
        empty = xp.logical_not(xp.any(observed, axis=axis))
        if bool(xp.any(empty)):
            index = int(xp.argmax(xp.astype(empty, xp.int32)))
            msg = f"{what} {index} of X has no observed entry (every entry is NaN)"
            raise ValueError(msg)


def average_log_density_shift(standardization: Standardization, xs: Any, missing: bool) -> float:
    """The average log-Jacobian that turns standardised log-likelihoods into the data's.

    Parameters
    ----------
    standardization : Standardization
        The map from the data's units.
    xs : array, shape (N, p)
        The data (NaN: missing).
    missing : bool
        Whether ``xs`` has missing entries: a row's shift then covers its observed columns.

    Returns
    -------
    float
        ``mean_n (−Σ_{j ∈ O_n} log scale_j)``.
    """
    if not missing:
        return standardization.log_density_shift()
    xp = B.array_namespace(xs)
    return float(xp.mean(standardization.row_log_density_shift(xs)))


def marginalized_model(model: HierarchicalMixtureOfGaussians, zs: Any) -> MarginalizedHMoG:
    """``model`` wrapped to marginalise the NaN entries of ``zs``, grouped where worthwhile.

    When the rows have few distinct missingness patterns (at most one per 8 rows, and few
    enough to save time, :func:`~hmog_xp.hmog.worthwhile_patterns`), the E-step factorises
    the ``d × d`` systems once per pattern instead of once per row
    (:class:`~hmog_xp.MarginalizedHMoG`'s ``patterns``).

    Parameters
    ----------
    model : AnalyticHMoG
        The model.
    zs : array, shape (N, p)
        The (standardised) training data, NaN where an entry is missing.

    Returns
    -------
    MarginalizedHMoG
        The model EM runs on.
    """
    p, d = model.int_shape
    limit = min(worthwhile_patterns(p, d, model.n_components), int(zs.shape[0]) // 8)
    patterns = MissingPatterns.of(zs, limit) if limit >= 1 else None
    return MarginalizedHMoG(model, patterns)


def mean_filled(zs: Any) -> Any:
    """Standardised data with every NaN entry at its column's mean (zero): for the starts.

    Parameters
    ----------
    zs : array, shape (N, p)
        Standardised data (NaN: missing).

    Returns
    -------
    array, shape (N, p)
        The same data, complete.
    """
    xp = B.array_namespace(zs)
    return xp.where(xp.isnan(zs), xp.zeros_like(zs), zs)
