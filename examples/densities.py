"""Normal and Categorical distributions with hmog_xp, on the default backend.

Run it with ``python examples/densities.py``; choose the backend with the ``HMOG_XP_BACKEND``
environment variable (``numpy`` when unset), e.g. ``HMOG_XP_BACKEND=torch``.

For each family the script builds parameters from readable quantities (a mean and a
covariance, or class probabilities), evaluates log densities and checks them against the
textbook formula computed with NumPy, converts between natural and mean coordinates, draws
samples, and prints what it found. It exits with an error if any check fails.
"""

from __future__ import annotations

import importlib
import math
import os
import sys
from types import ModuleType
from typing import Any

import numpy as np

if os.environ.get("HMOG_XP_BACKEND", "").strip() == "jax":
    # JAX computes in float32 unless x64 is enabled, before any JAX array is created.
    import jax

    jax.config.update("jax_enable_x64", True)

import hmog_xp as hx

SEED = 0
N_SAMPLES = 20_000
FAILURES: list[str] = []


def default_namespace() -> ModuleType:
    """The Array-API namespace of hmog_xp's default backend.

    hmog_xp's functions follow their inputs: give them arrays of any supported library and the
    results come back in that library. Here we create our inputs with the default backend's
    namespace so that one script runs on every backend.
    """
    name = hx.get_backend()
    if name == "jax":
        return importlib.import_module("jax.numpy")
    if name == "array_api_strict":
        return importlib.import_module("array_api_strict")
    return importlib.import_module(f"array_api_compat.{name}")  # numpy, torch, cupy


def to_numpy(array: Any) -> np.ndarray:
    """Copy an array of any backend into NumPy (on the host)."""
    if isinstance(array, np.ndarray | np.generic | float | int):
        return np.asarray(array)
    if type(array).__module__.startswith("cupy"):
        return array.get()
    return np.from_dlpack(array)


def check(what: str, actual: Any, expected: Any, tol: float) -> None:
    """Print one check's worst absolute error and remember it if it is above ``tol``."""
    error = float(np.max(np.abs(to_numpy(actual) - np.asarray(expected))))
    status = "ok" if error <= tol else "FAILED"
    print(f"  {what:<46} max |error| = {error:9.2e}  (tol {tol:.0e})  {status}")
    if error > tol:
        FAILURES.append(what)


def normal_log_density(x: np.ndarray, mean: np.ndarray, covariance: np.ndarray) -> np.ndarray:
    """log N(x | mean, covariance), straight from the formula, with NumPy."""
    n = mean.shape[-1]
    centred = x - mean
    mahalanobis = np.einsum("...i,ij,...j->...", centred, np.linalg.inv(covariance), centred)
    _, logdet = np.linalg.slogdet(covariance)
    return -0.5 * (n * math.log(2 * math.pi) + logdet + mahalanobis)


def normal_kl(m0: np.ndarray, s0: np.ndarray, m1: np.ndarray, s1: np.ndarray) -> float:
    """KL(N(m0, s0) || N(m1, s1)), straight from the formula, with NumPy."""
    n = m0.shape[-1]
    s1_inv = np.linalg.inv(s1)
    diff = m1 - m0
    return 0.5 * float(
        np.trace(s1_inv @ s0)
        + diff @ s1_inv @ diff
        - n
        + np.linalg.slogdet(s1)[1]
        - np.linalg.slogdet(s0)[1]
    )


def normal_demo(xp: ModuleType, rep: hx.CovarianceRep, covariance: np.ndarray) -> None:
    """Build, evaluate, convert and sample a ``Normal(3, rep)``; check against formulas."""
    mean = np.array([1.0, -2.0, 0.5])
    family = hx.Normal(3, rep)
    print(f"\n{family!r}: {family.dim} parameters (3 for the mean, {family.dim - 3} for Σ)")

    # Readable moments -> natural parameters θ, in the default backend, float64.
    params = family.from_moments(
        xp.asarray(mean, dtype=xp.float64), xp.asarray(covariance, dtype=xp.float64)
    )

    # Log densities at a few points, against the formula.
    points = np.array([[0.0, 0.0, 0.0], [1.0, -2.0, 0.5], [2.0, -1.0, 1.5], [-1.0, 3.0, 0.0]])
    log_p = to_numpy(family.log_density(params, xp.asarray(points, dtype=xp.float64)))
    expected = normal_log_density(points, mean, covariance)
    print("  x                         log p(x) hmog_xp    formula (NumPy)")
    for x, got, want in zip(points, log_p, expected, strict=True):
        print(f"  {np.array2string(x, precision=2):<24}  {got:16.10f}  {want:16.10f}")
    check("log_density vs formula", log_p, expected, 1e-10)

    # Natural θ <-> mean η = E[s(x)] coordinates; to_moments reads θ back.
    means = family.to_mean(params)
    check("to_natural(to_mean(θ)) == θ", family.to_natural(means), to_numpy(params), 1e-10)
    back_mean, back_covariance = family.to_moments(params)
    check("to_moments(from_moments(μ, Σ)) == (μ, Σ)", back_mean, mean, 1e-12)
    check("  ... covariance", back_covariance, covariance, 1e-12)

    # KL(p || p) = 0; KL(p || q) against the formula for q = N(0, Σ_q) of the same rep.
    other_covariance = np.eye(3) * 2.0
    other = family.from_moments(
        xp.zeros(3, dtype=xp.float64), xp.asarray(other_covariance, dtype=xp.float64)
    )
    check("relative_entropy(p, p) == 0", family.relative_entropy(means, params), 0.0, 1e-10)
    kl = family.relative_entropy(means, other)
    check(
        "relative_entropy(p, q) vs formula",
        kl,
        normal_kl(mean, covariance, np.zeros(3), other_covariance),
        1e-10,
    )

    # Samples (an int seed: the backend's own generator) have the right moments.
    samples = to_numpy(family.sample(SEED, params, N_SAMPLES))
    print(f"  {N_SAMPLES} samples, shape {samples.shape}; sample mean {samples.mean(0).round(3)}")
    check("sample mean vs μ", samples.mean(0), mean, 0.05)
    check("sample covariance vs Σ", np.cov(samples, rowvar=False), covariance, 0.1)


def categorical_demo(xp: ModuleType) -> None:
    """Build, evaluate, convert and sample a ``Categorical(4)``; check against ``π``."""
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    family = hx.Categorical(4)
    print(f"\n{family!r}: {family.dim} natural parameters log(π_k / π_0), k = 1..3")

    params = family.from_probs(xp.asarray(probs, dtype=xp.float64))
    print(f"  θ = {to_numpy(params).round(4)}")
    check("to_probs(from_probs(π)) == π", family.to_probs(params), probs, 1e-12)
    labels = xp.asarray([0, 1, 2, 3], dtype=xp.int64)
    check("log_density(k) == log π_k", family.log_density(params, labels), np.log(probs), 1e-12)
    check("to_natural(to_mean(θ)) == θ", family.to_natural(family.to_mean(params)), params, 1e-12)

    samples = to_numpy(family.sample(SEED, params, N_SAMPLES))
    frequencies = np.bincount(samples, minlength=4) / N_SAMPLES
    print("  class   π_k    frequency in samples")
    for k, (p, f) in enumerate(zip(probs, frequencies, strict=True)):
        print(f"  {k:>5}   {p:.2f}   {f:.4f}")
    check("sample frequencies vs π", frequencies, probs, 0.02)


def main() -> int:
    xp = default_namespace()
    print(f"hmog_xp {hx.__version__} on the {hx.get_backend()!r} backend ({xp.__name__})")
    full = np.array([[2.0, 0.6, 0.2], [0.6, 1.0, -0.3], [0.2, -0.3, 0.5]])
    normal_demo(xp, hx.PositiveDefinite(), full)
    normal_demo(xp, hx.Diagonal(), np.diag([2.0, 1.0, 0.5]))
    normal_demo(xp, hx.Scale(), 0.7 * np.eye(3))
    categorical_demo(xp)
    if FAILURES:
        print(f"\n{len(FAILURES)} check(s) FAILED: {', '.join(FAILURES)}")
        return 1
    print("\nAll checks passed.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
