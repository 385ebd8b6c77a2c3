"""Small array facts the standard leaves to each library: dtypes, devices, tracing."""

from __future__ import annotations

import contextlib
import sys
from types import ModuleType
from typing import Any

import numpy
from array_api_compat import device as _compat_device

from hmog_xp._backend._registry import backend_name_of


def default_float_dtype(xp: ModuleType) -> Any:
    """Return the floating dtype used for arrays created from nothing in ``xp``.

    ``float64`` everywhere, except JAX without ``jax_enable_x64`` where it is ``float32``
    (enable it with ``jax.config.update("jax_enable_x64", True)`` to get float64).

    Parameters
    ----------
    xp : module
        An Array-API namespace.

    Returns
    -------
    dtype
        ``xp.float64`` or ``xp.float32``.
    """
    if backend_name_of(xp) == "jax":
        import jax

        if not jax.config.read("jax_enable_x64"):
            return xp.float32
    return xp.float64


def accumulation_dtype(xp: ModuleType, dtype: Any) -> Any:
    """The dtype E-step sums are accumulated in: float64 if ``dtype`` is less precise.

    JAX without ``jax_enable_x64`` has no float64: then ``dtype`` itself (no warning).

    Parameters
    ----------
    xp : module
        Namespace.
    dtype : dtype
        Floating dtype of the data and parameters.

    Returns
    -------
    dtype
        ``xp.float64`` when it exists and is more precise than ``dtype``, else ``dtype``.
    """
    wide = default_float_dtype(xp)
    if wide == dtype or xp.finfo(wide).eps >= xp.finfo(dtype).eps:
        return dtype
    return wide


def cast(x: Any, dtype: Any, /, *, xp: ModuleType) -> Any:
    """``xp.astype(x, dtype, copy=False)``, without a call where ``x`` already has ``dtype``.

    An EM step casts its sums and parameters to the accumulation dtype and back; on
    float64 data every cast is a no-op that PyTorch still dispatches (about 1 µs each).

    Parameters
    ----------
    x : array
        Values.
    dtype : dtype
        The dtype wanted.
    xp : module
        Namespace of ``x``.

    Returns
    -------
    array
        ``x`` itself, or its values in ``dtype``.
    """
    return x if x.dtype == dtype else xp.astype(x, dtype)


def device_of(x: Any) -> Any:
    """Return the device an array lives on (``None`` for Python scalars).

    Parameters
    ----------
    x : array or scalar
        The array.

    Returns
    -------
    object
        The backend's device object.
    """
    if type(x) is numpy.ndarray:
        return "cpu"  # what array_api_compat answers, without its dispatch
    if isinstance(x, (int, float, bool)):
        return None
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.core.Tracer):
        # Asking a tracer for its device builds an error message (costly, and growing with
        # the traced program); under tracing the default placement is what we want.
        return None
    return _compat_device(x)


def is_concrete(x: Any) -> bool:
    """Return False when ``x`` is an abstract value being traced (inside ``jax.jit`` / grad).

    Validation that needs actual values (finiteness, positive definiteness) is skipped for
    abstract values: it would force a host synchronisation or fail under tracing.

    Parameters
    ----------
    x : array
        The array.

    Returns
    -------
    bool
        Whether the array holds actual values.
    """
    if type(x) is numpy.ndarray:  # the common case, first
        return True
    jax = sys.modules.get("jax")
    if jax is not None and isinstance(x, jax.core.Tracer):
        return False
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(x, torch.Tensor):
        # torch.func / functorch wrappers and meta tensors have no values to inspect.
        return not (x.is_meta or torch._C._functorch.is_functorch_wrapped_tensor(x))
    return True


def ignoring_overflow(
    xp: ModuleType, *, invalid: bool = False
) -> contextlib.AbstractContextManager[Any]:
    """Context in which NumPy does not warn about overflow (and ``inf − inf`` if ``invalid``).

    For code that detects non-finite values itself and recomputes them another way; other
    backends do not warn, so elsewhere this is a no-op (array_api_strict runs on NumPy).

    Parameters
    ----------
    xp : module
        Namespace of the computation.
    invalid : bool, optional
        Also silence invalid operations (NaN results).

    Returns
    -------
    context manager
        ``numpy.errstate`` for NumPy, else a null context.
    """
    if backend_name_of(xp) not in ("numpy", "array_api_strict"):  # strict computes with NumPy
        return contextlib.nullcontext()
    import numpy as np

    return np.errstate(over="ignore", invalid="ignore" if invalid else "warn")
