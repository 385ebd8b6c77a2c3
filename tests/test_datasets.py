"""The embedded UCI digits: shape, labels, value range, every backend."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from hmog_xp import BackendError
from hmog_xp.datasets import load_digits
from tests.helpers import backend_of, to_numpy, xp_name


def test_digits_numpy_shape_labels_and_range() -> None:
    X, labels = load_digits(backend="numpy")
    assert isinstance(X, np.ndarray)
    assert X.shape == (1797, 64)
    assert X.dtype == np.float64
    assert labels.shape == (1797,)
    assert labels.dtype == np.int64
    assert X.min() == 0.0
    assert X.max() == 16.0
    assert np.array_equal(X, np.round(X)), "pixel counts are integers"
    counts = np.bincount(labels, minlength=10)
    assert counts.shape == (10,)
    assert counts.sum() == 1797
    assert counts.min() >= 170, "every digit 0..9 appears about 180 times"


def test_digits_first_image_is_a_zero() -> None:
    X, labels = load_digits(backend="numpy")
    assert labels[0] == 0
    assert labels[1] == 1
    image = X[0].reshape(8, 8)
    # A zero: ink on the left and right edges of the middle rows, none in the centre.
    assert image[3:5, 3:5].sum() == 0.0
    assert image[3:5, 1].min() > 0.0


def test_digits_every_backend(xp: Any) -> None:
    name = xp_name(xp)
    X, labels = load_digits(backend=name)
    assert backend_of(X) == name
    assert backend_of(labels) == name
    assert tuple(X.shape) == (1797, 64)
    assert tuple(labels.shape) == (1797,)
    X_np, labels_np = to_numpy(X), to_numpy(labels)
    X_ref, labels_ref = load_digits(backend="numpy")
    np.testing.assert_array_equal(X_np.astype(np.float64), X_ref)
    np.testing.assert_array_equal(labels_np.astype(np.int64), labels_ref)
    assert np.issubdtype(labels_np.dtype, np.integer)


def test_digits_dtype_argument(xp: Any) -> None:
    X, _ = load_digits(backend=xp_name(xp), dtype=xp.float32)
    assert X.dtype == xp.float32


def test_digits_unknown_backend() -> None:
    with pytest.raises(BackendError, match="unknown backend"):
        load_digits(backend="nope")
