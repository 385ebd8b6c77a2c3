"""Backend names, the default backend, and the array namespaces behind them.

This module (with the rest of :mod:`hmog_xp._backend`) is the only place that knows about
NumPy, JAX, PyTorch, CuPy and array-api-strict. Everything else asks it for a namespace.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from types import ModuleType
from typing import Any

from array_api_compat import array_namespace as _compat_namespace

from hmog_xp._errors import BackendError

#: Backend name -> the import name whose presence makes the backend installed.
_IMPORT_NAMES = {
    "numpy": "numpy",
    "array_api_strict": "array_api_strict",
    "jax": "jax",
    "torch": "torch",
    "cupy": "cupy",
}

#: Backend name -> the package extra and ``backends/<extra>.txt`` requirements file.
_EXTRAS = {
    "numpy": "numpy",
    "array_api_strict": "strict",
    "jax": "jax",
    "torch": "torch",
    "cupy": "cupy",
}

#: Every backend name hmog_xp understands, in the order they are listed to users.
BACKEND_NAMES: tuple[str, ...] = tuple(_IMPORT_NAMES)

_ENV_VAR = "HMOG_XP_BACKEND"


def installed_backends() -> list[str]:
    """Return the names of the backends whose array library is importable.

    Returns
    -------
    list of str
        A subset of ``BACKEND_NAMES``, in that order. CuPy counts as installed when the
        package is importable, whether or not a CUDA device is present.
    """
    return [name for name, mod in _IMPORT_NAMES.items() if importlib.util.find_spec(mod)]


def _check_name(name: object) -> str:
    if not isinstance(name, str) or name not in _IMPORT_NAMES:
        msg = (
            f"unknown backend {name!r}; known backends are {list(BACKEND_NAMES)}, "
            f"installed here: {installed_backends()}"
        )
        raise BackendError(msg)
    if importlib.util.find_spec(_IMPORT_NAMES[name]) is None:
        extra = _EXTRAS[name]
        msg = (
            f"backend {name!r} is not installed (install it with `pip install hmog_xp[{extra}]` "
            f"or `pip install -r backends/{extra}.txt`); installed backends: "
            f"{installed_backends()}"
        )
        raise BackendError(msg)
    return name


def namespace_for(name: str) -> ModuleType:
    """Return the Array-API namespace of a backend, importing it on first use.

    Parameters
    ----------
    name : str
        One of ``BACKEND_NAMES``.

    Returns
    -------
    module
        ``array_api_compat.numpy`` (with leaner hot functions:
        :mod:`hmog_xp._backend.numpy_namespace`), ``array_api_compat.torch``,
        ``array_api_compat.cupy``, ``jax.numpy`` or ``array_api_strict``.

    Raises
    ------
    BackendError
        If the name is unknown or its library is not installed (or, for CuPy, no CUDA device
        is usable).
    """
    _check_name(name)
    if name == "jax":
        return importlib.import_module("jax.numpy")
    if name == "array_api_strict":
        return importlib.import_module("array_api_strict")
    if name == "cupy":
        try:
            cupy = importlib.import_module("cupy")
            n_devices = cupy.cuda.runtime.getDeviceCount()
        except Exception as exc:  # CUDA missing raises several different error types
            msg = f"backend 'cupy' is installed but no CUDA device is usable: {exc}"
            raise BackendError(msg) from exc
        if n_devices < 1:
            msg = "backend 'cupy' is installed but no CUDA device is present"
            raise BackendError(msg)
    if name == "numpy":
        return importlib.import_module(_NUMPY_NAMESPACE)
    return importlib.import_module(f"array_api_compat.{name}")


#: hmog_xp's NumPy namespace: ``array_api_compat.numpy`` with leaner hot functions.
_NUMPY_NAMESPACE = "hmog_xp._backend.numpy_namespace"


def backend_name_of(xp: ModuleType) -> str:
    """Return the backend name of an Array-API namespace.

    Parameters
    ----------
    xp : module
        A namespace as returned by :func:`array_namespace` or :func:`namespace_for`.

    Returns
    -------
    str
        One of ``BACKEND_NAMES``.
    """
    module_name = getattr(xp, "__name__", "")
    known = _NAMES_OF_MODULES.get(module_name)
    if known is not None:  # asked several times per operation: remember the answer
        return known
    for name in BACKEND_NAMES:
        if module_name.startswith((name, f"array_api_compat.{name}")):
            _NAMES_OF_MODULES[module_name] = name
            return name
    msg = f"array namespace {module_name!r} is not one of hmog_xp's backends {list(BACKEND_NAMES)}"
    raise BackendError(msg)


def array_namespace(*arrays: Any) -> ModuleType:
    """Return the Array-API namespace shared by ``arrays`` (Python scalars are ignored).

    Parameters
    ----------
    *arrays : array or scalar
        Arrays of one backend.

    Returns
    -------
    module
        The namespace; see :func:`namespace_for`.
    """
    # the common calls: arrays of one type seen before (a plain loop: a generator costs more
    # than the rest of the lookup)
    kind: type = type(arrays[0]) if arrays else type(None)
    for array in arrays[1:]:
        if type(array) is not kind:
            break
    else:
        cached = _SINGLE_NAMESPACES.get(kind)
        if cached is not None:
            return cached
    real = [a for a in arrays if a is not None and not isinstance(a, (int, float, bool))]
    if not real:
        return get_namespace()
    # The namespace is a function of the arrays' types: look it up once per combination
    # (array_api_compat's inspection costs microseconds, and small fits ask thousands of times).
    types = frozenset(type(a) for a in real)
    namespace = _NAMESPACES.get(types)
    if namespace is None:
        try:
            namespace = _compat_namespace(*real)
        except TypeError as exc:
            kinds = sorted({f"{type(a).__module__.split('.')[0]}.{type(a).__name__}" for a in real})
            msg = (
                f"inputs are not arrays of a single supported backend (got {', '.join(kinds)}); "
                f"convert them to one backend, e.g. with that backend's asarray"
            )
            raise BackendError(msg) from exc
        if getattr(namespace, "__name__", "") == "array_api_compat.numpy":
            namespace = namespace_for("numpy")
        _NAMESPACES[types] = namespace
    if len(real) == len(arrays) and len(types) == 1:  # arrays of one type: the fast path
        _SINGLE_NAMESPACES[kind] = namespace
    return namespace


#: :func:`backend_name_of` of every namespace module name seen so far.
_NAMES_OF_MODULES: dict[str, str] = {_NUMPY_NAMESPACE: "numpy"}

#: :func:`array_namespace` of every combination of array types seen so far.
_NAMESPACES: dict[frozenset[type], ModuleType] = {}
#: The same for single arrays, by their type (no set to build).
_SINGLE_NAMESPACES: dict[type, ModuleType] = {}


class _DefaultBackend:
    """Holds the default backend name (a tiny mutable cell; read through functions)."""

    name: str = "numpy"


def set_backend(name: str) -> None:
    """Set the default backend, used only to create arrays from nothing.

    Functions that receive arrays always follow their inputs; the default backend decides
    where arrays come from when there are none (initialisation from a seed, sampling with an
    ``int`` seed, the estimator and the command line).

    Parameters
    ----------
    name : {'numpy', 'array_api_strict', 'jax', 'torch', 'cupy'}
        The backend.

    Raises
    ------
    BackendError
        If the name is unknown or not installed; the message lists the installed backends.
    """
    namespace_for(name)
    _DefaultBackend.name = name


def get_backend() -> str:
    """Return the name of the default backend.

    Returns
    -------
    str
        One of ``'numpy'``, ``'array_api_strict'``, ``'jax'``, ``'torch'``, ``'cupy'``.
    """
    return _DefaultBackend.name


def get_namespace(name: str | None = None) -> ModuleType:
    """Return the namespace of ``name``, or of the default backend when ``name`` is None.

    Parameters
    ----------
    name : str, optional
        A backend name.

    Returns
    -------
    module
        The Array-API namespace.
    """
    return namespace_for(_DefaultBackend.name if name is None else name)


def _init_from_environment() -> None:
    name = os.environ.get(_ENV_VAR, "").strip() or "numpy"
    try:
        _check_name(name)
    except BackendError as exc:
        msg = f"{_ENV_VAR}={name!r} is invalid: {exc}"
        raise BackendError(msg) from None
    _DefaultBackend.name = name


_init_from_environment()
