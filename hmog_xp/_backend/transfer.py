"""Moving arrays between backends and to and from files (NumPy is the neutral format).

The estimator accepts "array-likes" (lists, pandas frames, any backend's arrays), keeps its
fitted state in one backend and answers in the caller's namespace; saved models are plain
``.npz`` files that any backend can load. Everything here goes through NumPy on the host.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np

from hmog_xp._backend._registry import BACKEND_NAMES, backend_name_of
from hmog_xp._backend._registry import array_namespace as _array_namespace
from hmog_xp._errors import BackendError

__all__ = [
    "backend_of_array",
    "from_numpy",
    "load_arrays",
    "object_array",
    "save_arrays",
    "to_numpy",
    "transfer",
]

#: Key of the JSON metadata stored next to the arrays in a saved file.
_METADATA_KEY = "__metadata__"


def backend_of_array(value: Any) -> str | None:
    """Return the backend name of an array of a supported backend, or None for anything else.

    NumPy arrays (and NumPy scalars) report ``'numpy'``; lists, pandas objects and arrays of
    unsupported libraries report None.

    Parameters
    ----------
    value : object
        Anything.

    Returns
    -------
    str or None
        One of ``BACKEND_NAMES``, or None.
    """
    if isinstance(value, np.ndarray):
        return "numpy"
    if not (hasattr(value, "shape") and hasattr(value, "dtype")):
        return None
    try:
        name = backend_name_of(_array_namespace(value))
    except BackendError:
        return None
    return name if name in BACKEND_NAMES else None


def to_numpy(value: Any) -> np.ndarray:
    """Copy an array of any supported backend (or an array-like) to a host NumPy array.

    Parameters
    ----------
    value : array or array-like
        Input.

    Returns
    -------
    numpy.ndarray
        Host copy (no copy for NumPy input).
    """
    if isinstance(value, np.ndarray):
        return value
    name = backend_of_array(value)
    if name == "torch":
        return np.asarray(value.detach().cpu().numpy())
    if name == "cupy":
        return np.asarray(value.get())
    return np.asarray(value)


def from_numpy(value: np.ndarray, xp: ModuleType, *, device: Any = None) -> Any:
    """Create an array of namespace ``xp`` from a host NumPy array.

    Parameters
    ----------
    value : numpy.ndarray
        Host data.
    xp : module
        Target namespace.
    device : object, optional
        Target device (the namespace's default when None).

    Returns
    -------
    array
        The data in ``xp`` (a copy unless ``xp`` is NumPy).
    """
    if backend_name_of(xp) == "numpy":
        return value
    if device is None:
        return xp.asarray(value)
    return xp.asarray(value, device=device)


def transfer(value: Any, xp: ModuleType, *, device: Any = None) -> Any:
    """Return ``value`` as an array of namespace ``xp`` (unchanged when it already is one).

    Parameters
    ----------
    value : array
        An array of any supported backend.
    xp : module
        Target namespace.
    device : object, optional
        Target device.

    Returns
    -------
    array
        The same data in ``xp``.
    """
    if backend_of_array(value) == backend_name_of(xp):
        return value
    return from_numpy(to_numpy(value), xp, device=device)


def object_array(values: list[str]) -> np.ndarray:
    """Return a NumPy array of Python objects (how scikit-learn stores feature names).

    Parameters
    ----------
    values : list of str
        The values.

    Returns
    -------
    numpy.ndarray, shape (len(values),)
        An ``object`` array.
    """
    return np.asarray(values, dtype=object)


def save_arrays(path: str | Path, arrays: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write arrays (any backend) and JSON-serialisable metadata to one ``.npz`` file.

    Parameters
    ----------
    path : str or Path
        Destination; ``.npz`` is appended when missing.
    arrays : dict of str to array
        Arrays to store (copied to the host).
    metadata : dict
        JSON-serialisable metadata.

    Returns
    -------
    Path
        The file written.
    """
    target = Path(path)
    if target.suffix != ".npz":
        target = target.with_name(target.name + ".npz")
    host: dict[str, Any] = {name: to_numpy(value) for name, value in arrays.items()}
    host[_METADATA_KEY] = np.asarray(json.dumps(metadata))
    with target.open("wb") as handle:
        np.savez(handle, **host)
    return target


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_arrays`.

    Parameters
    ----------
    path : str or Path
        Source file.

    Returns
    -------
    arrays : dict of str to numpy.ndarray
        The stored arrays (host).
    metadata : dict
        The stored metadata.

    Raises
    ------
    ValueError
        If the file is not an ``.npz`` archive written by :func:`save_arrays`.
    """
    try:
        with np.load(Path(path), allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
    except (ValueError, OSError) as exc:
        if isinstance(exc, FileNotFoundError):
            raise
        msg = f"{path} is not a saved hmog_xp model (.npz): {exc}"
        raise ValueError(msg) from exc
    if _METADATA_KEY not in arrays:
        msg = f"{path} is not a saved hmog_xp model: it has no metadata entry"
        raise ValueError(msg)
    metadata = json.loads(str(arrays.pop(_METADATA_KEY)))
    return arrays, metadata
