"""Random numbers for every backend behind one small interface.

The Array API standard has no random numbers. :func:`random_source` turns what a user passes
as ``rng`` into a :class:`RandomSource` that draws standard normal and uniform arrays in the
right namespace, on the right device:

=========================== ===================================================
``rng``                     draws with
=========================== ===================================================
``int`` seed                the backend's own generator, seeded (same seed, same
                            numbers on the same backend)
``numpy.random.Generator``  NumPy, converted to the target namespace/device
``torch.Generator``         PyTorch (target must be torch)
JAX PRNG key                ``jax.random`` with a split per draw (target must be jax)
``cupy.random.Generator``   CuPy (target must be cupy)
``None``                    a fresh, unseeded NumPy generator
=========================== ===================================================
"""

from __future__ import annotations

from types import ModuleType
from typing import Any

import numpy as np

from hmog_xp._backend._arrays import default_float_dtype
from hmog_xp._backend._registry import backend_name_of, get_namespace, namespace_for
from hmog_xp._errors import BackendError


class RandomSource:
    """Draws standard normal and uniform arrays in one namespace and device.

    Parameters
    ----------
    xp : module
        Target namespace.
    device : object or None
        Target device.
    kind : {'numpy', 'torch', 'jax', 'cupy'}
        Which library's generator draws.
    state : object
        That library's generator (or JAX key).
    """

    def __init__(self, xp: ModuleType, device: Any, kind: str, state: Any) -> None:
        self.xp = xp
        self.device = device
        self._kind = kind
        self._state = state

    def _convert(self, values: Any, dtype: Any) -> Any:
        return self.xp.asarray(values, dtype=dtype, device=self.device)

    def _draw(self, which: str, shape: tuple[int, ...], dtype: Any) -> Any:
        dtype = default_float_dtype(self.xp) if dtype is None else dtype
        shape = tuple(int(s) for s in shape)
        if self._kind == "numpy":
            gen = self._state
            values = gen.standard_normal(shape) if which == "normal" else gen.random(shape)
            return self._convert(values, dtype)
        if self._kind == "jax":
            import jax

            self._state, key = jax.random.split(self._state)
            if which == "normal":
                return jax.random.normal(key, shape, dtype=dtype)
            return jax.random.uniform(key, shape, dtype=dtype)
        if self._kind == "torch":
            import torch

            torch_draw = torch.randn if which == "normal" else torch.rand
            values = torch_draw(
                shape, generator=self._state, dtype=dtype, device=self._state.device
            )
            return values if self.device is None else values.to(self.device)
        # cupy
        gen = self._state
        values = gen.standard_normal(shape) if which == "normal" else gen.random(shape)
        return values.astype(dtype, copy=False)

    def normal(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Draw independent standard normal values.

        Parameters
        ----------
        shape : tuple of int
            Output shape.
        dtype : dtype, optional
            Floating dtype (default: the namespace's default float, see
            :func:`default_float_dtype`).

        Returns
        -------
        array, shape ``shape``
            The draws.
        """
        return self._draw("normal", shape, dtype)

    def uniform(self, shape: tuple[int, ...], dtype: Any = None) -> Any:
        """Draw independent values uniform on ``[0, 1)``.

        Parameters
        ----------
        shape : tuple of int
            Output shape.
        dtype : dtype, optional
            Floating dtype.

        Returns
        -------
        array, shape ``shape``
            The draws.
        """
        return self._draw("uniform", shape, dtype)


def _native_kind(rng: Any) -> str | None:
    module = type(rng).__module__
    if isinstance(rng, np.random.Generator):
        return "numpy"
    if module.startswith("torch") and type(rng).__name__ == "Generator":
        return "torch"
    if module.startswith("cupy") and type(rng).__name__ == "Generator":
        return "cupy"
    if module.startswith(("jax", "jaxlib")):
        return "jax"
    return None


def _seeded(kind: str, seed: int, device: Any) -> Any:
    if kind == "jax":
        import jax

        return jax.random.key(seed)
    if kind == "torch":
        import torch

        return torch.Generator(device=device if device is not None else "cpu").manual_seed(seed)
    if kind == "cupy":
        import cupy

        return cupy.random.default_rng(seed)
    return np.random.default_rng(seed)


def random_source(rng: Any, xp: ModuleType | None = None, device: Any = None) -> RandomSource:
    """Turn a user's ``rng`` argument into a :class:`RandomSource`.

    Parameters
    ----------
    rng : int, numpy.random.Generator, torch.Generator, JAX key, cupy Generator or None
        Where randomness comes from (see the module docstring).
    xp : module, optional
        Target namespace. When None: the generator's own backend for torch/JAX/CuPy
        generators, else the default backend (:func:`hmog_xp.get_backend`).
    device : object, optional
        Target device (default: the namespace's default device).

    Returns
    -------
    RandomSource
        The drawing object.

    Raises
    ------
    BackendError
        If a native generator does not belong to the target namespace, or ``rng`` is of an
        unsupported type.
    """
    if isinstance(rng, RandomSource):
        return rng
    kind = _native_kind(rng)
    if xp is None:
        xp = namespace_for(kind) if kind in ("torch", "jax", "cupy") else get_namespace()
    target = backend_name_of(xp)
    if rng is None:
        return RandomSource(xp, device, "numpy", np.random.default_rng())
    if isinstance(rng, (int, np.integer)) and not isinstance(rng, bool):
        native = target if target in ("torch", "jax", "cupy") else "numpy"
        return RandomSource(xp, device, native, _seeded(native, int(rng), device))
    if kind is None:
        msg = (
            f"rng must be an int seed, a numpy.random.Generator, a torch.Generator, a JAX PRNG "
            f"key or a cupy.random.Generator; got {type(rng).__name__}"
        )
        raise BackendError(msg)
    if kind != "numpy" and kind != target:
        msg = (
            f"a {kind} random generator cannot draw {target} arrays; pass an int seed, a "
            f"numpy.random.Generator, or a {target} generator"
        )
        raise BackendError(msg)
    return RandomSource(xp, device, kind, rng)
