"""The canonical latent basis: same distribution, idempotent, one answer per orbit, every backend.

Oracles: the NumPy generative-form cases of :mod:`tests.test_hmog` (SciPy densities, Bayes'
rule) and the convention itself checked in NumPy (``AᵀΨ⁻¹A`` diagonal and sorted for full
latent components, sorted diagonal for restricted ones, ``Σ_i B_ij³ >= 0``).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from scipy.stats import ortho_group

import hmog_xp as hx
from hmog_xp.hmog import canonical_latent_basis, has_full_latent_basis
from tests.helpers import assert_close, to_numpy
from tests.test_hmog import FEW, HMoGCase, asarray, build_model, hmog_cases, make_case

ALL_VARIANTS = [
    ("analytic", None),
    *[("differentiable", rep) for rep in (hx.Diagonal(), hx.Scale(), hx.PositiveDefinite())],
    *[("symmetric", rep) for rep in (hx.Diagonal(), hx.Scale(), hx.PositiveDefinite())],
]
VARIANT_IDS = [k if r is None else f"{k}-{type(r).__name__}" for k, r in ALL_VARIANTS]


def reparametrised(case: HMoGCase, basis: np.ndarray) -> HMoGCase:
    """The same distribution after ``y = T y'`` (``T`` orthogonal): ``A T``, ``Tᵀμ``, ``TᵀΣT``."""
    return dataclasses.replace(
        case,
        loadings=case.loadings @ basis,
        means=case.means @ basis,
        covariances=basis.T @ case.covariances @ basis,
    )


def random_symmetry(model: Any, rng: np.random.Generator) -> np.ndarray:
    """A random orthogonal map that keeps ``model``'s structure (restricted: signed permutation)."""
    d = model.lat_dim
    signs = rng.choice([-1.0, 1.0], size=d)
    if has_full_latent_basis(model):
        rotation = ortho_group.rvs(d, random_state=rng) if d > 1 else np.eye(1)
        return rotation * signs
    return np.eye(d)[:, rng.permutation(d)] * signs


def check_convention(model: Any, params: Any) -> None:
    """The canonical basis in NumPy: ``G = BᵀB`` (``B = L⁻¹A``) and the cube sign rule.

    Columns of ``B`` at rounding level (null directions of ``A``) take the rule from the
    posterior component centres ``c_k`` (the upper mixture's means at ``u = 0``).
    """
    generative = model.to_generative(params)
    loadings, noise = to_numpy(generative.loadings), to_numpy(generative.noise)
    p = loadings.shape[0]
    dense = noise if noise.ndim == 2 else np.diag(np.broadcast_to(noise, (p,)))
    white = np.linalg.solve(np.linalg.cholesky(dense), loadings)
    gram = white.T @ white
    diagonal = np.diag(gram)
    assert np.all(np.diff(diagonal) <= 1e-9 * (1.0 + np.abs(diagonal[:-1])))
    if has_full_latent_basis(model):
        off = gram - np.diag(diagonal)
        np.testing.assert_allclose(off, 0.0, atol=1e-9 * (1.0 + np.abs(gram).max()))
    cubes = np.sum(white**3, axis=0)
    resolved = np.abs(cubes) > 1e-12 * np.max(np.sum(np.abs(white) ** 3, axis=0))
    upper = model.posterior_upper.to_generative(params[model.lkl_dim :])
    centre_cubes = np.sum(to_numpy(upper.means) ** 3, axis=0)
    assert np.all(np.where(resolved, cubes, centre_cubes) >= 0.0)


@FEW
@given(data=st.data())
def test_canonical_basis_keeps_the_distribution_and_is_idempotent(
    xp: Any, data: st.DataObject
) -> None:
    case = data.draw(hmog_cases(xp))
    model = case.model
    params, points = asarray(xp, case.natural), asarray(xp, case.points)
    canonical = canonical_latent_basis(model, params)
    assert_close(
        model.log_observable_density(canonical, points),
        case.log_density(case.points),
        xp=xp,
        rtol=1e-7,
    )
    probabilities = hx.Categorical(model.n_components).to_probs(
        model.posterior_categorical(canonical, points)
    )
    assert_close(probabilities, case.responsibilities(case.points), xp=xp, rtol=1e-6, atol=1e-9)
    check_convention(model, canonical)
    if model.lat_dim <= model.lower_harmonium.obs_dim:  # else null directions tie
        again = canonical_latent_basis(model, canonical)
        assert_close(again, to_numpy(canonical), xp=xp, rtol=1e-8, atol=1e-9)


@FEW
@given(data=st.data(), seed=st.integers(0, 2**16))
def test_a_symmetry_of_the_basis_then_canonicalising_gives_the_same_parameters(
    xp: Any, data: st.DataObject, seed: int
) -> None:
    case = data.draw(hmog_cases(xp))
    model = case.model
    assume(model.lat_dim <= model.lower_harmonium.obs_dim)  # else null directions tie
    moved = reparametrised(case, random_symmetry(model, np.random.default_rng(seed)))
    direct = canonical_latent_basis(model, asarray(xp, case.natural))
    after = canonical_latent_basis(model, asarray(xp, moved.natural))
    assert_close(after, to_numpy(direct), xp=xp, rtol=1e-7, atol=1e-8)


@pytest.mark.star_on_jax
@pytest.mark.parametrize(("kind", "rep"), ALL_VARIANTS, ids=VARIANT_IDS)
@pytest.mark.parametrize("obs_rep", [hx.Diagonal(), hx.Scale(), hx.PositiveDefinite()])
def test_every_variant_keeps_the_observable_mixture(xp: Any, kind: str, rep: Any, obs_rep) -> None:
    model = build_model(kind, 4, obs_rep, 3, rep or hx.Diagonal(), 3)
    case = make_case(model, 11, n_points=8)
    canonical = canonical_latent_basis(model, asarray(xp, case.natural))
    weights, means, covariances = model.observable_mixture(canonical)
    expected = case.observable_mixture  # components keep their labels
    assert_close(weights, expected[0], xp=xp, rtol=1e-9)
    assert_close(means, expected[1], xp=xp, rtol=1e-8, atol=1e-10)
    assert_close(covariances, expected[2], xp=xp, rtol=1e-8, atol=1e-10)
    check_convention(model, canonical)


def test_ppca_start_is_the_same_on_every_backend(xp: Any) -> None:
    """The PPCA loadings' signs no longer depend on the backend's eigenvectors."""
    lower = hx.analytic_hmog(5, hx.Diagonal(), 3, 2).lower_harmonium
    rng = np.random.default_rng(0)
    data = rng.normal(size=(200, 3)) @ rng.normal(size=(3, 5)) + 0.3 * rng.normal(size=(200, 5))
    reference = lower.initialize_from_sample(0, data, 0.0)
    params = lower.initialize_from_sample(0, asarray(xp, data), 0.0)
    assert_close(params, reference, xp=xp, rtol=1e-8, atol=1e-10)


def test_ppca_start_loadings_follow_the_sign_rule(xp: Any) -> None:
    lower = hx.analytic_hmog(6, hx.Diagonal(), 3, 2).lower_harmonium
    rng = np.random.default_rng(1)
    data = rng.normal(size=(300, 6)) * np.arange(1.0, 7.0)
    params = lower.initialize_from_sample(0, asarray(xp, data), 0.0)
    loadings = to_numpy(lower.likelihood_generative(params[: lower.lkl_dim])[0])
    assert np.all(np.sum(loadings**3, axis=0) >= 0.0)
    # the same columns as NumPy's eigenvectors up to sign: PPCA's ML loadings
    covariance = np.cov(data.T, bias=True)
    values, vectors = np.linalg.eigh(covariance)
    top = vectors[:, ::-1][:, :3]
    np.testing.assert_allclose(
        np.abs(loadings.T @ top), np.diag(np.sqrt(values[::-1][:3] - values[:3].mean())), atol=1e-8
    )


@pytest.mark.parametrize(("kind", "rep"), ALL_VARIANTS, ids=VARIANT_IDS)
def test_float32_parameters_keep_their_dtype(xp: Any, kind: str, rep: Any) -> None:
    model = build_model(kind, 6, hx.Diagonal(), 4, rep or hx.Diagonal(), 3)
    case = make_case(model, 5)
    narrow = xp.asarray(case.natural.astype(np.float32))
    canonical = canonical_latent_basis(model, narrow)
    assert canonical.dtype == xp.float32
    expected = canonical_latent_basis(model, case.natural.astype(np.float32).astype(np.float64))
    assert_close(canonical, expected.astype(np.float32), xp=xp, rtol=1e-5, atol=1e-5)
