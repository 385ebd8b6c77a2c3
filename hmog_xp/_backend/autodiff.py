"""Automatic differentiation and compilation adapters (JAX and PyTorch).

hmog_xp computes every gradient it needs in closed form, on every backend. These adapters
exist so users (and the tests) can differentiate hmog_xp functions with the backend's own
autodiff and compile them with ``jax.jit``: one call shape for both libraries.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from types import ModuleType
from typing import Any

from hmog_xp._backend._registry import array_namespace, backend_name_of
from hmog_xp._errors import BackendError

_AUTODIFF_BACKENDS = ("jax", "torch")


def value_and_grad(fun: Callable[..., Any]) -> Callable[..., tuple[Any, Any]]:
    """Wrap a scalar function of an array so it returns its value and gradient.

    Parameters
    ----------
    fun : callable
        ``fun(x, *args, **kwargs)`` returning a 0-d array; differentiated with respect to
        its first argument.

    Returns
    -------
    callable
        ``g(x, *args, **kwargs) -> (value, gradient)`` with ``gradient`` of ``x``'s shape,
        in ``x``'s namespace. The backend is chosen by ``x``: JAX uses
        ``jax.value_and_grad``, PyTorch uses ``torch.autograd``.

    Raises
    ------
    BackendError
        When called with arrays of a backend that has no automatic differentiation (NumPy,
        CuPy, array-api-strict).
    """

    @functools.wraps(fun)
    def wrapped(x: Any, *args: Any, **kwargs: Any) -> tuple[Any, Any]:
        name = backend_name_of(array_namespace(x))
        if name == "jax":
            import jax

            return jax.value_and_grad(fun)(x, *args, **kwargs)
        if name == "torch":
            import torch

            leaf = x.detach().requires_grad_(True)
            with torch.enable_grad():
                value = fun(leaf, *args, **kwargs)
                (gradient,) = torch.autograd.grad(value, leaf)
            return value.detach(), gradient
        msg = (
            f"automatic differentiation is not available on the {name!r} backend; use arrays "
            f"of one of {list(_AUTODIFF_BACKENDS)}, or the closed-form gradients hmog_xp "
            f"provides on every backend"
        )
        raise BackendError(msg)

    return wrapped


def grad(fun: Callable[..., Any]) -> Callable[..., Any]:
    """Return the gradient function of a scalar function (see :func:`value_and_grad`).

    Parameters
    ----------
    fun : callable
        ``fun(x, *args, **kwargs)`` returning a 0-d array.

    Returns
    -------
    callable
        ``g(x, *args, **kwargs) -> gradient``.
    """
    with_value = value_and_grad(fun)

    @functools.wraps(fun)
    def wrapped(x: Any, *args: Any, **kwargs: Any) -> Any:
        return with_value(x, *args, **kwargs)[1]

    return wrapped


def jit(fun: Callable[..., Any], *, static_argnums: tuple[int, ...] = ()) -> Callable[..., Any]:
    """Compile ``fun`` with ``jax.jit`` when called on JAX arrays; run it as is otherwise.

    Parameters
    ----------
    fun : callable
        A function of arrays.
    static_argnums : tuple of int, optional
        Positional arguments that are static (hashable structure, e.g. a model).

    Returns
    -------
    callable
        Same signature; dispatches on the namespace of its array arguments.
    """
    compiled: list[Callable[..., Any]] = []

    @functools.wraps(fun)
    def wrapped(*args: Any, **kwargs: Any) -> Any:
        arrays = [a for i, a in enumerate(args) if i not in static_argnums and _is_array(a)]
        if arrays and backend_name_of(array_namespace(*arrays)) == "jax":
            if not compiled:
                import jax

                compiled.append(jax.jit(fun, static_argnums=static_argnums))
            return compiled[0](*args, **kwargs)
        return fun(*args, **kwargs)

    return wrapped


def compiles(xp: ModuleType) -> bool:
    """Whether :func:`jit` compiles functions of this namespace's arrays (JAX) or runs them.

    Parameters
    ----------
    xp : module
        An array namespace.

    Returns
    -------
    bool
        True for JAX: a compiled function costs nothing per array operation, so helpers
        that only save operations are not worth a second compiled program there.
    """
    return backend_name_of(xp) == "jax"


def _is_array(value: Any) -> bool:
    return hasattr(value, "shape") and hasattr(value, "dtype")
