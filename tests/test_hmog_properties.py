"""HMoG properties: round trips, entropy, whitening, EM, gradients, backends, jit, recovery.

Oracles are the NumPy generative-form cases of :mod:`tests.test_hmog`; in addition

* ``φ(η) = −H(x, y, z) + (p + d)/2 log 2π`` and ``ψ(θ) = θ·η − φ(η)`` from the entropy of the
  joint, ``H = H(z) + Σ_k w_k H(N(μ_k, Σ_k)) + H(N(0, Ψ))``;
* one EM step written in NumPy (textbook E-step, closed-form M-step of the mixture of common
  factor analysers with a free latent prior), compared through ``p(x)`` and ``Ψ``, which
  whitening leaves unchanged;
* ``jax.grad`` / ``torch.autograd`` and central finite differences for the gradient;
* hmog_xp itself on NumPy for cross-backend identity and for ``jax.jit``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st
from sklearn.metrics import adjusted_rand_score

import hmog_xp as hx
from hmog_xp.em import em_step, observable_statistics
from hmog_xp.hmog._mean_parts import join_mean_parts
from tests.conftest import load_namespace
from tests.helpers import assert_close, to_numpy, xp_name
from tests.strategies import REPS
from tests.test_hmog import (
    FEW,
    KINDS,
    HMoGCase,
    asarray,
    hmog_cases,
    is_jax,
    make_case,
    mixture_log_density,
    readable_noise,
    standard_model,
)

IDENTITY = 1e-10
N_POINTS = 40  # one sample size for the EM, gradient and identity tests (one JAX compilation)
VARIANTS = [("analytic", None)] + [(k, r) for k in ("differentiable", "symmetric") for r in REPS]
VARIANT_IDS = [k if r is None else f"{k}-{type(r).__name__}" for k, r in VARIANTS]


def joint_entropy(case: HMoGCase) -> float:
    w, p, d = case.weights, case.loadings.shape[0], case.loadings.shape[1]
    gauss = [
        0.5 * (d * math.log(2 * math.pi * math.e) + np.linalg.slogdet(c)[1])
        for c in case.covariances
    ]
    noise = 0.5 * (p * math.log(2 * math.pi * math.e) + np.linalg.slogdet(case.noise)[1])
    return float(-w @ np.log(w) + w @ np.array(gauss) + noise)


def is_complete(model: Any) -> bool:
    """Whether the upper mixture is complete (to_natural, whitening, EM are available)."""
    upper = model.posterior_upper
    return upper.varying_rep == upper.component_man.rep


def close(name: str, actual: Any, desired: Any, **kwargs: Any) -> None:
    try:
        assert_close(actual, desired, **kwargs)
    except AssertionError as error:
        raise AssertionError(f"{name}: {error}") from None


def variant_model(xp: Any, kind: str, rep: Any) -> Any:
    if is_jax(xp) and rep is not None and not isinstance(rep, hx.Diagonal):
        pytest.skip("one structure per variant on JAX (eager compilation is slow)")
    return standard_model(kind, rep)


# -- coordinates, entropy -------------------------------------------------------------------------


@FEW
@given(data=st.data())
def test_log_partition_and_negative_entropy_match_the_joint_entropy(
    xp: Any, data: st.DataObject
) -> None:
    case = data.draw(hmog_cases(xp))
    model, params = case.model, asarray(xp, case.natural)
    p, d = model.data_dim, model.lat_dim
    phi = -joint_entropy(case) + 0.5 * (p + d) * math.log(2 * math.pi)
    psi = case.natural @ case.means_coordinates - phi
    assert_close(model.log_partition_function(params), np.asarray(psi), xp=xp, rtol=1e-7, atol=1e-7)
    if hasattr(model, "negative_entropy") and is_complete(model):
        means = asarray(xp, case.means_coordinates)
        assert_close(model.negative_entropy(means), np.asarray(phi), xp=xp, rtol=1e-6, atol=1e-6)


@FEW
@given(data=st.data())
def test_generative_and_analytic_coordinates_round_trip(xp: Any, data: st.DataObject) -> None:
    case = data.draw(hmog_cases(xp))
    model, params = case.model, asarray(xp, case.natural)
    # every variant builds the generative forms it can represent exactly
    generative = [asarray(xp, a) for a in case.generative]
    built = model.from_generative(*generative)
    assert_close(built, case.natural, xp=xp, rtol=1e-7, atol=1e-7)
    for actual, desired in zip(model.to_generative(built), case.generative, strict=True):
        assert_close(actual, desired, xp=xp, rtol=1e-7, atol=1e-8)
    if isinstance(model, hx.DifferentiableHMoG):
        return  # prior and posterior mixtures differ: no join_conjugated / to_natural
    lkl, prior = model.split_conjugated(params)
    assert_close(model.join_conjugated(lkl, prior), case.natural, xp=xp, rtol=1e-9, atol=1e-9)
    if not is_complete(model):
        return  # restricted lat_rep: no to_natural (see test_hmog_errors)
    means = asarray(xp, case.means_coordinates)
    assert_close(model.to_natural(model.to_mean(params)), case.natural, xp=xp, rtol=1e-6, atol=1e-6)
    assert_close(
        model.to_mean(model.to_natural(means)), case.means_coordinates, xp=xp, rtol=1e-6, atol=1e-7
    )


# -- whitening ------------------------------------------------------------------------------------


@FEW
@given(data=st.data())
def test_whitening_preserves_the_density_and_standardises_the_latent(
    xp: Any, data: st.DataObject
) -> None:
    case = data.draw(hmog_cases(xp, kinds=("analytic", "symmetric")))
    assume(is_complete(case.model))  # Analytic, or Symmetric with a full lat_rep
    model, params, x = case.model, asarray(xp, case.natural), asarray(xp, case.points)
    means = model.to_mean(params)
    white = model.whiten_prior(means)
    obs_dim = model.obs_man.dim
    assert_close(white[:obs_dim], means[:obs_dim], xp=xp, rtol=0, atol=0)
    whitened = model.to_natural(white)
    assert_close(
        model.log_observable_density(whitened, x),
        case.log_density(case.points),
        xp=xp,
        rtol=1e-6,
        atol=1e-6,
    )
    w, mu, cov, *_ = (to_numpy(a) for a in model.to_generative(whitened))
    np.testing.assert_allclose(w, case.weights, rtol=1e-7)
    np.testing.assert_allclose(w @ mu, np.zeros(model.lat_dim), atol=1e-7)
    second = np.einsum("k,kij->ij", w, cov + mu[:, :, None] * mu[:, None, :])
    np.testing.assert_allclose(second, np.eye(model.lat_dim), atol=1e-7)


@pytest.mark.parametrize("rep", [hx.Diagonal(), hx.Scale()], ids=["Diagonal", "Scale"])
def test_differentiable_whitening_standardises_per_rep(xp: Any, rep: Any) -> None:
    model = variant_model(xp, "differentiable", rep)
    case = make_case(model, seed=8)
    means = model.to_mean(asarray(xp, case.natural))
    white = model.whiten_prior(means)
    p, d = model.data_dim, model.lat_dim
    obs_dim = model.obs_man.dim
    assert_close(white[:obs_dim], means[:obs_dim], xp=xp, rtol=0, atol=0)
    upper = to_numpy(white[model.lkl_dim :])
    np.testing.assert_allclose(upper[:d], np.zeros(d), atol=1e-9)
    eta = case.means_coordinates
    m, second = eta[model.lkl_dim : model.lkl_dim + d], eta[model.lkl_dim + d]
    if isinstance(rep, hx.Diagonal):  # E[y²] per dimension = 1: per-dimension standardisation
        np.testing.assert_allclose(upper[d : 2 * d], np.ones(d), rtol=1e-9)
        scale = np.sqrt(eta[model.lkl_dim + d : model.lkl_dim + 2 * d] - m**2)
    else:  # E|y|² = d
        np.testing.assert_allclose(upper[d], float(d), rtol=1e-9)
        scale = np.sqrt((second - m @ m) / d) * np.ones(d)
    cross = eta[obs_dim : model.lkl_dim].reshape(p, d)
    expected = (cross - np.outer(eta[:p], m)) / scale
    assert_close(white[obs_dim : model.lkl_dim], expected.reshape(-1), xp=xp, rtol=1e-8)
    np.testing.assert_allclose(upper[-1], case.weights[-1], rtol=1e-9)


# -- EM -------------------------------------------------------------------------------------------


def em_step_np(case: HMoGCase, xs: np.ndarray) -> tuple[np.ndarray, ...]:
    """One EM step with a free latent prior: ``(w, μ, Σ, A, b, Ψ)``."""
    n, obs_rep = len(xs), case.model.lower_harmonium.obs_rep
    r, m = case.responsibilities(xs), case.component_posterior_means(xs)
    totals = r.sum(axis=0)
    mu = np.einsum("nk,nki->ki", r, m) / totals[:, None]
    second = np.einsum("nk,nki,nkj->kij", r, m, m) / totals[:, None, None]
    second = second + np.linalg.inv(case.posterior_precisions)
    sigma = second - mu[:, :, None] * mu[:, None, :]
    w = totals / n
    y_mean, y_second = w @ mu, np.einsum("k,kij->ij", w, second)
    c_xy = xs.T @ np.einsum("nk,nki->ni", r, m) / n - np.outer(xs.mean(0), y_mean)
    a = c_xy @ np.linalg.inv(y_second - np.outer(y_mean, y_mean))
    residual = np.cov(xs.T, bias=True).reshape(len(a), len(a)) - a @ c_xy.T
    if isinstance(obs_rep, hx.Diagonal):
        residual = np.diag(np.diag(residual))
    elif isinstance(obs_rep, hx.Scale):
        residual = np.trace(residual) / len(a) * np.eye(len(a))
    return w, mu, sigma, a, xs.mean(0) - a @ y_mean, residual


@FEW
@given(data=st.data())
def test_one_em_step_matches_the_textbook_update(xp: Any, data: st.DataObject) -> None:
    case = data.draw(hmog_cases(xp, kinds=("analytic", "symmetric")))
    assume(is_complete(case.model))
    model, params = case.model, asarray(xp, case.natural)
    xs = make_case(model, seed=11, n_points=N_POINTS).points
    data_x = asarray(xp, xs)
    stepped = model.expectation_maximization(params, data_x)
    w, mu, sigma, a, b, psi = em_step_np(case, xs)
    expected = mixture_log_density(w, mu @ a.T + b, a @ sigma @ a.T + psi, xs)
    assert_close(
        model.log_observable_density(stepped, data_x), expected, xp=xp, rtol=1e-6, atol=1e-6
    )
    generative = model.to_generative(stepped)
    assert_close(generative.weights, w, xp=xp, rtol=1e-6, atol=1e-9)
    noise = readable_noise(model.lower_harmonium.obs_rep, psi)
    assert_close(generative.noise, noise, xp=xp, rtol=1e-6, atol=1e-9)
    means = model.mean_posterior_statistics(params, data_x)
    assert_close(stepped, model.to_natural(model.whiten_prior(means)), xp=xp, rtol=0, atol=0)
    # The EM engine's M-step (whitening and to_natural fused) is the same update.
    assert_close(model.mstep(means), to_numpy(stepped), xp=xp, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("kind", ["analytic", "symmetric"])
@pytest.mark.parametrize("regularization", [None, hx.Regularization(0.05, 0.1, 0.01)])
def test_the_fused_m_step_is_whitening_then_to_natural(
    xp: Any, kind: str, regularization: Any
) -> None:
    model = variant_model(xp, kind, None if kind == "analytic" else hx.PositiveDefinite())
    xs = asarray(xp, make_case(model, seed=14, n_points=N_POINTS).points)
    means = model.mean_posterior_statistics(model.initialize_from_sample(5, xs), xs)
    stabilised = model.mstep_regularize(means, regularization or hx.Regularization())
    composed = model.to_natural(model.whiten_prior(stabilised))
    fused = model.mstep(means, regularization)
    assert_close(fused, to_numpy(composed), xp=xp, rtol=1e-10, atol=1e-10)
    generative = model.to_generative(fused)  # a whitened latent marginal: mean 0, covariance I
    weights, means_k, covariances_k = (to_numpy(v) for v in generative[:3])
    marginal_mean = weights @ means_k
    spread = np.einsum("k,kij->ij", weights, covariances_k + means_k[:, :, None] * means_k[:, None])
    np.testing.assert_allclose(marginal_mean, 0.0, atol=1e-10)
    np.testing.assert_allclose(spread, np.eye(model.lat_dim), atol=1e-10)


@pytest.mark.parametrize("obs_rep", [hx.Diagonal(), hx.Scale(), hx.PositiveDefinite()])
def test_the_fused_m_step_applies_binding_floors_as_the_composition_does(
    xp: Any, obs_rep: Any
) -> None:
    # Floors placed inside the spread of the values they floor, so every stabiliser acts:
    # the fused M-step floors the noise it computes, the composition floors Cov[x] first.
    if is_jax(xp) and not isinstance(obs_rep, hx.Diagonal):
        pytest.skip("one structure per variant on JAX (eager compilation is slow)")
    model = hx.analytic_hmog(3, obs_rep, 2, 2)
    xs = asarray(xp, make_case(model, seed=15, n_points=N_POINTS).points)
    means = model.mean_posterior_statistics(model.initialize_from_sample(6, xs), xs)
    noise = np.atleast_1d(to_numpy(model.to_generative(model.mstep(means)).noise))
    variances = np.linalg.eigvalsh(noise) if noise.ndim == 2 else noise
    noise_floor = 2.0 * float(variances[0]) if variances.size == 1 else float(np.median(variances))
    upper = model.posterior_upper
    components = upper.split_mean_mixture(model.split_coords(means)[2])[0]
    covariances = upper.component_man.split_mean_covariance(components)[1]
    dense = to_numpy(upper.component_man.rep.unpack(covariances, 2))
    reg_covar = float(np.median(np.linalg.eigvalsh(dense)))
    regularization = hx.Regularization(reg_covar, noise_floor, 0.01)
    composed = model.to_natural(model.whiten_prior(model.mstep_regularize(means, regularization)))
    fused = model.mstep(means, regularization)
    assert_close(fused, to_numpy(composed), xp=xp, rtol=1e-9, atol=1e-10)
    floored = np.atleast_1d(to_numpy(model.to_generative(fused).noise))
    lowest = np.linalg.eigvalsh(floored)[0] if floored.ndim == 2 else np.min(floored)
    assert lowest == pytest.approx(noise_floor, rel=1e-8)


@pytest.mark.parametrize("kind", ["analytic", "symmetric"])
def test_the_m_steps_log_partition_is_that_of_its_parameters(xp: Any, kind: str) -> None:
    model = variant_model(xp, kind, None if kind == "analytic" else hx.PositiveDefinite())
    xs = asarray(xp, make_case(model, seed=13, n_points=N_POINTS).points)
    means = model.mean_posterior_statistics(model.initialize_from_sample(6, xs), xs)
    stabilisers = hx.Regularization(1e-3, 1e-3, 1.0)
    params, log_partition = model.mstep_and_log_partition(means, stabilisers)
    assert model.mstep_gives_log_partition  # a complete upper mixture, fused M-step
    assert_close(params, to_numpy(model.mstep(means, stabilisers)), xp=xp, rtol=0, atol=0)
    direct = to_numpy(model.log_partition_function(params))
    assert_close(log_partition, direct, xp=xp, rtol=1e-12, atol=1e-12)


def test_a_fit_that_hands_the_log_partition_on_follows_plain_em_steps(xp: Any) -> None:
    model = variant_model(xp, "analytic", None)
    xs = asarray(xp, make_case(model, seed=17, n_points=N_POINTS).points)
    start = model.initialize_from_sample(7, xs)
    fit = hx.fit_em(model, start, xs, max_iter=6, tol=0.0)
    # the reference: em_step, whose E-step computes every log-partition itself
    statistics = observable_statistics(model, xs, N_POINTS)
    params, history = start, []
    for _ in range(6):
        params, log_likelihood = em_step(model, params, xs, statistics, N_POINTS)
        history.append(float(log_likelihood))
    history.append(float(model.average_log_observable_density(params, xs)))
    np.testing.assert_allclose(fit.log_likelihoods, history, rtol=1e-12, atol=0)
    assert_close(fit.params, to_numpy(params), xp=xp, rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize("kind", ["analytic", "symmetric"])
def test_em_never_decreases_the_likelihood(xp: Any, kind: str) -> None:
    model = variant_model(xp, kind, None if kind == "analytic" else hx.PositiveDefinite())
    xs = asarray(xp, make_case(model, seed=12, n_points=N_POINTS).points)
    params = model.initialize_from_sample(3, xs)
    history = [float(model.average_log_observable_density(params, xs))]
    for _ in range(15):
        params = model.expectation_maximization(params, xs)
        history.append(float(model.average_log_observable_density(params, xs)))
    assert np.all(np.diff(history) >= -1e-10), history
    assert history[-1] > history[0]


# -- gradients ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "rep"), VARIANTS, ids=VARIANT_IDS)
def test_gradient_matches_autodiff_and_finite_differences(xp: Any, kind: str, rep: Any) -> None:
    model = variant_model(xp, kind, rep)
    case = make_case(model, seed=13, n_points=N_POINTS)
    params, xs = asarray(xp, case.natural), asarray(xp, case.points)
    gradient = model.log_likelihood_gradient(params, xs)
    assert tuple(gradient.shape) == (model.dim,)
    objective = model.average_log_observable_density
    name = xp_name(xp)
    if name == "jax":  # one compiled program for the three ways of differentiating
        import jax

        def autodiff(t: Any) -> tuple[Any, ...]:
            value, wrapped = hx.value_and_grad(objective)(t, xs)
            return jax.grad(objective)(t, xs), value, wrapped, hx.grad(objective)(t, xs)

        direct, value, wrapped, plain = jax.jit(autodiff)(params)
        for auto in (direct, wrapped, plain):
            assert_close(auto, gradient, xp=xp, rtol=1e-8, atol=1e-10)
        assert_close(value, objective(params, xs), xp=xp, rtol=1e-12)
    elif name == "torch":
        leaf = params.detach().clone().requires_grad_(True)
        objective(leaf, xs).backward()
        assert_close(leaf.grad, gradient, xp=xp, rtol=1e-8, atol=1e-10)
        value, auto = hx.value_and_grad(objective)(params, xs)
        assert_close(auto, gradient, xp=xp, rtol=1e-8, atol=1e-10)
        assert_close(value, objective(params, xs), xp=xp, rtol=1e-12)
        assert_close(hx.grad(objective)(params, xs), gradient, xp=xp, rtol=1e-8, atol=1e-10)
    else:  # Richardson-extrapolated central differences along random unit directions
        rng = np.random.default_rng(0)

        def central(direction: Any, step: float) -> float:
            ahead = objective(params + step * direction, xs)
            return float((ahead - objective(params - step * direction, xs)) / (2 * step))

        for _ in range(3):
            unit = rng.normal(size=model.dim)
            direction = asarray(xp, unit / np.linalg.norm(unit))
            estimate = (4 * central(direction, 5e-4) - central(direction, 1e-3)) / 3
            exact = float(xp.sum(gradient * direction))
            np.testing.assert_allclose(estimate, exact, rtol=1e-7, atol=1e-8)


# -- cross-backend identity -----------------------------------------------------------------------


def _outputs(model: Any, case: HMoGCase, xp: Any) -> dict[str, Any]:
    params, xs = asarray(xp, case.natural), asarray(xp, case.points)
    outputs = {
        "log density": model.log_observable_density(params, xs),
        "soft assignments": model.posterior_soft_assignments(params, xs),
        "latent mean": model.posterior_latent_mean(params, xs),
        "mean posterior statistics": model.mean_posterior_statistics(params, xs),
        "to_mean": model.to_mean(params),
        "gradient": model.log_likelihood_gradient(params, xs),
        "observable covariances": model.observable_mixture(params).covariances,
    }
    if is_complete(model):
        outputs["whitened"] = model.whiten_prior(model.to_mean(params))
    if is_complete(model) and hasattr(model, "expectation_maximization"):
        outputs["EM step"] = model.expectation_maximization(params, xs)
    return outputs


@pytest.mark.parametrize("kind", KINDS)
def test_every_backend_gives_the_numpy_result(xp: Any, kind: str) -> None:
    model = standard_model(kind, hx.PositiveDefinite() if kind == "symmetric" else None)
    if is_jax(xp):  # the Diagonal structure JAX has compiled already
        model = standard_model(kind)
    case = make_case(model, seed=14, n_points=N_POINTS)
    reference = _outputs(model, case, np)
    for name, value in _outputs(model, case, xp).items():
        close(name, value, reference[name], xp=xp, rtol=IDENTITY, atol=IDENTITY)


# -- jax.jit --------------------------------------------------------------------------------------


def _everything(model: Any, params: Any, x: Any, key: Any, jnp: Any) -> dict[str, Any]:
    """Every public method's output. JAX traces are slow (quadratic in the program size), so
    the Differentiable and Symmetric variants skip the methods whose code the Analytic variant
    shares with them and keep those where the variants differ."""
    means = model.to_mean(params)
    lkl, prior = model.split_conjugated(params)
    out = {
        "log_observable_density": model.log_observable_density(params, x),
        "mean_posterior_statistics": model.mean_posterior_statistics(params, x),
        "posterior_soft_assignments": model.posterior_soft_assignments(params, x),
        "posterior_latent_mean": model.posterior_latent_mean(params, x),
        "to_mean": means,
        "to_generative": tuple(model.to_generative(params)),
        "log_likelihood_gradient": model.log_likelihood_gradient(params, x),
        "from_generative": model.from_generative(*model.to_generative(params)),
        "prior": prior,
    }
    if not isinstance(model, hx.DifferentiableHMoG):
        out["join_conjugated"] = model.join_conjugated(lkl, prior)
    if is_complete(model):
        out["whiten_prior"] = model.whiten_prior(means)
    if isinstance(model, hx.AnalyticHMoG):
        out |= {
            "observable_density": model.observable_density(params, x),
            "average": model.average_log_observable_density(params, x),
            "posterior_statistics": model.posterior_statistics(params, x),
            "posterior_categorical": model.posterior_categorical(params, x),
            "posterior_assignments": model.posterior_assignments(params, x),
            "posterior_hard_assignment": model.posterior_hard_assignment(params, x),
            "observable_mixture": tuple(model.observable_mixture(params)),
            "log_partition_function": model.log_partition_function(params),
            "prior()": model.prior(params),
            "join_coords": model.join_coords(*model.split_coords(params)),
            "to_natural": model.to_natural(means),
            "negative_entropy": model.negative_entropy(means),
        }
    if key is not None:
        out["sample"] = model.sample(key, params, 4)
        out["observable_sample"] = model.observable_sample(key, params, 4)
        out["initialize"] = model.initialize(key, xp=jnp)
        out["initialize_from_sample"] = model.initialize_from_sample(key, x)
    return out


@pytest.mark.parametrize("kind", KINDS)
def test_public_methods_work_under_jax_jit(kind: str) -> None:
    jnp = load_namespace("jax")
    import jax

    model = standard_model(kind)
    case = make_case(model, seed=15)
    params, x = asarray(jnp, case.natural), asarray(jnp, case.points)
    compiled = jax.jit(lambda t, y, k: _everything(model, t, y, k, jnp))(
        params, x, jax.random.key(0)
    )
    eager = _everything(model, case.natural, case.points, None, np)
    for name, value in eager.items():
        for actual, desired in zip(
            jax.tree.leaves(compiled[name]), jax.tree.leaves(value), strict=True
        ):
            close(name, actual, desired, xp=jnp, rtol=IDENTITY, atol=IDENTITY, check_dtype=False)
    xs, ys, zs = compiled["sample"]
    assert (xs.shape, ys.shape, zs.shape) == ((4, 3), (4, 2), (4,))
    for name in ("initialize", "initialize_from_sample"):
        assert compiled[name].shape == (model.dim,)
        assert bool(jnp.all(jnp.isfinite(compiled[name])))
    # bound methods of the frozen model are valid jit targets
    direct = jax.jit(model.log_observable_density)(params, x)
    assert_close(direct, eager["log_observable_density"], xp=jnp, rtol=IDENTITY, atol=IDENTITY)
    static = hx.jit(type(model).posterior_soft_assignments, static_argnums=(0,))(model, params, x)
    assert_close(static, eager["posterior_soft_assignments"], xp=jnp, rtol=IDENTITY, atol=IDENTITY)
    if kind == "analytic":  # EM compiled on its own, with the data closed over
        step = jax.jit(lambda t: model.expectation_maximization(t, x))(params)
        expected = model.expectation_maximization(case.natural, case.points)
        assert_close(step, expected, xp=jnp, rtol=IDENTITY, atol=IDENTITY)


class _CompileCounter(logging.Handler):
    """Counts JAX's "Compiling ..." log records (one per program compiled or loaded)."""

    def __init__(self) -> None:
        super().__init__()
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += "Compiling" in record.getMessage()


def test_a_start_from_data_is_one_compiled_program_on_jax() -> None:
    jnp = load_namespace("jax")
    import jax

    # shapes no other test uses, so no program is already in this process's caches
    model = hx.analytic_hmog(7, hx.Diagonal, 3, 2)
    xs = jnp.asarray(np.random.default_rng(0).normal(size=(41, 7)))
    counter = _CompileCounter()
    logger = logging.getLogger("jax._src.interpreters.pxla")
    logger.addHandler(counter)
    try:
        with jax.log_compiles():
            first = model.initialize_from_sample(0, xs)
            compiled_by_the_first = counter.count
            second = model.initialize_from_sample(1, xs)
    finally:
        logger.removeHandler(counter)
    # the checks, the two draws and one program for the PPCA fit and the mixture on its
    # scores (run operation by operation, the same start compiles about 250 programs)
    assert 0 < compiled_by_the_first <= 20
    assert counter.count == compiled_by_the_first  # a new seed reuses every program
    assert not bool(jnp.all(first == second))  # ... and still draws a new start
    assert bool(jnp.all(jnp.isfinite(first)))


# -- recovery -------------------------------------------------------------------------------------


MAX_EM_STEPS = 200


def test_em_recovers_well_separated_clusters(numpy_selected: None) -> None:
    model = hx.analytic_hmog(8, hx.Diagonal, 2, 3)
    rng = np.random.default_rng(21)
    loadings = 2.0 * np.linalg.qr(rng.normal(size=(8, 2)))[0]
    angles = 2 * np.pi * np.arange(3) / 3
    truth = model.from_generative(
        np.array([0.3, 0.3, 0.4]),
        3.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1),
        np.stack([0.2 * np.eye(2)] * 3),
        loadings,
        rng.normal(size=8),
        rng.uniform(0.2, 0.5, size=8),
    )
    xs, _, labels = model.sample(22, truth, 600)
    best, best_ll, iterations = None, -np.inf, 0
    for seed in range(4):  # like n_init: keep the best of a few starts
        params, history = model.initialize_from_sample(seed, xs), [-np.inf]
        while len(history) <= MAX_EM_STEPS:
            params = model.expectation_maximization(params, xs)
            history.append(float(model.average_log_observable_density(params, xs)))
            if history[-1] - history[-2] < 1e-8:
                break
        if history[-1] > best_ll:
            best, best_ll, iterations = params, history[-1], len(history) - 1
    ari = adjusted_rand_score(labels, model.posterior_hard_assignment(best, xs))
    assert ari >= 0.9, (ari, iterations)
    assert best_ll >= float(model.average_log_observable_density(truth, xs)) - 0.05


@pytest.mark.parametrize("kind", ["analytic", "symmetric"])
def test_the_e_steps_parts_are_its_mean_coordinates_and_the_m_step_takes_either(
    xp: Any, kind: str
) -> None:
    model = variant_model(xp, kind, None if kind == "analytic" else hx.PositiveDefinite())
    xs = asarray(xp, make_case(model, seed=19, n_points=N_POINTS).points)
    params = model.initialize_from_sample(8, xs)
    statistics = observable_statistics(model, xs, 7)
    parts, log_likelihood = model.estep_parts(params, xs, statistics, 7)
    # the oracle: the per-row dense posterior statistics and density
    means = to_numpy(model.mean_posterior_statistics(params, xs))
    assert_close(join_mean_parts(model, parts), means, xp=xp, rtol=1e-10, atol=1e-12)
    dense = to_numpy(model.average_log_observable_density(params, xs))
    assert_close(log_likelihood, dense, xp=xp, rtol=1e-10, atol=1e-12)
    components, weights = model.posterior_upper.split_mean_mixture(model.split_coords(means)[2])
    weighted = to_numpy(parts.weighted) / to_numpy(parts.weights)[:, None]
    np.testing.assert_allclose(weighted, components, rtol=1e-9, atol=1e-11)
    np.testing.assert_allclose(to_numpy(parts.weights), weights, rtol=1e-10, atol=1e-12)
    # the M-step of the parts is the M-step of the mean coordinates, stabilisers and all
    stabilisers = hx.Regularization(1e-3, 1e-3, 0.5)
    wide_means = xp.asarray(means)
    from_parts, log_partition = model.mstep_parts_and_log_partition(parts, stabilisers)
    expected = to_numpy(model.mstep(wide_means, stabilisers))
    assert_close(from_parts, expected, xp=xp, rtol=1e-9, atol=1e-10)
    assert_close(model.mstep_parts(parts, stabilisers), expected, xp=xp, rtol=1e-9, atol=1e-10)
    direct = to_numpy(model.log_partition_function(from_parts))
    assert_close(log_partition, direct, xp=xp, rtol=1e-12, atol=1e-12)
