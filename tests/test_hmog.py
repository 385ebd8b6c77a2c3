"""HMoG variants against NumPy/SciPy oracles: coordinates, densities, posteriors, moments.

Every example is a real distribution built in NumPy from its generative form
``z ~ Cat(w)``, ``y | z=k ~ N(μ_k, Σ_k)``, ``x | y ~ N(A y + b, Ψ)`` (DESIGN §4.6). The posterior
precisions ``Λ_k = Σ_k⁻¹ + AᵀΨ⁻¹A`` are drawn in the variant's posterior rep (a Differentiable
HMoG with a diagonal ``pst_rep`` has diagonal ``Λ_k``; a Symmetric HMoG with a diagonal
``lat_rep`` has ``Λ_k`` sharing their off-diagonals), so every variant is covered exactly.
Oracles, written independently of the implementation:

* natural parameters ``(θ_x, W, θ_upper)`` from the layout of DESIGN §4.5–4.6;
* ``log p(x) = logsumexp_k(log w_k + log N(x; A μ_k + b, A Σ_k Aᵀ + Ψ))`` with SciPy;
* responsibilities by Bayes' rule and the textbook per-component posterior
  ``E[y|x,k] = Λ_k⁻¹(AᵀΨ⁻¹(x − b) + Σ_k⁻¹ μ_k)``, ``Cov(y|x,k) = Λ_k⁻¹``;
* mean coordinates from the joint moments (and from sample averages).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp, softmax

import hmog_xp as hx
from tests.helpers import assert_close, to_numpy, xp_name
from tests.strategies import REPS, seeds, spd_matrix

# JAX eager compiles every primitive for every new shape (seconds per model structure), so on
# JAX every test uses the one structure per variant of `standard_model` (p = 3, Diagonal noise,
# d = 2, Diagonal posterior / latent rep, K = 2); the other backends draw structures freely.
FEW = settings(max_examples=min(8, settings.default.max_examples))
KINDS = ("differentiable", "symmetric", "analytic")
REP_IDS = [type(r).__name__ for r in REPS]

# -- NumPy oracles --------------------------------------------------------------------------------


def statistic_np(rep: hx.CovarianceRep, second: np.ndarray, coefficients: bool = False) -> Any:
    """``q`` in the rep's storage: packed upper triangle row by row / diagonal / trace.

    With ``coefficients`` the coefficients of ``xᵀMx`` instead: off-diagonals doubled, and the
    scalar ``s`` of ``s I`` for ``Scale``.
    """
    if isinstance(rep, hx.PositiveDefinite):
        rows, cols = np.triu_indices(second.shape[-1])
        return second[..., rows, cols] * np.where((rows == cols) | (not coefficients), 1.0, 2.0)
    diagonal = np.diagonal(second, axis1=-2, axis2=-1)
    if isinstance(rep, hx.Diagonal):
        return diagonal.copy()
    return diagonal[..., :1].copy() if coefficients else diagonal.sum(-1, keepdims=True)


def natural_np(rep: hx.CovarianceRep, location: np.ndarray, precision: np.ndarray) -> np.ndarray:
    """``(h, −½ q(Λ))`` such that ``θ·s(x) = hᵀx − ½ xᵀΛx``."""
    return np.concatenate([location, -0.5 * statistic_np(rep, precision, coefficients=True)])


def readable_noise(rep: hx.CovarianceRep, noise: np.ndarray) -> np.ndarray:
    """Ψ as ``to_generative`` reports it: dense / diagonal / the 0-d variance."""
    if isinstance(rep, hx.PositiveDefinite):
        return noise
    return np.diag(noise).copy() if isinstance(rep, hx.Diagonal) else np.asarray(noise[0, 0])


def mixture_log_density(weights, means, covariances, x: np.ndarray) -> np.ndarray:
    """``log Σ_k w_k N(x; m_k, C_k)`` with SciPy, for points ``x`` of shape (n, p)."""
    terms = [
        np.log(w) + stats.multivariate_normal(m, c).logpdf(x).reshape(len(x))
        for w, m, c in zip(weights, means, covariances, strict=True)
    ]
    return logsumexp(np.stack(terms), axis=0)


def generative_log_density(model: Any, generative: Any, x: np.ndarray) -> np.ndarray:
    """``log p(x)`` from ``to_generative``'s output, in NumPy (not from observable_mixture)."""
    w, mu, cov, a, b, noise = (to_numpy(part) for part in generative)
    psi = noise if noise.ndim == 2 else np.diag(np.broadcast_to(noise, b.shape))
    return mixture_log_density(w, mu @ a.T + b, a @ cov @ a.T + psi, x)


def build_model(kind: str, p: int, obs_rep: Any, d: int, rep: Any, k: int) -> Any:
    if kind == "analytic":
        return hx.analytic_hmog(p, obs_rep, d, k)
    factory = hx.differentiable_hmog if kind == "differentiable" else hx.symmetric_hmog
    return factory(p, obs_rep, d, rep, k)


def standard_model(kind: str, rep: Any = None) -> Any:
    """``build_model(kind, 3, Diagonal, 2, rep, 2)``: the structures every backend runs."""
    return build_model(kind, 3, hx.Diagonal(), 2, rep or hx.Diagonal(), 2)


def is_jax(xp: Any) -> bool:
    return xp_name(xp) == "jax"


def join_np(obs_rep: Any, x_mean: Any, x_second: Any, cross: Any, upper: Any) -> np.ndarray:
    """``(E[x], E[q(x)], E[x yᵀ], upper)`` (leading axes kept)."""
    flat = cross.reshape((*cross.shape[:-2], -1))
    return np.concatenate([x_mean, statistic_np(obs_rep, x_second), flat, upper], axis=-1)


@dataclass(frozen=True)
class HMoGCase:
    """A variant and one member in generative form, plus observations."""

    model: Any
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covariances: np.ndarray  # (K, d, d), prior component covariances Σ_k
    loadings: np.ndarray  # A (p, d)
    bias: np.ndarray  # b (p,)
    noise: np.ndarray  # Ψ dense (p, p), in obs_rep
    points: np.ndarray  # (n, p)

    @cached_property
    def noise_precision(self) -> np.ndarray:
        return np.linalg.inv(self.noise)

    @cached_property
    def prior_precisions(self) -> np.ndarray:
        return np.linalg.inv(self.covariances)

    @cached_property
    def posterior_precisions(self) -> np.ndarray:
        """``Λ_k = Σ_k⁻¹ + AᵀΨ⁻¹A`` (in the posterior rep by construction)."""
        return self.prior_precisions + self.loadings.T @ self.noise_precision @ self.loadings

    @property
    def generative(self) -> tuple[np.ndarray, ...]:
        """``to_generative``'s form: noise dense / diagonal / 0-d by observable rep."""
        noise = readable_noise(self.model.lower_harmonium.obs_rep, self.noise)
        return self.weights, self.means, self.covariances, self.loadings, self.bias, noise

    @cached_property
    def posterior_locations(self) -> np.ndarray:
        """``h_k = Σ_k⁻¹ μ_k − AᵀΨ⁻¹b``."""
        prior = np.einsum("kij,kj->ki", self.prior_precisions, self.means)
        return prior - self.loadings.T @ self.noise_precision @ self.bias

    @cached_property
    def natural(self) -> np.ndarray:
        """``(θ_x, W, θ_y, Θ, θ_z)`` with ``Θ[:, k−1]`` the sub-rep difference from component 0."""
        upper = self.model.posterior_upper
        h, lam, psi_inv = self.posterior_locations, self.posterior_precisions, self.noise_precision
        obs = natural_np(self.model.lower_harmonium.obs_rep, psi_inv @ self.bias, psi_inv)
        theta_y = natural_np(upper.component_man.rep, h[0], lam[0])
        sub = [
            natural_np(upper.varying_rep, hk - h[0], lk - lam[0])
            for hk, lk in zip(h, lam, strict=True)
        ]
        interaction = np.stack(sub[1:], axis=1) if len(sub) > 1 else np.zeros((len(sub[0]), 0))
        # log π_k/π_0 = θ_z,k + ψ_k − ψ_0 with ψ_k the log-partition of N(μ_k, Σ_k)
        mahalanobis = np.einsum("ki,kij,kj->k", self.means, self.prior_precisions, self.means)
        psi = 0.5 * mahalanobis + 0.5 * np.linalg.slogdet(self.covariances)[1]
        theta_z = np.log(self.weights[1:] / self.weights[0]) - (psi[1:] - psi[0])
        w_flat, upper_flat = (psi_inv @ self.loadings).reshape(-1), interaction.reshape(-1)
        return np.concatenate([obs, w_flat, theta_y, upper_flat, theta_z])

    @cached_property
    def observable_mixture(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        a = self.loadings
        return self.weights, self.means @ a.T + self.bias, a @ self.covariances @ a.T + self.noise

    def log_density(self, x: np.ndarray) -> np.ndarray:
        return mixture_log_density(*self.observable_mixture, x)

    def log_joint(self, x: np.ndarray) -> np.ndarray:
        """``log w_k + log N(x; A μ_k + b, A Σ_k Aᵀ + Ψ)``, shape (n, K)."""
        w, m, c = self.observable_mixture
        logs = [
            np.log(wk) + stats.multivariate_normal(mk, ck).logpdf(x).reshape(len(x))
            for wk, mk, ck in zip(w, m, c, strict=True)
        ]
        return np.stack(logs, axis=-1)

    def responsibilities(self, x: np.ndarray) -> np.ndarray:
        """Bayes' rule: :meth:`log_joint` normalised over the components."""
        return softmax(self.log_joint(x), axis=-1)

    def component_posterior_means(self, x: np.ndarray) -> np.ndarray:
        """Textbook ``E[y|x,k] = Λ_k⁻¹(AᵀΨ⁻¹(x − b) + Σ_k⁻¹ μ_k)``, shape (n, K, d)."""
        a, psi_inv = self.loadings, self.noise_precision
        prior = np.einsum("kij,kj->ki", self.prior_precisions, self.means)
        rhs = ((x - self.bias) @ psi_inv @ a)[:, None, :] + prior[None]
        return np.einsum("kij,nkj->nki", np.linalg.inv(self.posterior_precisions), rhs)

    def latent_mean(self, x: np.ndarray) -> np.ndarray:
        r = self.responsibilities(x)
        return np.einsum("nk,nki->ni", r, self.component_posterior_means(x))

    def upper_statistics(self, probs: Any, means: Any, covariances: Any) -> np.ndarray:
        """``(Σ_k π_k s_R(k), (π_k s_S(k))_{k≥1}, (π_k)_{k≥1})`` for components N(means, cov)."""
        upper = self.model.posterior_upper
        second = covariances + means[..., :, None] * means[..., None, :]
        full = np.concatenate([means, statistic_np(upper.component_man.rep, second)], axis=-1)
        sub = np.concatenate([means, statistic_np(upper.varying_rep, second)], axis=-1)
        interaction = np.swapaxes(probs[..., 1:, None] * sub[..., 1:, :], -1, -2)
        flat = interaction.reshape((*interaction.shape[:-2], -1))  # (sub_dim, K − 1) row-major
        total = np.einsum("...k,...ki->...i", probs, full)
        return np.concatenate([total, flat, probs[..., 1:]], axis=-1)

    @cached_property
    def means_coordinates(self) -> np.ndarray:
        """``to_mean``: ``(E[s_x(x)], E[x yᵀ], E[s_upper(y, z)])`` under the joint."""
        w, mx, cx = self.observable_mixture
        x_second = np.einsum("k,kij->ij", w, cx + mx[:, :, None] * mx[:, None, :])
        y_second = np.einsum(
            "k,kij->ij", w, self.covariances + self.means[:, :, None] * self.means[:, None, :]
        )
        cross = self.loadings @ y_second + np.outer(self.bias, w @ self.means)
        upper = self.upper_statistics(self.weights, self.means, self.covariances)
        return join_np(self.model.lower_harmonium.obs_rep, w @ mx, x_second, cross, upper)

    def posterior_statistics(self, x: np.ndarray) -> np.ndarray:
        """``(s_x(x), x ⊗ E[y|x], E[s_upper | x])`` per observation."""
        outer, cross = (
            x[:, :, None] * x[:, None, :],
            x[:, :, None] * self.latent_mean(x)[:, None, :],
        )
        covariances = np.linalg.inv(self.posterior_precisions)
        upper = self.upper_statistics(
            self.responsibilities(x),
            self.component_posterior_means(x),
            np.broadcast_to(covariances, (len(x), *covariances.shape)),
        )
        return join_np(self.model.lower_harmonium.obs_rep, x, outer, cross, upper)


def _posterior_precisions(model: Any, rng: np.random.Generator, gram: np.ndarray) -> np.ndarray:
    """``Λ_k`` in the posterior rep with ``Λ_k − AᵀΨ⁻¹A`` positive definite."""
    upper, full = model.posterior_upper, hx.PositiveDefinite()
    d, k, sub = len(gram), model.n_components, upper.varying_rep
    if sub == full:
        return gram + np.stack([np.linalg.inv(spd_matrix(rng, d, full)) for _ in range(k)])
    if upper.component_man.rep == sub:  # Differentiable: Λ_k diagonal / scalar, above the gram
        top = np.linalg.eigvalsh(gram)[-1]
        return np.stack([top * np.eye(d) + spd_matrix(rng, d, sub) for _ in range(k)])
    shared = gram + np.linalg.inv(spd_matrix(rng, d, full))  # Symmetric: shared off-diagonals
    return np.stack([shared + spd_matrix(rng, d, sub, 0.5) for _ in range(k)])


def make_case(model: Any, seed: int, scale: float = 1.0, n_points: int = 6) -> HMoGCase:
    """A random valid member of ``model`` and points drawn from it (plus one outlier)."""
    rng = np.random.default_rng(seed)
    lower = model.lower_harmonium
    p, d, k = lower.obs_dim, lower.lat_dim, model.n_components
    loadings = scale * rng.normal(size=(p, d))
    bias = rng.normal(size=p)
    noise = spd_matrix(rng, p, lower.obs_rep)
    gram = loadings.T @ np.linalg.solve(noise, loadings)
    precisions = _posterior_precisions(model, rng, gram)
    covariances = np.linalg.inv(precisions - gram)
    covariances = 0.5 * (covariances + np.swapaxes(covariances, -1, -2))
    weights = np.maximum(rng.dirichlet(np.ones(k)), 0.05)
    weights /= weights.sum()
    means = 1.5 * rng.normal(size=(k, d))
    labels = rng.choice(k, size=n_points - 1, p=weights)
    ys = np.stack([rng.multivariate_normal(means[z], covariances[z]) for z in labels])
    xs = ys @ loadings.T + bias + rng.multivariate_normal(np.zeros(p), noise, size=n_points - 1)
    points = np.concatenate([xs, bias[None] + 3.0])
    return HMoGCase(model, weights, means, covariances, loadings, bias, noise, points)


@st.composite
def hmog_cases(draw: st.DrawFn, xp: Any, kinds: tuple[str, ...] = KINDS) -> HMoGCase:
    kind = draw(st.sampled_from(kinds))
    if is_jax(xp):
        model = standard_model(kind)
    else:
        p, d, k = (draw(st.integers(1, hi)) for hi in (5, 3, 3))
        obs_rep, rep = draw(st.sampled_from(REPS)), draw(st.sampled_from(REPS))
        model = build_model(kind, p, obs_rep, d, rep, k)
    return make_case(model, draw(seeds), draw(st.sampled_from((0.5, 1.0, 2.0))))


def asarray(xp: Any, a: Any) -> Any:
    return xp.asarray(np.asarray(a, dtype=np.float64), dtype=xp.float64)


# -- densities and the observable mixture ---------------------------------------------------------


@FEW
@given(data=st.data())
def test_log_observable_density_matches_scipy(xp: Any, data: st.DataObject) -> None:
    case = data.draw(hmog_cases(xp))
    model = case.model
    params, x = asarray(xp, case.natural), asarray(xp, case.points)
    expected = case.log_density(case.points)
    assert_close(model.log_observable_density(params, x), expected, xp=xp, rtol=1e-7)
    assert_close(model.observable_density(params, x), np.exp(expected), xp=xp, rtol=1e-7)
    average = model.average_log_observable_density(params, x)
    assert_close(average, np.asarray(expected.mean()), xp=xp, rtol=1e-7)
    assert_close(model.log_observable_density(params, x[0, ...]), expected[0], xp=xp, rtol=1e-7)
    # the generative form and the observable mixture
    generative = model.to_generative(params)
    for actual, want in zip(generative, case.generative, strict=True):
        assert_close(actual, want, xp=xp, rtol=1e-7, atol=1e-8)
    from_generative = generative_log_density(model, generative, case.points)
    assert_close(model.log_observable_density(params, x), from_generative, xp=xp, rtol=1e-7)
    for actual, want in zip(model.observable_mixture(params), case.observable_mixture, strict=True):
        assert_close(actual, want, xp=xp, rtol=1e-7, atol=1e-8)
    # coordinates: split/join, prior = the generative prior mixture
    obs, interaction, upper = model.split_coords(params)
    assert_close(interaction, case.noise_precision @ case.loadings, xp=xp)
    assert_close(model.join_coords(obs, interaction, upper), case.natural, xp=xp, rtol=0, atol=0)
    _, prior = model.split_conjugated(params)
    assert_close(model.prior(params), prior, xp=xp)
    assert_close(model.prior_upper.to_generative(prior).weights, case.weights, xp=xp)


# -- posteriors -----------------------------------------------------------------------------------


STRUCTURES = [("analytic", o, None) for o in REPS] + [
    (kind, o, r) for kind in ("differentiable", "symmetric") for o in REPS for r in REPS
]


@pytest.mark.parametrize(
    ("kind", "obs_rep", "rep"),
    STRUCTURES,
    ids=[f"{k}-{type(o).__name__}-{type(r).__name__}" for k, o, r in STRUCTURES],
)
def test_every_structure_matches_the_oracles(xp: Any, kind: str, obs_rep: Any, rep: Any) -> None:
    """Each variant × observable rep × posterior / latent rep, deterministically."""
    if is_jax(xp) and (obs_rep, rep or hx.Diagonal()) != (hx.Diagonal(), hx.Diagonal()):
        pytest.skip("one structure per variant on JAX (eager compilation is slow)")
    case = make_case(build_model(kind, 3, obs_rep, 2, rep, 2), seed=2)
    model, params, x = case.model, asarray(xp, case.natural), asarray(xp, case.points)
    expected = case.log_density(case.points)
    assert_close(model.log_observable_density(params, x), expected, xp=xp, rtol=1e-7)
    r = case.responsibilities(case.points)
    assert_close(model.posterior_soft_assignments(params, x), r, xp=xp, rtol=1e-6, atol=1e-9)
    assert_close(model.to_mean(params), case.means_coordinates, xp=xp, rtol=1e-7, atol=1e-8)


@FEW
@given(data=st.data())
def test_posteriors_match_bayes_rule(xp: Any, data: st.DataObject) -> None:
    case = data.draw(hmog_cases(xp))
    model, k = case.model, case.model.n_components
    params, x = asarray(xp, case.natural), asarray(xp, case.points)
    r = case.responsibilities(case.points)
    soft = model.posterior_soft_assignments(params, x)
    assert_close(soft, r, xp=xp, rtol=1e-6, atol=1e-9)
    assert_close(xp.sum(soft, axis=-1), np.ones(len(r)), xp=xp, rtol=1e-12)
    assert_close(model.posterior_assignments(params, x), soft, xp=xp, rtol=0, atol=0)
    hard = model.posterior_hard_assignment(params, x)
    assert xp.isdtype(hard.dtype, "integral")
    np.testing.assert_array_equal(to_numpy(hard), np.argmax(to_numpy(soft), axis=-1))
    categorical = model.posterior_categorical(params, x)
    assert tuple(categorical.shape) == (len(r), k - 1)
    logs = case.log_joint(case.points)
    assert_close(categorical, logs[:, 1:] - logs[:, :1], xp=xp, rtol=1e-6, atol=1e-6)
    assert_close(
        model.posterior_latent_mean(params, x),
        case.latent_mean(case.points),
        xp=xp,
        rtol=1e-6,
        atol=1e-8,
    )
    statistics = case.posterior_statistics(case.points)
    assert_close(model.posterior_statistics(params, x), statistics, xp=xp, rtol=1e-6, atol=1e-8)
    mean_statistics = model.mean_posterior_statistics(params, x)
    assert_close(mean_statistics, statistics.mean(axis=0), xp=xp, rtol=1e-6, atol=1e-8)
    assert_close(mean_statistics, xp.mean(model.posterior_statistics(params, x), axis=0), xp=xp)


# -- mean coordinates -----------------------------------------------------------------------------


@FEW
@given(data=st.data())
def test_to_mean_matches_the_joint_moments(xp: Any, data: st.DataObject) -> None:
    case = data.draw(hmog_cases(xp))
    model, params = case.model, asarray(xp, case.natural)
    means = model.to_mean(params)
    assert_close(means, case.means_coordinates, xp=xp, rtol=1e-7, atol=1e-8)
    # the observable block holds the moments of the observable mixture
    weights, mix_means, mix_covs = (to_numpy(a) for a in model.observable_mixture(params))
    obs_rep, p = model.lower_harmonium.obs_rep, model.data_dim
    second = np.einsum(
        "k,kij->ij", weights, mix_covs + mix_means[:, :, None] * mix_means[:, None, :]
    )
    obs_block = np.concatenate([weights @ mix_means, statistic_np(obs_rep, second)])
    assert_close(means[: model.obs_man.dim], obs_block, xp=xp, rtol=1e-7, atol=1e-8)
    assert model.obs_man.dim == p + len(statistic_np(obs_rep, second))


@pytest.mark.parametrize("kind", KINDS)
def test_to_mean_matches_sample_averages(xp: Any, kind: str) -> None:
    model = standard_model(kind)
    case = make_case(model, seed=3)
    params, n = asarray(xp, case.natural), 40_000
    xs, ys, zs = model.sample(7, params, n)
    assert tuple(xs.shape) == (n, model.data_dim)
    assert tuple(ys.shape) == (n, model.lat_dim)
    assert tuple(zs.shape) == (n,)
    x, y, z = to_numpy(xs), to_numpy(ys), to_numpy(zs)
    k, d = model.n_components, model.lat_dim
    onehot = (z[:, None] == np.arange(k)).astype(float)
    located = np.broadcast_to(y[:, None, :], (n, k, d))
    upper = case.upper_statistics(onehot, located, np.zeros((n, k, d, d)))
    outer, cross = x[:, :, None] * x[:, None, :], x[:, :, None] * y[:, None, :]
    statistics = join_np(model.lower_harmonium.obs_rep, x, outer, cross, upper)
    average = statistics.mean(axis=0)
    error = statistics.std(axis=0) / np.sqrt(n)
    exact = to_numpy(model.to_mean(params))
    assert np.all(np.abs(average - exact) <= 5.5 * error + 1e-12), np.abs(average - exact) / error
    assert_close(model.to_mean(params), case.means_coordinates, xp=xp, rtol=1e-7, atol=1e-8)
    again = model.observable_sample(7, params, 5)
    assert_close(again, model.observable_sample(7, params, 5), xp=xp, rtol=0, atol=0)
