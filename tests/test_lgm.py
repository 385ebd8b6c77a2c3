"""Linear Gaussian models: coordinates, densities, posteriors, generative form, sampling.

Oracles, all written in NumPy from the generative form ``y ~ N(m, S)``, ``x | y ~ N(Ay + b, Ψ)``
(DESIGN §4.3–4.4), never from the implementation's output:

* natural parameters ``θ_x = (Ψ⁻¹b, −½ q(Ψ⁻¹))``, ``W = Ψ⁻¹A``,
  ``θ_y = (S⁻¹m − AᵀΨ⁻¹b, −½ q(Λ_y))`` with posterior precision ``Λ_y = S⁻¹ + AᵀΨ⁻¹A``;
* ``log p(x)`` from ``scipy.stats.multivariate_normal(Am + b, ASAᵀ + Ψ)``;
* ``ψ(θ)`` and the negative entropy from the joint Gaussian over ``(x, y)``;
* textbook posterior moments ``Cov(y|x) = Λ_y⁻¹``, ``E[y|x] = Λ_y⁻¹(AᵀΨ⁻¹(x − b) + S⁻¹m)``.

Restricted posterior reps (``Diagonal``/``Scale`` latents) are built with ``Λ_y`` in the rep
and ``S = (Λ_y − AᵀΨ⁻¹A)⁻¹`` positive definite, so every example is a real distribution.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

import hmog_xp as hx
from hmog_xp.harmoniums import (
    AnalyticLinearGaussianModel,
    LinearGaussianModel,
    factor_analysis,
    principal_component_analysis,
)
from tests.helpers import assert_close, to_numpy
from tests.strategies import REPS, reps, seeds, spd_matrix

# JAX eager compiles every new shape (~1 s per model structure): keep LGM property tests to a
# few examples, with (p, d) drawn from a small pool (p = 1, d = 1, d > p included) so compiled
# kernels are reused across tests.
FEW = settings(max_examples=min(5, settings.default.max_examples))
DIMS = ((1, 1), (2, 3), (4, 2), (5, 1))

# -- NumPy oracles --------------------------------------------------------------------------------


def storage_np(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """Plain storage: upper triangle row by row / diagonal / the scalar of ``s I``."""
    if isinstance(rep, hx.PositiveDefinite):
        rows, cols = np.triu_indices(matrix.shape[-1])
        return matrix[..., rows, cols]
    diagonal = np.diagonal(matrix, axis1=-2, axis2=-1)
    return diagonal.copy() if isinstance(rep, hx.Diagonal) else diagonal[..., :1].copy()


def statistic_np(rep: hx.CovarianceRep, second: np.ndarray) -> np.ndarray:
    """Second moment in statistic storage (``Scale``: the trace)."""
    if isinstance(rep, hx.Scale):
        return np.trace(second, axis1=-2, axis2=-1)[..., None]
    return storage_np(rep, second)


def quadratic_np(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """Coefficients of ``xᵀMx`` against the statistic (full rep: off-diagonals doubled)."""
    packed = storage_np(rep, matrix)
    if isinstance(rep, hx.PositiveDefinite):
        rows, cols = np.triu_indices(matrix.shape[-1])
        return packed * np.where(rows == cols, 1.0, 2.0)
    return packed


def natural_np(rep: hx.CovarianceRep, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``(Λμ, −½ q(Λ))`` of ``N(μ, Σ)``, ``Λ = Σ⁻¹`` (DESIGN §4.1)."""
    precision = np.linalg.inv(cov)
    return np.concatenate([precision @ mean, -0.5 * quadratic_np(rep, precision)])


def readable_noise(rep: hx.CovarianceRep, noise: np.ndarray) -> np.ndarray:
    """Ψ as ``to_generative`` reports it: dense / diagonal / the 0-d variance."""
    if isinstance(rep, hx.PositiveDefinite):
        return noise
    if isinstance(rep, hx.Diagonal):
        return np.diag(noise).copy()
    return np.asarray(noise[0, 0])


@dataclass(frozen=True)
class LGMCase:
    """An LGM and one member in generative form, plus a few observations."""

    model: LinearGaussianModel
    loadings: np.ndarray  # A (p, d)
    bias: np.ndarray  # b (p,)
    noise: np.ndarray  # Ψ dense (p, p), in obs_rep
    latent_mean: np.ndarray  # m (d,)
    latent_covariance: np.ndarray  # S (d, d)
    points: np.ndarray  # (n_points, p)

    @cached_property
    def noise_precision(self) -> np.ndarray:
        return np.linalg.inv(self.noise)

    @cached_property
    def posterior_precision(self) -> np.ndarray:
        """``Λ_y = S⁻¹ + AᵀΨ⁻¹A`` (in pst_rep by construction)."""
        a = self.loadings
        return np.linalg.inv(self.latent_covariance) + a.T @ self.noise_precision @ a

    @cached_property
    def natural(self) -> np.ndarray:
        a, b, m = self.loadings, self.bias, self.latent_mean
        obs = natural_np(self.model.obs_rep, b, self.noise)
        lat_location = np.linalg.solve(self.latent_covariance, m) - a.T @ self.noise_precision @ b
        lat = np.concatenate(
            [lat_location, -0.5 * quadratic_np(self.model.pst_rep, self.posterior_precision)]
        )
        return np.concatenate([obs, (self.noise_precision @ a).reshape(-1), lat])

    @cached_property
    def marginal(self) -> tuple[np.ndarray, np.ndarray]:
        a, s = self.loadings, self.latent_covariance
        return a @ self.latent_mean + self.bias, a @ s @ a.T + self.noise

    @cached_property
    def joint(self) -> tuple[np.ndarray, np.ndarray]:
        """Mean and covariance of ``(x, y)``."""
        a, s = self.loadings, self.latent_covariance
        mean = np.concatenate([self.marginal[0], self.latent_mean])
        cov = np.block([[self.marginal[1], a @ s], [s @ a.T, s]])
        return mean, cov

    @cached_property
    def means(self) -> np.ndarray:
        """``(E[x], E[q(x)], E[xyᵀ], E[y], E[q(y)])`` with q in the model's reps."""
        p = self.model.obs_dim
        mean, cov = self.joint
        second = cov + np.outer(mean, mean)
        return np.concatenate(
            [
                mean[:p],
                statistic_np(self.model.obs_rep, second[:p, :p]),
                second[:p, p:].reshape(-1),
                mean[p:],
                statistic_np(self.model.pst_rep, second[p:, p:]),
            ]
        )

    def log_partition(self) -> float:
        """``ψ = ½ hᵀJ⁻¹h − ½ log|J|`` of the joint Gaussian (base measure ``(2π)^{-(p+d)/2}``)."""
        mean, cov = self.joint
        return 0.5 * mean @ np.linalg.solve(cov, mean) + 0.5 * np.linalg.slogdet(cov)[1]

    def posterior_moments(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Textbook ``E[y|x]`` (..., d) and ``Cov(y|x)`` (d, d)."""
        a, psi_inv = self.loadings, self.noise_precision
        cov = np.linalg.inv(self.posterior_precision)
        location = (x - self.bias) @ psi_inv @ a + np.linalg.solve(
            self.latent_covariance, self.latent_mean
        )
        return location @ cov, cov

    def posterior_statistics(self, x: np.ndarray) -> np.ndarray:
        mean, cov = self.posterior_moments(x)
        second = cov + mean[:, :, None] * mean[:, None, :]
        outer = x[:, :, None] * mean[:, None, :]
        return np.concatenate(
            [
                x,
                statistic_np(self.model.obs_rep, x[:, :, None] * x[:, None, :]),
                outer.reshape(len(x), -1),
                mean,
                statistic_np(self.model.pst_rep, second),
            ],
            axis=-1,
        )


def make_case(
    model: LinearGaussianModel, seed: int, loading_scale: float = 1.0, n_points: int = 4
) -> LGMCase:
    """A random valid member of ``model`` (restricted pst_rep: Λ_y in the rep, prior PD)."""
    rng = np.random.default_rng(seed)
    p, d = model.obs_dim, model.lat_dim
    loadings = loading_scale * rng.normal(size=(p, d))
    bias = rng.normal(size=p)
    noise = spd_matrix(rng, p, model.obs_rep)
    mean = rng.normal(size=d)
    if isinstance(model.pst_rep, hx.PositiveDefinite):
        covariance = spd_matrix(rng, d, hx.PositiveDefinite())
    else:
        gram = loadings.T @ np.linalg.solve(noise, loadings)
        top = np.linalg.eigvalsh(gram)[-1]
        precision = top * np.eye(d) + spd_matrix(rng, d, model.pst_rep)
        covariance = np.linalg.inv(precision - gram)
        covariance = 0.5 * (covariance + covariance.T)
    points = rng.normal(size=(n_points, p)) * 1.5 + bias
    return LGMCase(model, loadings, bias, noise, mean, covariance, points)


@st.composite
def lgm_cases(draw: st.DrawFn, analytic: bool = False, n_points: int = 12) -> LGMCase:
    p, d = draw(st.sampled_from(DIMS))
    obs_rep = draw(reps)
    if analytic:
        model: LinearGaussianModel = AnalyticLinearGaussianModel(p, obs_rep, d)
    else:
        model = LinearGaussianModel(p, obs_rep, d, draw(reps))
    scale = draw(st.sampled_from((0.3, 1.0, 3.0)))
    return make_case(model, draw(seeds), scale, n_points)


def asarray(xp: Any, a: Any) -> Any:
    return xp.asarray(np.asarray(a, dtype=np.float64), dtype=xp.float64)


# -- coordinates ----------------------------------------------------------------------------------


def test_dimensions_follow_the_layout() -> None:
    model = LinearGaussianModel(4, hx.Diagonal(), 2, hx.Scale())
    assert (model.data_dim, model.lkl_dim, model.dim) == (4, 8 + 8, 8 + 8 + 3)
    assert factor_analysis(5, 3) == AnalyticLinearGaussianModel(5, hx.Diagonal(), 3)
    assert principal_component_analysis(5, 3) == AnalyticLinearGaussianModel(5, hx.Scale(), 3)
    assert AnalyticLinearGaussianModel(3, hx.Scale(), 2).dim == 3 + 1 + 6 + 2 + 3


@FEW
@given(case=lgm_cases())
def test_coordinates_conjugation_and_generative_form(xp: Any, case: LGMCase) -> None:
    model, d = case.model, case.model.lat_dim
    params = asarray(xp, case.natural)
    obs, interaction, lat = model.split_coords(params)
    assert_close(interaction, case.noise_precision @ case.loadings, xp=xp)
    assert_close(model.join_coords(obs, interaction, lat), case.natural, xp=xp, rtol=0, atol=0)
    lkl, prior = model.split_conjugated(params)
    assert_close(lkl, case.natural[: model.lkl_dim], xp=xp, rtol=0, atol=0)
    expected_prior = natural_np(hx.PositiveDefinite(), case.latent_mean, case.latent_covariance)
    assert_close(prior, expected_prior, xp=xp)
    assert_close(model.prior(params), expected_prior, xp=xp)
    # χ = ψ_x(θ_x) = ½ bᵀΨ⁻¹b + ½ log|Ψ|, ρ = prior − embedded θ_y
    chi, rho = model.conjugation_parameters(lkl)
    b = case.bias
    expected_chi = 0.5 * b @ case.noise_precision @ b + 0.5 * np.linalg.slogdet(case.noise)[1]
    assert_close(chi, np.asarray(expected_chi), xp=xp)
    gram = case.loadings.T @ case.noise_precision @ case.loadings
    expected_rho = np.concatenate(
        [
            case.loadings.T @ case.noise_precision @ b,
            0.5 * quadratic_np(hx.PositiveDefinite(), gram),
        ]
    )
    assert_close(rho, expected_rho, xp=xp)
    assert_close(model.log_partition_function(params), np.asarray(case.log_partition()), xp=xp)
    if isinstance(model.pst_rep, hx.PositiveDefinite):
        assert_close(model.join_conjugated(lkl, prior), case.natural, xp=xp)
    else:
        with pytest.raises(hx.ValidationError, match="join_conjugated needs the prior"):
            model.join_conjugated(lkl, prior)
    # the likelihood x | y ~ N(Ay + b, Ψ)
    ys = np.random.default_rng(0).normal(size=(3, d))
    expected_lkl = np.stack(
        [natural_np(model.obs_rep, case.loadings @ y + b, case.noise) for y in ys]
    )
    assert_close(model.likelihood_at(params, asarray(xp, ys)), expected_lkl, xp=xp)
    # expected statistics and the generative form
    assert_close(model.to_mean(params), case.means, xp=xp)
    generative = model.to_generative(params)
    assert_close(generative.loadings, case.loadings, xp=xp)
    assert_close(generative.bias, case.bias, xp=xp)
    assert_close(generative.noise, readable_noise(model.obs_rep, case.noise), xp=xp)
    assert_close(generative.latent_mean, case.latent_mean, xp=xp)
    assert_close(generative.latent_covariance, case.latent_covariance, xp=xp)


@FEW
@given(case=lgm_cases())
def test_log_density_and_posteriors_match_the_oracles(xp: Any, case: LGMCase) -> None:
    model = case.model
    params, x = asarray(xp, case.natural), asarray(xp, case.points)
    oracle = stats.multivariate_normal(*case.marginal)
    expected = oracle.logpdf(case.points).reshape(-1)
    assert_close(model.log_observable_density(params, x), expected, xp=xp)
    assert_close(model.observable_density(params, x), np.exp(expected), xp=xp)
    assert_close(
        model.average_log_observable_density(params, x), np.asarray(expected.mean()), xp=xp
    )
    single = model.log_observable_density(params, x[0, ...])
    assert_close(single, np.asarray(expected[0]), xp=xp)
    # posteriors y | x: textbook moments
    mean, cov = case.posterior_moments(case.points)
    assert_close(model.posterior_latent_mean(params, x), mean, xp=xp)
    expected_natural = np.stack([natural_np(model.pst_rep, mu, cov) for mu in mean])
    assert_close(model.posterior_at(params, x), expected_natural, xp=xp)
    statistics = case.posterior_statistics(case.points)
    assert_close(model.posterior_statistics(params, x), statistics, xp=xp)
    mean_statistics = model.mean_posterior_statistics(params, x)
    assert_close(mean_statistics, statistics.mean(axis=0), xp=xp)
    assert_close(mean_statistics, xp.mean(model.posterior_statistics(params, x), axis=0), xp=xp)


@FEW
@given(case=lgm_cases(analytic=True))
def test_analytic_coordinates_round_trip(xp: Any, case: LGMCase) -> None:
    model = case.model
    assert isinstance(model, AnalyticLinearGaussianModel)
    params, means = asarray(xp, case.natural), asarray(xp, case.means)
    assert_close(model.to_natural(means), case.natural, xp=xp, rtol=1e-6)
    assert_close(model.to_natural(model.to_mean(params)), case.natural, xp=xp, rtol=1e-6)
    assert_close(model.to_mean(model.to_natural(means)), case.means, xp=xp, rtol=1e-6)
    # φ(η) = −H(x, y) + (p + d)/2 log 2π (entropy relative to the base measure)
    entropy = stats.multivariate_normal(*case.joint).entropy()
    dims = model.obs_dim + model.lat_dim
    expected_phi = -entropy + 0.5 * dims * math.log(2 * math.pi)
    assert_close(model.negative_entropy(means), np.asarray(expected_phi), xp=xp, rtol=1e-6)
    # from_generative: prior N(0, I)
    a, b = case.loadings, case.bias
    noise = readable_noise(model.obs_rep, case.noise)
    d = model.lat_dim
    standard = LGMCase(model, a, b, case.noise, np.zeros(d), np.eye(d), case.points)
    built = model.from_generative(asarray(xp, a), asarray(xp, b), asarray(xp, noise))
    assert_close(built, standard.natural, xp=xp)
    generative = model.to_generative(built)
    for actual, desired in zip(generative, (a, b, noise, np.zeros(d), np.eye(d)), strict=True):
        assert_close(actual, desired, xp=xp)
    assert_close(
        model.observable_distribution(params),
        natural_np(hx.PositiveDefinite(), *case.marginal),
        xp=xp,
    )


# -- batching -------------------------------------------------------------------------------------


@pytest.mark.parametrize("pst_rep", REPS, ids=lambda rep: type(rep).__name__)
def test_batched_observations_equal_per_row_results(xp: Any, pst_rep: hx.CovarianceRep) -> None:
    case = make_case(LinearGaussianModel(3, hx.Diagonal(), 2, pst_rep), seed=5, n_points=6)
    model, params = case.model, asarray(xp, case.natural)
    points = case.points.reshape(2, 3, 3)
    batched = asarray(xp, points)
    log_density = model.log_observable_density(params, batched)
    posterior = model.posterior_at(params, batched)
    latent_mean = model.posterior_latent_mean(params, batched)
    statistics = model.posterior_statistics(params, batched)
    assert log_density.shape == (2, 3)
    assert posterior.shape == (2, 3, model.pst_man.dim)
    assert statistics.shape == (2, 3, model.dim)
    for i in range(2):
        for j in range(3):
            row = asarray(xp, points[i, j])
            assert_close(log_density[i, j], model.log_observable_density(params, row), xp=xp)
            assert_close(posterior[i, j, ...], model.posterior_at(params, row), xp=xp)
            assert_close(latent_mean[i, j, ...], model.posterior_latent_mean(params, row), xp=xp)
            assert_close(statistics[i, j, ...], model.posterior_statistics(params, row), xp=xp)
    expected = stats.multivariate_normal(*case.marginal).logpdf(points.reshape(6, 3))
    assert_close(log_density, expected.reshape(2, 3), xp=xp)
    # an empty batch of observations gives an empty result
    empty = model.log_observable_density(params, asarray(xp, np.zeros((0, 3))))
    assert tuple(empty.shape) == (0,)


# -- sampling ----------------- -----------------------------------------------------------------

STRUCTURES = [
    (hx.PositiveDefinite(), hx.Diagonal()),
    (hx.Diagonal(), hx.PositiveDefinite()),
    (hx.Scale(), hx.Scale()),
]
STRUCTURE_IDS = [f"{type(o).__name__}-{type(q).__name__}" for o, q in STRUCTURES]


@pytest.mark.parametrize(("obs_rep", "pst_rep"), STRUCTURES, ids=STRUCTURE_IDS)
def test_sample_moments_match_the_joint_distribution(
    xp: Any, obs_rep: hx.CovarianceRep, pst_rep: hx.CovarianceRep
) -> None:
    case = make_case(LinearGaussianModel(3, obs_rep, 2, pst_rep), seed=2)
    model, params, n = case.model, asarray(xp, case.natural), 100_000
    xs, ys = model.sample(11, params, n)
    assert tuple(xs.shape) == (n, 3)
    assert tuple(ys.shape) == (n, 2)
    joint = np.concatenate([to_numpy(xs), to_numpy(ys)], axis=1)
    mean, cov = case.joint
    standard_error = np.sqrt(np.diag(cov) / n)
    assert np.all(np.abs(joint.mean(axis=0) - mean) < 5 * standard_error)
    cov_error = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    assert np.all(np.abs(np.cov(joint.T) - cov) < 5 * cov_error)
    # seeded draws are reproducible
    again = model.observable_sample(11, params, 5)
    assert tuple(again.shape) == (5, 3)
    assert_close(again, model.observable_sample(11, params, 5), xp=xp, rtol=0, atol=0)
