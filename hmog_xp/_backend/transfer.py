"""Moving arrays between backends and to and from files (NumPy is the neutral format).

The estimator accepts "array-likes" (lists, pandas frames, any backend's arrays), keeps its
fitted state in one backend and answers in the caller's namespace; saved models are plain
``.npz`` files that any backend can load. Everything here goes through NumPy on the host.
"""

from __future__ import annotations

import json
import math
import zipfile
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any, BinaryIO

import numpy as np

from hmog_xp._backend._registry import BACKEND_NAMES, backend_name_of
from hmog_xp._backend._registry import array_namespace as _array_namespace
from hmog_xp._errors import BackendError
from hmog_xp._files import ModelFileError, atomic_write

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
    if name == "array_api_strict":  # any of its devices (NumPy reads only its CPU device)
        value = value.to_device(_array_namespace(value).Device("CPU_DEVICE"))
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


def _write_npz(handle: BinaryIO, arrays: dict[str, np.ndarray]) -> None:
    """Write host arrays to an open binary stream as an uncompressed ``.npz`` archive."""
    with zipfile.ZipFile(handle, mode="w", compression=zipfile.ZIP_STORED) as archive:
        for name, value in arrays.items():
            with archive.open(f"{name}.npy", mode="w", force_zip64=True) as member:
                np.lib.format.write_array(member, value, allow_pickle=False)


def save_arrays(path: str | Path, arrays: dict[str, Any], metadata: dict[str, Any]) -> Path:
    """Write arrays (any backend) and JSON-serialisable metadata to one ``.npz`` file.

    The file is replaced atomically (:func:`hmog_xp._files.atomic_write`): an interrupted
    save leaves the previous file intact. Nothing is pickled.

    Parameters
    ----------
    path : str or Path
        Destination; ``.npz`` is appended when missing.
    arrays : dict of str to array
        Arrays to store (copied to the host); numeric or boolean, never ``object``.
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
    host: dict[str, np.ndarray] = {name: to_numpy(value) for name, value in arrays.items()}
    host[_METADATA_KEY] = np.asarray(json.dumps(metadata))
    with atomic_write(target) as handle:
        _write_npz(handle, host)
    return target


def _damaged(path: str | Path, problem: str) -> ModelFileError:
    return ModelFileError(f"{path}: not a saved hmog_xp model, or a damaged one: {problem}")


def _read_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, path: str | Path) -> np.ndarray:
    """Read one ``.npy`` member, checking its header against its size before the data."""
    with archive.open(info) as member:
        version = np.lib.format.read_magic(member)
        if version == (1, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_1_0(member)
        elif version == (2, 0):
            shape, fortran, dtype = np.lib.format.read_array_header_2_0(member)
        else:
            msg = f"entry {info.filename!r} has .npy format version {version}"
            raise _damaged(path, msg)
        if dtype.hasobject:
            msg = f"entry {info.filename!r} holds Python objects, which are never unpickled"
            raise _damaged(path, msg)
        size = math.prod(shape) * dtype.itemsize
        if size != info.file_size - member.tell():
            msg = f"entry {info.filename!r} is truncated or its header is corrupted"
            raise _damaged(path, msg)
        data = member.read(size)
    flat = np.frombuffer(data, dtype=dtype)
    return np.array(flat.reshape(shape, order="F" if fortran else "C"), order="C")


def _read_archive(path: str | Path) -> dict[str, np.ndarray]:
    with zipfile.ZipFile(path) as archive:
        bad = archive.testzip()
        if bad is not None:
            raise _damaged(path, f"entry {bad!r} fails its checksum")
        arrays: dict[str, np.ndarray] = {}
        for info in archive.infolist():
            name = info.filename.removesuffix(".npy")
            if name == info.filename or name in arrays:
                msg = f"entry {info.filename!r} is not one .npy array"
                raise _damaged(path, msg)
            arrays[name] = _read_member(archive, info, path)
    return arrays


#: What reading a damaged archive can raise, besides :class:`ModelFileError`.
_READ_ERRORS = (
    zipfile.BadZipFile,
    zipfile.LargeZipFile,
    EOFError,
    ValueError,
    OSError,
    KeyError,
    NotImplementedError,
    OverflowError,
    zlib.error,
)


def load_arrays(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Read a file written by :func:`save_arrays`, turning any damage into one clear error.

    The archive's checksums are verified, every entry must be a plain ``.npy`` array whose
    header agrees with its size (object arrays are refused, nothing is unpickled), and the
    metadata must be a JSON object.

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
    FileNotFoundError
        If the file does not exist.
    ModelFileError
        (a :class:`ValueError`) If the path is a directory, or the file is not an ``.npz``
        archive written by :func:`save_arrays` or is damaged; the message names the file.
    """
    source = Path(path)
    if not source.exists():
        msg = f"{path}: no such file"
        raise FileNotFoundError(msg)
    if source.is_dir():
        raise _damaged(path, "it is a directory")
    try:
        arrays = _read_archive(source)
    except (ModelFileError, FileNotFoundError, PermissionError):
        raise
    except _READ_ERRORS as exc:
        text = " ".join(str(exc).split()) or type(exc).__name__
        raise _damaged(path, f"{text} (not an .npz archive, truncated or corrupted)") from exc
    stored = arrays.pop(_METADATA_KEY, None)
    if stored is None:
        raise _damaged(path, "it has no metadata entry")
    if stored.shape != () or stored.dtype.kind != "U":
        raise _damaged(
            path, f"its metadata entry is a {stored.dtype} array of shape {stored.shape}"
        )
    try:
        metadata = json.loads(str(stored))
    except ValueError as exc:
        raise _damaged(path, f"its metadata is not JSON ({exc})") from exc
    if not isinstance(metadata, dict):
        raise _damaged(path, f"its metadata is a JSON {type(metadata).__name__}, not an object")
    return arrays, metadata


def distinct_rows(values: Any, max_count: int) -> tuple[tuple[bool, ...], ...] | None:
    """Return the distinct rows of a boolean matrix, if there are at most ``max_count``.

    Parameters
    ----------
    values : array of bool, shape (N, p)
        A matrix of any supported backend (copied to the host once).
    max_count : int
        The most distinct rows worth listing.

    Returns
    -------
    tuple of tuples of bool or None
        The distinct rows in lexicographic order (hashable, so a model holding them can be
        a static argument of a compiled function), or None when there are more than
        ``max_count``.
    """
    host = to_numpy(values).astype(bool)
    rows = np.unique(host, axis=0)
    if rows.shape[0] > max_count:
        return None
    return tuple(tuple(bool(entry) for entry in row) for row in rows)
