"""The UCI optical handwritten digits (test part), as an (N, 64) array and its labels.

The data file ``data/digits.csv.gz`` holds one image per line: 64 pixel counts in 0..16 (an 8×8
image, row by row) followed by the digit 0..9. See ``data/DIGITS.txt`` for its origin and
licence. NumPy reads the file (this is application code); the arrays are then handed to the
requested backend.
"""

from __future__ import annotations

import gzip
import importlib.resources
from typing import Any

import numpy as np

from hmog_xp import _backend as B

#: Name of the data file inside ``hmog_xp/datasets/data``.
DIGITS_FILE = "digits.csv.gz"

_N_SAMPLES = 1797
_N_PIXELS = 64


def _read_digits_numpy() -> tuple[np.ndarray, np.ndarray]:
    resource = importlib.resources.files("hmog_xp.datasets").joinpath("data").joinpath(DIGITS_FILE)
    with resource.open("rb") as raw, gzip.open(raw, "rt", encoding="ascii") as text:
        table = np.loadtxt(text, delimiter=",", dtype=np.float64)
    if table.shape != (_N_SAMPLES, _N_PIXELS + 1):
        expected = (_N_SAMPLES, _N_PIXELS + 1)
        msg = f"{DIGITS_FILE} is damaged: expected a {expected} table, got {table.shape}"
        raise OSError(msg)
    return table[:, :_N_PIXELS], table[:, _N_PIXELS].astype(np.int64)


def load_digits(*, backend: str | None = None, dtype: Any = None) -> tuple[Any, Any]:
    """Load the UCI optical handwritten digits as arrays of a backend.

    Parameters
    ----------
    backend : str, optional
        Backend name (``'numpy'``, ``'array_api_strict'``, ``'jax'``, ``'torch'``, ``'cupy'``);
        the default backend (:func:`hmog_xp.get_backend`) when None.
    dtype : dtype, optional
        Floating dtype of the pixel array, of that backend's namespace; ``float64`` when None
        (``float32`` on JAX without ``jax_enable_x64``).

    Returns
    -------
    X : array, shape (1797, 64)
        Pixel counts in 0..16, one 8×8 image per row (row-major).
    labels : array, shape (1797,)
        The digit 0..9 of every image: ``int64`` of the same backend (``int32`` on JAX
        without ``jax_enable_x64``).

    Raises
    ------
    BackendError
        If the backend is unknown or not installed.
    """
    xp = B.get_namespace(backend)
    pixels, labels = _read_digits_numpy()
    default_dtype = B.default_float_dtype(xp)
    float_dtype = default_dtype if dtype is None else dtype
    # 64-bit labels, except where the backend has no 64-bit default (JAX without x64).
    int_dtype = xp.int64 if default_dtype == xp.float64 else xp.int32
    return xp.asarray(pixels, dtype=float_dtype), xp.asarray(labels, dtype=int_dtype)
