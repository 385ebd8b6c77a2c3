"""Test helpers: conversions to NumPy, ``assert_device`` and a namespace/shape/dtype/device-checking
``assert_close``."""

from __future__ import annotations

from typing import Any

import numpy as np

from hmog_xp._backend import array_namespace, backend_name_of, device_of


def to_numpy(x: Any) -> np.ndarray:
    """Copy any backend's array (or a scalar) into a NumPy array on the host."""
    if isinstance(x, np.ndarray | np.generic | float | int | bool):
        return np.asarray(x)
    module = type(x).__module__
    if module.startswith("torch"):
        return x.detach().cpu().numpy()
    if module.startswith("cupy"):
        return x.get()
    if module.startswith("array_api_strict"):  # NumPy reads only its default device
        x = x.to_device(array_namespace(x).Device("CPU_DEVICE"))
    return np.asarray(x)


def backend_of(x: Any) -> str:
    """Backend name of an array."""
    return backend_name_of(array_namespace(x))


def xp_name(xp: Any) -> str:
    """Backend name of a namespace (the read-only NumPy proxy counts as numpy)."""
    return backend_name_of(xp)


def _is_backend_array(x: Any) -> bool:
    return hasattr(x, "shape") and hasattr(x, "dtype")


def _device(x: Any) -> Any:
    # NumPy reductions return NumPy scalars (floats to device_of): they live on the host.
    return "cpu" if isinstance(x, np.generic) else device_of(x)


def assert_device(x: Any, device: Any) -> None:
    """Assert that ``x`` (an array, or a tuple / list / NamedTuple of them) is on ``device``."""
    if isinstance(x, tuple | list):
        for i, item in enumerate(x):
            try:
                assert_device(item, device)
            except AssertionError as exc:
                raise AssertionError(f"item {i}: {exc}") from None
        return
    assert _is_backend_array(x), f"expected an array on {device}, got {type(x).__name__}"
    assert _device(x) == device, f"result is on {_device(x)}, expected {device}"


def default_tolerance(dtype: Any) -> float:
    """``4 sqrt(eps)`` of the dtype: ~6e-8 for float64, ~1.4e-3 for float32."""
    return 4.0 * float(np.finfo(np.dtype(str(dtype).split(".")[-1])).eps) ** 0.5


def assert_close(
    actual: Any,
    desired: Any,
    *,
    xp: Any = None,
    rtol: float | None = None,
    atol: float | None = None,
    check_dtype: bool = True,
    device: Any = None,
) -> None:
    """Assert ``actual`` is an array of ``xp`` with ``desired``'s shape, dtype, device, and close.

    ``desired`` may be a NumPy array (an oracle) or an array of ``actual``'s backend; in the
    second case both must be on the same device. ``device``, when given, is the device
    ``actual`` must be on. Tolerances default to :func:`default_tolerance` of ``actual``'s
    dtype.
    """
    if xp is not None:
        assert backend_of(actual) == xp_name(xp), (
            f"result is a {backend_of(actual)} array, expected {xp_name(xp)}"
        )
    if device is not None:
        assert_device(actual, device)
    both = _is_backend_array(actual) and _is_backend_array(desired)
    if both and backend_of(actual) == backend_of(desired):
        assert _device(actual) == _device(desired), (
            f"result is on {_device(actual)}, expected {_device(desired)}"
        )
    actual_np, desired_np = to_numpy(actual), to_numpy(desired)
    assert actual_np.shape == desired_np.shape, f"shape {actual_np.shape} != {desired_np.shape}"
    if check_dtype and not isinstance(desired, float | int):
        assert actual_np.dtype == desired_np.dtype, f"dtype {actual_np.dtype} != {desired_np.dtype}"
    tolerance = default_tolerance(actual_np.dtype) if actual_np.dtype.kind == "f" else 0.0
    np.testing.assert_allclose(
        actual_np,
        desired_np,
        rtol=tolerance if rtol is None else rtol,
        atol=tolerance if atol is None else atol,
    )
