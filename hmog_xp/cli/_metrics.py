"""Agreement between two labelings: adjusted Rand index and normalised mutual information.

Both are computed from the contingency table ``C[i, j]`` = number of observations with true
class ``i`` and predicted cluster ``j``; label values only matter through equality. NumPy
only (the command line does not depend on scikit-learn).
"""

from __future__ import annotations

from typing import Any

import numpy as np


def contingency_table(labels_true: Any, labels_pred: Any) -> np.ndarray:
    """Count the observations in every (true class, predicted cluster) pair.

    Parameters
    ----------
    labels_true : array_like, shape (N,)
        Reference labels (any comparable values).
    labels_pred : array_like, shape (N,)
        Predicted labels.

    Returns
    -------
    numpy.ndarray, shape (n_classes, n_clusters)
        The counts, ``int64``; classes and clusters in sorted order of their labels.

    Raises
    ------
    ValueError
        If the labelings are not 1-D or differ in length.
    """
    true = np.asarray(labels_true)
    pred = np.asarray(labels_pred)
    if true.ndim != 1 or pred.ndim != 1 or true.shape != pred.shape:
        msg = f"labelings must be 1-D of equal length, got shapes {true.shape} and {pred.shape}"
        raise ValueError(msg)
    _, true_codes = np.unique(true, return_inverse=True)
    _, pred_codes = np.unique(pred, return_inverse=True)
    n_classes = int(true_codes.max(initial=-1)) + 1
    n_clusters = int(pred_codes.max(initial=-1)) + 1
    table = np.zeros((n_classes, n_clusters), dtype=np.int64)
    np.add.at(table, (true_codes.reshape(-1), pred_codes.reshape(-1)), 1)
    return table


def _pairs(counts: np.ndarray) -> float:
    """Return the number of unordered pairs within groups of the given sizes, Σ n(n−1)/2."""
    counts = counts.astype(np.float64)
    return float(np.sum(counts * (counts - 1.0)) / 2.0)


def adjusted_rand_index(labels_true: Any, labels_pred: Any) -> float:
    """Compute the adjusted Rand index of two labelings (1 = identical partitions).

    The Rand index counts the pairs of observations on which both labelings agree (same
    group in both, or different groups in both); the adjusted index subtracts its expected
    value under random labelings with the same group sizes and rescales so that identical
    partitions score 1 and chance scores 0 on average (it can be negative).

    Parameters
    ----------
    labels_true : array_like, shape (N,)
        Reference labels.
    labels_pred : array_like, shape (N,)
        Predicted labels.

    Returns
    -------
    float
        The index, at most 1.
    """
    table = contingency_table(labels_true, labels_pred)
    n = int(table.sum())
    together = _pairs(table.reshape(-1))
    true_pairs = _pairs(table.sum(axis=1))
    pred_pairs = _pairs(table.sum(axis=0))
    all_pairs = n * (n - 1) / 2.0
    if all_pairs == 0.0:
        return 1.0
    expected = true_pairs * pred_pairs / all_pairs
    maximum = (true_pairs + pred_pairs) / 2.0
    if maximum == expected:
        # Only when both labelings are one group, or both all singletons: identical.
        return 1.0
    return float((together - expected) / (maximum - expected))


def _entropy(counts: np.ndarray) -> float:
    counts = counts[counts > 0].astype(np.float64)
    probabilities = counts / counts.sum()
    return float(-np.sum(probabilities * np.log(probabilities)))


def normalized_mutual_information(labels_true: Any, labels_pred: Any) -> float:
    """Compute the mutual information of two labelings over the mean of their entropies.

    ``NMI = I(true; pred) / ((H(true) + H(pred)) / 2)`` (arithmetic normalisation), in [0, 1];
    1 for identical partitions, 0 for independent ones. Two single-group labelings score 1.

    Parameters
    ----------
    labels_true : array_like, shape (N,)
        Reference labels.
    labels_pred : array_like, shape (N,)
        Predicted labels.

    Returns
    -------
    float
        The normalised mutual information.
    """
    table = contingency_table(labels_true, labels_pred)
    n_classes, n_clusters = table.shape
    if n_classes == n_clusters and n_classes <= 1:
        return 1.0
    n = float(table.sum())
    row = table.sum(axis=1).astype(np.float64)
    col = table.sum(axis=0).astype(np.float64)
    i, j = np.nonzero(table)
    joint = table[i, j].astype(np.float64)
    mutual = float(np.sum(joint / n * (np.log(joint * n) - np.log(row[i] * col[j]))))
    mutual = max(mutual, 0.0)
    if mutual == 0.0:
        return 0.0
    mean_entropy = (_entropy(row) + _entropy(col)) / 2.0
    return float(min(mutual / mean_entropy, 1.0))
