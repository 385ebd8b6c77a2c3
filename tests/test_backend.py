"""The backend layer: selection, random numbers, autodiff/jit adapters, numerical helpers."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import re
import subprocess
import sys
from typing import Any

import numpy as np
import pytest
from scipy import special

import hmog_xp as hx
from hmog_xp import _backend as B
from tests.helpers import assert_close, to_numpy, xp_name

PACKAGE = pathlib.Path(hx.__file__).parent


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items() if k != "HMOG_XP_BACKEND"}
    environment.update(env)
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, check=False
    )


# -- selection -----------------------------------------------------------------------------------


def test_default_backend_is_numpy_when_environment_unset() -> None:
    result = _run_python("import hmog_xp; print(hmog_xp.get_backend())")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "numpy"


@pytest.mark.parametrize("name", ["jax", "torch", "array_api_strict"])
def test_environment_variable_picks_default_backend(name: str) -> None:
    if importlib.util.find_spec(name) is None:
        pytest.skip(f"{name} is not installed")
    result = _run_python("import hmog_xp; print(hmog_xp.get_backend())", HMOG_XP_BACKEND=name)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == name


def test_unknown_environment_backend_fails_at_import_listing_installed() -> None:
    result = _run_python("import hmog_xp", HMOG_XP_BACKEND="tensorflow")
    assert result.returncode != 0
    assert "HMOG_XP_BACKEND='tensorflow' is invalid" in result.stderr
    assert "installed here: ['numpy'" in result.stderr


def test_import_does_not_import_optional_array_libraries() -> None:
    code = (
        "import sys, hmog_xp; "
        "print(sorted(m for m in ('jax', 'torch', 'cupy') if m in sys.modules))"
    )
    result = _run_python(code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_set_backend_round_trip_and_errors() -> None:
    previous = hx.get_backend()
    other = hx.installed_backends()[-1]  # any installed one; numpy at least
    try:
        hx.set_backend(other)
        assert hx.get_backend() == other
        assert B.backend_name_of(B.get_namespace()) == other
        with pytest.raises(hx.BackendError, match=r"unknown backend 'mxnet'.*installed here"):
            hx.set_backend("mxnet")
        assert hx.get_backend() == other, "a failed set_backend must not change it"
        with pytest.raises(hx.BackendError, match="unknown backend"):
            hx.set_backend(3)  # type: ignore[arg-type]
    finally:
        hx.set_backend(previous)


def test_uninstalled_backend_is_reported(monkeypatch: pytest.MonkeyPatch) -> None:
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "torch" else real_find_spec(name, *a),
    )
    with pytest.raises(hx.BackendError, match=r"backend 'torch' is not installed.*installed"):
        hx.set_backend("torch")
    assert "torch" not in hx.installed_backends()
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "array_api_strict" else real_find_spec(name, *a),
    )
    with pytest.raises(
        hx.BackendError, match=r"hmog_xp\[strict\]` or `pip install -r backends/strict.txt"
    ):
        hx.set_backend("array_api_strict")


def test_installed_backends_lists_importable_ones() -> None:
    names = hx.installed_backends()
    assert "numpy" in names
    for name in names:
        assert importlib.util.find_spec(name) is not None


def test_namespace_follows_inputs(xp) -> None:
    x = xp.asarray([1.0, 2.0], dtype=xp.float64)
    assert B.backend_name_of(B.array_namespace(x)) == xp_name(xp)
    with pytest.raises(hx.BackendError, match="not arrays of a single supported backend"):
        B.array_namespace(x, [1.0, 2.0])


#: Application code that reads files and draws figures with NumPy and matplotlib; every
#: other package below hmog_xp (models, training, estimator) goes through ``_backend``.
APPLICATION_PACKAGES = ("_backend", "cli", "datasets")


def test_model_layers_import_no_array_library() -> None:
    pattern = re.compile(r"^\s*(import|from)\s+(numpy|jax|torch|cupy|array_api_strict)\b", re.M)
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if not set(APPLICATION_PACKAGES) & set(path.relative_to(PACKAGE).parts)
        and pattern.search(path.read_text())
    ]
    assert offenders == []


# -- random numbers ------------------------------------------------------------------------------


def test_same_seed_same_numbers_different_seed_different(xp) -> None:
    first = B.random_source(7, xp).normal((6,))
    again = B.random_source(7, xp).normal((6,))
    other = B.random_source(8, xp).normal((6,))
    assert_close(first, again, xp=xp, rtol=0, atol=0)
    assert not np.allclose(to_numpy(first), to_numpy(other))


def test_numpy_generator_draws_for_every_backend(xp) -> None:
    values = B.random_source(np.random.default_rng(3), xp).uniform((4, 2))
    expected = np.random.default_rng(3).random((4, 2))
    assert_close(values, expected, xp=xp, rtol=0, atol=0)


def test_random_draws_have_standard_moments(xp) -> None:
    source = B.random_source(11, xp)
    normal = to_numpy(source.normal((40_000,)))
    uniform = to_numpy(source.uniform((40_000,)))
    assert abs(normal.mean()) < 0.02
    assert abs(normal.var() - 1.0) < 0.03
    assert abs(uniform.mean() - 0.5) < 0.01
    assert uniform.min() >= 0.0
    assert uniform.max() < 1.0


def test_native_generators(xp) -> None:
    name = xp_name(xp)
    if name == "torch":
        import torch

        rng = torch.Generator().manual_seed(5)
        values = B.random_source(rng, xp).normal((3,))
        assert_close(
            values,
            torch.randn(3, generator=torch.Generator().manual_seed(5), dtype=torch.float64),
            xp=xp,
        )
    elif name == "jax":
        import jax

        key = jax.random.key(5)
        assert B.random_source(key).xp.__name__ == "jax.numpy"
        one, two = B.random_source(key, xp).normal((3,)), B.random_source(key, xp).normal((3,))
        assert_close(one, two, xp=xp, rtol=0, atol=0)
    else:
        pytest.skip(f"{name} has no native generator beyond numpy's")


def test_foreign_generator_is_rejected() -> None:
    torch = pytest.importorskip("torch")
    with pytest.raises(hx.BackendError, match="a torch random generator cannot draw numpy arrays"):
        B.random_source(torch.Generator(), B.namespace_for("numpy"))
    with pytest.raises(hx.BackendError, match="rng must be an int seed"):
        B.random_source("seed", B.namespace_for("numpy"))


# -- automatic differentiation and jit -----------------------------------------------------------


def test_value_and_grad_matches_closed_form_gradient_of_log_partition(xp) -> None:
    family = hx.Normal(3, hx.PositiveDefinite())
    covariance = np.array([[2.0, 0.3, 0.1], [0.3, 1.0, -0.2], [0.1, -0.2, 1.5]])
    params = family.from_moments(
        xp.asarray([0.5, -1.0, 2.0], dtype=xp.float64), xp.asarray(covariance)
    )
    if xp_name(xp) not in ("jax", "torch"):
        with pytest.raises(hx.BackendError, match=r"not available on the .* backend.*jax"):
            hx.value_and_grad(family.log_partition_function)(params)
        return
    value, gradient = hx.value_and_grad(family.log_partition_function)(params)
    assert_close(value, family.log_partition_function(params), xp=xp)
    # The gradient of the log-partition function is the mean parameters.
    assert_close(gradient, family.to_mean(params), xp=xp, rtol=1e-10, atol=1e-10)
    assert_close(hx.grad(family.log_partition_function)(params), gradient, xp=xp)


def test_jit_compiles_on_jax_and_passes_through_elsewhere(xp) -> None:
    family = hx.Categorical(3)
    params = xp.asarray([0.2, -1.0], dtype=xp.float64)
    compiled = hx.jit(family.log_partition_function)
    assert_close(compiled(params), family.log_partition_function(params), xp=xp)
    assert_close(compiled(params + 1.0), family.log_partition_function(params + 1.0), xp=xp)


# -- numerical helpers ---------------------------------------------------------------------------


def test_logsumexp_and_softmax_match_scipy(xp) -> None:
    values = np.array([[1000.0, 1000.5, -np.inf], [-3.0, 0.0, 2.0]])
    actual = B.logsumexp(xp.asarray(values), axis=-1, xp=xp)
    assert_close(actual, special.logsumexp(values, axis=-1), xp=xp)
    kept = B.logsumexp(xp.asarray(values), axis=0, keepdims=True, xp=xp)
    assert_close(kept, special.logsumexp(values, axis=0, keepdims=True), xp=xp)
    assert_close(B.softmax(xp.asarray(values), xp=xp), special.softmax(values, axis=-1), xp=xp)
    all_minus_inf = xp.asarray([-np.inf, -np.inf], dtype=xp.float64)
    assert to_numpy(B.logsumexp(all_minus_inf, xp=xp)) == -np.inf


def test_softmax_and_logsumexp_in_one_pass_match_scipy(xp, device) -> None:
    values = np.array([[1000.0, 1000.5, -np.inf], [-3.0, 0.0, 2.0], [-np.inf] * 3])
    scale = np.array([[2.0], [0.5], [1.0]])
    probs, log_normalizers = B.softmax_and_logsumexp(
        xp.asarray(values, device=device), xp=xp, scale=xp.asarray(scale, device=device)
    )
    with np.errstate(invalid="ignore"):
        expected = scale * special.softmax(values, axis=-1)
    expected[2] = 0.0  # a row with no finite logit gets no probability (SciPy gives NaN)
    assert_close(probs, expected, xp=xp)
    assert_close(log_normalizers, special.logsumexp(values, axis=-1, keepdims=True), xp=xp)
    unscaled, _ = B.softmax_and_logsumexp(xp.asarray(values[:2].T, device=device), axis=0, xp=xp)
    assert_close(unscaled, special.softmax(values[:2].T, axis=0), xp=xp)


@pytest.mark.parametrize("width", [3, 8, 20])
def test_row_reductions_and_gathers_of_large_blocks_match_numpy(xp, device, width) -> None:
    # blocks large enough for NumPy's column-by-column paths (hmog_xp._backend.products),
    # with a row of -inf and a huge logit
    rng = np.random.default_rng(width)
    values = 50.0 * rng.normal(size=(3000, width))
    values[0] = -np.inf
    values[1, -1] = -np.inf
    values[2, 0] = 1e300
    block = xp.asarray(values, device=device)
    expected_max = np.max(values, axis=-1, keepdims=True)
    assert_close(B.last_axis_max(block, xp=xp), expected_max, xp=xp, device=device)
    finite = np.nan_to_num(values[3:], neginf=0.0, posinf=0.0)
    assert_close(
        B.last_axis_sum(xp.asarray(finite, device=device), xp=xp),
        np.sum(finite, axis=-1, keepdims=True),
        xp=xp,
    )
    weights, vectors = rng.random((3000, width)), rng.normal(size=(3000, width, 4))
    assert_close(
        B.row_weighted_sums(
            xp.asarray(weights, device=device), xp.asarray(vectors, device=device), xp=xp
        ),
        (weights[:, :, None] * vectors).sum(axis=1),
        xp=xp,
        device=device,
    )
    rows = rng.normal(size=(3000, 1, 4))  # broadcast against the (3000, width, 4) vectors
    assert_close(
        B.vecdot(xp.asarray(rows, device=device), xp.asarray(vectors, device=device), xp=xp),
        np.sum(rows * vectors, axis=-1),
        xp=xp,
        device=device,
    )
    order = np.array([width - 1, 0, 0, width // 2])
    gathered = B.take_columns(block, xp.asarray(order, device=device), xp=xp)
    assert_close(gathered, values[:, order], xp=xp, device=device)
    positions, partners = tuple(int(i) for i in order), (0, 1, width - 1, 1)
    for rows in (values[:5], values, values.reshape(-1, 2, width)):  # small, large, stacked
        array = xp.asarray(rows, device=device)
        for _ in range(2):  # made, then remembered
            assert_close(
                B.take_fixed_columns(array, positions, xp=xp),
                rows[..., order],
                xp=xp,
                device=device,
            )
            assert_close(
                B.fixed_column_products(array, positions, partners, xp=xp),
                rows[..., order] * rows[..., list(partners)],
                xp=xp,
                device=device,
            )
    with np.errstate(invalid="ignore", over="ignore"):
        expected = special.softmax(values[3:], axis=-1)
    probs, log_normalizers = B.softmax_and_logsumexp(block[3:, :], xp=xp)
    assert_close(probs, expected, xp=xp, device=device)
    assert_close(log_normalizers, special.logsumexp(values[3:], axis=-1, keepdims=True), xp=xp)
    head_probs, head_normalizers = B.softmax_and_logsumexp(block[:3, :], xp=xp)
    assert to_numpy(head_normalizers)[0, 0] == -np.inf
    assert np.all(to_numpy(head_probs)[0] == 0.0)
    assert to_numpy(head_probs)[1, -1] == 0.0
    assert to_numpy(head_probs)[2, 0] == 1.0


def test_triangular_and_cholesky_helpers_match_dense_linear_algebra(xp) -> None:
    rng = np.random.default_rng(0)
    factor_np = rng.normal(size=(2, 3, 3))
    matrices = factor_np @ factor_np.transpose(0, 2, 1) + 3 * np.eye(3)
    rhs = rng.normal(size=(3, 2))  # broadcast over the batch
    lower = np.linalg.cholesky(matrices)
    factor = B.cholesky(xp.asarray(matrices), xp=xp)
    assert_close(factor, lower, xp=xp)
    assert_close(
        B.solve_triangular(factor, xp.asarray(rhs), xp=xp), np.linalg.solve(lower, rhs), xp=xp
    )
    assert_close(
        B.solve_triangular(factor, xp.asarray(rhs), transpose=True, xp=xp),
        np.linalg.solve(lower.transpose(0, 2, 1), rhs),
        xp=xp,
    )
    assert_close(
        B.cholesky_solve(factor, xp.asarray(rhs), xp=xp), np.linalg.solve(matrices, rhs), xp=xp
    )
    assert_close(B.cholesky_inverse(factor, xp=xp), np.linalg.inv(matrices), xp=xp)
    assert_close(B.cholesky_logdet(factor, xp=xp), np.linalg.slogdet(matrices)[1], xp=xp)


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize(
    ("factors", "sides"),
    [
        ((), (4, 3)),  # one factor, one right-hand side matrix
        ((), (5, 4, 2)),  # one factor, stacked right-hand sides
        ((3,), (3, 4, 2)),  # a factor per right-hand side
        ((12,), (12, 4, 2)),  # more factors than the small path loops over
        ((), (4, 2000)),  # a right-hand side too large for the small path
    ],
)
def test_small_and_stacked_triangular_solves_match_scipy(xp, device, dtype, factors, sides):
    # NumPy takes SciPy's LAPACK for a few small matrices and numpy.linalg otherwise: the
    # results are those of dense linear algebra on every shape either way
    from scipy import linalg

    rng = np.random.default_rng(len(sides) + sum(sides))
    halves = rng.normal(size=(*factors, 4, 4))
    matrices = halves @ np.swapaxes(halves, -1, -2) + 4.0 * np.eye(4)
    rhs = rng.normal(size=sides)
    lower = np.linalg.cholesky(matrices)
    cast = getattr(xp, dtype)
    factor = B.cholesky(xp.asarray(matrices, dtype=cast, device=device), xp=xp)
    assert_close(factor, lower.astype(dtype), xp=xp, device=device)
    tiled = np.broadcast_to(lower, (*sides[:-2], 4, 4))
    for transpose in (False, True):
        expected = np.stack(
            [
                linalg.solve_triangular(t, b, lower=True, trans=int(transpose))
                for t, b in zip(tiled.reshape(-1, 4, 4), rhs.reshape(-1, *sides[-2:]), strict=True)
            ]
        ).reshape(sides)
        solved = B.solve_triangular(
            factor, xp.asarray(rhs, dtype=cast, device=device), transpose=transpose, xp=xp
        )
        assert_close(solved, expected.astype(dtype), xp=xp, device=device)


@pytest.mark.parametrize("stack", [(), (3,), (12,)])  # one, a small stack, a large stack
def test_eigenvalues_known_above_is_never_wrong(xp, stack) -> None:
    # Oracle: numpy.linalg.eigvalsh. True must mean every eigenvalue exceeds the floor; NumPy
    # and torch (the host backends) must also say so whenever it does, the rest may not know.
    rng = np.random.default_rng(len(stack))
    halves = rng.normal(size=(*stack, 4, 4))
    matrices = halves @ np.swapaxes(halves, -1, -2) + 0.5 * np.eye(4)
    lowest = float(np.linalg.eigvalsh(matrices).min())
    host = xp_name(xp) in ("numpy", "torch")
    array = xp.asarray(matrices, dtype=xp.float64)
    for floor, above in [(0.9 * lowest, True), (1.1 * lowest, False), (-1.0, True)]:
        assert B.eigenvalues_known_above(array, floor, xp=xp) is (above and host)
    with_nan = matrices.copy()
    with_nan[(..., 1, 1) if not stack else (0, 1, 1)] = np.nan
    assert B.eigenvalues_known_above(xp.asarray(with_nan), -1.0, xp=xp) is False


def test_cholesky_of_indefinite_matrix_raises_or_flags(xp) -> None:
    indefinite = xp.asarray([[1.0, 2.0], [2.0, 1.0]], dtype=xp.float64)
    if xp_name(xp) == "jax":  # JAX reports failure with NaN; callers check the diagonal
        assert np.isnan(to_numpy(B.cholesky(indefinite, xp=xp))).any()
        return
    with pytest.raises(hx.ValidationError, match="not positive definite"):
        B.cholesky(indefinite, xp=xp)
    stacked = xp.stack([xp.eye(2, dtype=xp.float64), indefinite])
    with pytest.raises(hx.ValidationError, match="not positive definite"):
        B.cholesky(stacked, xp=xp)


def test_broadcast_shapes() -> None:
    assert B.broadcast_shapes((3, 1), (4,), ()) == np.broadcast_shapes((3, 1), (4,), ())
    with pytest.raises(hx.ValidationError, match="do not broadcast"):
        B.broadcast_shapes((3,), (4,))


def test_default_float_dtype(xp) -> None:
    assert B.default_float_dtype(xp) == xp.float64


def _same_result(actual: Any, expected: Any) -> None:
    assert type(actual) is type(expected)
    assert np.shape(actual) == np.shape(expected)
    assert np.asarray(actual).dtype == np.asarray(expected).dtype
    np.testing.assert_array_equal(actual, expected)


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128", "int32", "bool"])
def test_the_numpy_namespace_answers_as_array_api_compat_does(dtype: str) -> None:
    import array_api_compat.numpy as compat

    lean = B.namespace_for("numpy")
    assert lean is not compat
    assert B.backend_name_of(lean) == "numpy"
    assert B.array_namespace(np.ones(2)) is lean
    assert B.array_namespace(np.float64(1.0), np.ones(2)) is lean
    rng = np.random.default_rng(0)
    x = (10 * rng.normal(size=(3, 4, 5))).astype(dtype)
    inputs = [x, x[0, 0], x[:, :0], x.T, np.float64(2.5), np.ones((2, 3), dtype=dtype)[..., ::2]]
    for value in inputs:
        for axis in (None, -1, 0, (0, -1)) if np.ndim(value) >= 2 else (None,):
            for keepdims in (False, True):
                _same_result(
                    lean.sum(value, axis=axis, keepdims=keepdims),
                    compat.sum(value, axis=axis, keepdims=keepdims),
                )
                if np.size(value) and np.asarray(value).dtype.kind != "c":
                    _same_result(
                        lean.max(value, axis=axis, keepdims=keepdims),
                        compat.max(value, axis=axis, keepdims=keepdims),
                    )
        if np.ndim(value) >= 2:
            _same_result(lean.matrix_transpose(value), compat.matrix_transpose(value))
            axes = tuple(reversed(range(np.ndim(value))))
            _same_result(lean.permute_dims(value, axes), compat.permute_dims(value, axes))
        target = np.complex64 if np.asarray(value).dtype.kind == "c" else np.float32
        for copy in (True, False):
            _same_result(lean.astype(value, target, copy=copy), compat.astype(value, target))
        flat = (int(np.size(value)),)
        _same_result(lean.reshape(value, flat), compat.reshape(value, flat))
        if isinstance(value, np.ndarray):  # a view exactly where NumPy's reshape gives one
            assert np.shares_memory(lean.reshape(value, flat), value) == np.shares_memory(
                compat.reshape(value, flat), value
            )
        _same_result(lean.zeros_like(value), compat.zeros_like(value))
    assert lean.astype(x, x.dtype, copy=False) is x  # no copy where none is needed
    assert lean.astype(x, x.dtype).base is None  # copy=True: a new array
    _same_result(lean.zeros((2, 3), dtype=lean.float32), compat.zeros((2, 3), dtype=np.float32))
    with pytest.raises(ValueError, match="at least 2-dimensional"):
        lean.matrix_transpose(np.ones(3))
    with pytest.raises(ValueError, match="zero-size array"):
        lean.max(np.ones((0, 2)))
    with pytest.raises(ValueError, match="device"):
        lean.zeros(2, device="gpu")
