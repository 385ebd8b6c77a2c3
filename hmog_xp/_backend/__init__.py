"""The backend layer: the only package in hmog_xp that imports array libraries.

It selects namespaces (:func:`array_namespace`, :func:`get_namespace`), holds the default
backend (:func:`set_backend`, :func:`get_backend`), and provides what the Array API standard
lacks: random numbers (:mod:`.random`), automatic differentiation and ``jit``
(:mod:`.autodiff`), and a few numerical helpers (:mod:`.linalg`).
"""

from hmog_xp._backend._arrays import (
    accumulation_dtype,
    cast,
    default_float_dtype,
    device_of,
    ignoring_overflow,
    is_concrete,
)
from hmog_xp._backend._registry import (
    BACKEND_NAMES,
    array_namespace,
    backend_name_of,
    get_backend,
    get_namespace,
    installed_backends,
    namespace_for,
    set_backend,
)
from hmog_xp._backend.autodiff import compiles, grad, jit, value_and_grad
from hmog_xp._backend.linalg import (
    broadcast_shapes,
    cholesky,
    cholesky_inverse,
    cholesky_logdet,
    cholesky_solve,
    concat_broadcast,
    eigenvalues_known_above,
    fixed_column_products,
    identity,
    logsumexp,
    softmax,
    softmax_and_logsumexp,
    solve_triangular,
    take_fixed_columns,
)
from hmog_xp._backend.products import (
    column_products,
    last_axis_max,
    last_axis_sum,
    row_weighted_sums,
    take_columns,
    vecdot,
)
from hmog_xp._backend.random import RandomSource, random_source
from hmog_xp._backend.threads import compute_threads as compute_threads
from hmog_xp._backend.transfer import distinct_rows

__all__ = [
    "BACKEND_NAMES",
    "RandomSource",
    "accumulation_dtype",
    "array_namespace",
    "backend_name_of",
    "broadcast_shapes",
    "cast",
    "cholesky",
    "cholesky_inverse",
    "cholesky_logdet",
    "cholesky_solve",
    "column_products",
    "compiles",
    "concat_broadcast",
    "default_float_dtype",
    "device_of",
    "distinct_rows",
    "eigenvalues_known_above",
    "fixed_column_products",
    "get_backend",
    "get_namespace",
    "grad",
    "identity",
    "ignoring_overflow",
    "installed_backends",
    "is_concrete",
    "jit",
    "last_axis_max",
    "last_axis_sum",
    "logsumexp",
    "namespace_for",
    "random_source",
    "row_weighted_sums",
    "set_backend",
    "softmax",
    "softmax_and_logsumexp",
    "solve_triangular",
    "take_columns",
    "take_fixed_columns",
    "value_and_grad",
    "vecdot",
]
