"""Gaussian mixtures: coordinates, densities, posteriors, sub-reps, batching, backends.

Oracles (NumPy, written from DESIGN §4.1/§4.5, never from hmog_xp's output):

* ``log p(y) = logsumexp_k(log w_k + scipy.stats.multivariate_normal(μ_k, Σ_k).logpdf(y))``
  and the responsibilities from the same formula;
* natural coordinates ``(θ_0, (θ_k − θ_0 in the sub-rep)_{k≥1}, log(w_k/w_0) − (ψ_k − ψ_0))``
  and mean coordinates ``(Σ_k w_k E_k[s], (w_k E_k[s_sub])_{k≥1}, (w_k)_{k≥1})``, with the
  Normal statistics built by hand: ``(μ, q(Σ + μμᵀ))``, ``q`` the upper triangle row by row
  (PositiveDefinite), the diagonal (Diagonal) or the trace (Scale);
* the negative entropy ``Σ_k w_k (log w_k − ½ log|Σ_k| − d/2)`` and the law of total
  covariance for the observable moments.

Property tests run their computation through ``hx.jit``: on JAX that compiles it once per
model structure (and checks that the whole API traces); elsewhere it is the identity. JAX
eager mode compiles every primitive for every new shape, seconds per example on a small
machine, so JAX also gets fewer examples (``property_settings``); eager JAX is covered by the
fixed-shape tests and the cross-backend identity test. EM (against scikit-learn), sampling,
starting points and input validation are in ``test_mixture_em.py``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats
from scipy.special import logsumexp, softmax

import hmog_xp as hx
from hmog_xp._backend import namespace_for
from tests.helpers import assert_close, to_numpy, xp_name
from tests.strategies import REPS, reps, seeds, spd_matrix

REP_IDS = [type(r).__name__ for r in REPS]
IDENTITY_TOLERANCE = 1e-10
#: The EM step's natural parameters invert covariances estimated from about two of the seven
#: points per component (condition numbers up to 2.4e3), so the few rounding steps by which
#: backends' sums differ (summation order, fused multiply-adds or not) reach about 1e-10 in
#: the precisions; 1e-9 still catches any difference of formula.
EM_STEP_TOLERANCE = 1e-9
JAX_EXAMPLES = 5

# -- NumPy oracles --------------------------------------------------------------------------------


def second_storage(rep: hx.CovarianceRep, matrix: np.ndarray) -> np.ndarray:
    """A second-moment matrix in the rep's statistic storage (triu row by row / diag / trace)."""
    if isinstance(rep, hx.PositiveDefinite):
        rows, cols = np.triu_indices(matrix.shape[-1])
        return matrix[..., rows, cols]
    if isinstance(rep, hx.Diagonal):
        return np.diagonal(matrix, axis1=-2, axis2=-1).copy()
    return np.trace(matrix, axis1=-2, axis2=-1)[..., None]


def statistic_np(rep: hx.CovarianceRep, y: np.ndarray) -> np.ndarray:
    """``s(y) = (y, q(y yᵀ))``."""
    return np.concatenate([y, second_storage(rep, y[..., :, None] * y[..., None, :])], axis=-1)


def normal_means_np(rep: hx.CovarianceRep, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``E[s(y)] = (μ, q(Σ + μμᵀ))``."""
    second = cov + mean[..., :, None] * mean[..., None, :]
    return np.concatenate([mean, second_storage(rep, second)], axis=-1)


def quadratic_np(rep: hx.CovarianceRep, precision: np.ndarray) -> np.ndarray:
    """``θ₂`` with ``θ₂ · q(y yᵀ) = −½ yᵀΛy`` (off-diagonal −Λ_ij, diagonal −½Λ_ii)."""
    if isinstance(rep, hx.PositiveDefinite):
        rows, cols = np.triu_indices(precision.shape[-1])
        return np.where(rows == cols, -0.5, -1.0) * precision[..., rows, cols]
    if isinstance(rep, hx.Diagonal):
        return -0.5 * np.diagonal(precision, axis1=-2, axis2=-1)
    return -0.5 * precision[..., :1, 0]


def normal_natural_np(rep: hx.CovarianceRep, mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``θ = (Λμ, θ₂(Λ))`` with ``Λ = Σ⁻¹``."""
    precision = np.linalg.inv(cov)
    location = (precision @ mean[..., None])[..., 0]
    return np.concatenate([location, quadratic_np(rep, precision)], axis=-1)


def normal_log_partition_np(mean: np.ndarray, cov: np.ndarray) -> np.ndarray:
    """``ψ = ½ μᵀΣ⁻¹μ + ½ log|Σ|``."""
    solved = np.linalg.solve(cov, mean[..., None])[..., 0]
    return 0.5 * np.sum(mean * solved, axis=-1) + 0.5 * np.linalg.slogdet(cov)[1]


@dataclass(frozen=True)
class MixtureCase:
    """Generative parameters of one mixture, its model, and test points."""

    rep: hx.CovarianceRep
    weights: np.ndarray  # (K,)
    means: np.ndarray  # (K, d)
    covariances: np.ndarray  # (K, d, d)
    points: np.ndarray  # (n_points, d)
    sub_rep: hx.CovarianceRep | None = None

    @property
    def varying(self) -> hx.CovarianceRep:
        return self.rep if self.sub_rep is None else self.sub_rep

    @property
    def model(self) -> hx.Mixture:
        family = hx.Normal(self.means.shape[1], self.rep)
        if self.sub_rep is None:
            return hx.AnalyticMixture(family, self.weights.size)
        return hx.Mixture(family, self.weights.size, self.sub_rep)

    @property
    def generative(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.weights, self.means, self.covariances

    def params(self, xp: Any) -> Any:
        """Natural parameters via ``from_generative`` (eager on every backend)."""
        return self.model.from_generative(*(xp.asarray(a) for a in self.generative))

    def compiled_params(self, xp: Any) -> Any:
        """Same, through ``hx.jit`` (one compilation per model structure on JAX)."""
        return FROM_GENERATIVE(self.model, *(xp.asarray(a) for a in self.generative))

    def natural(self) -> np.ndarray:
        """Mixture natural coordinates ``(θ_y, Θ.ravel(), θ_z)``, ``Θ`` (sub_dim, K − 1)."""
        naturals = normal_natural_np(self.rep, self.means, self.covariances)
        sub = normal_natural_np(self.varying, self.means, self.covariances)
        psi = normal_log_partition_np(self.means, self.covariances)
        theta_z = np.log(self.weights[1:] / self.weights[0]) - (psi[1:] - psi[0])
        return np.concatenate([naturals[0], (sub[1:] - sub[:1]).T.reshape(-1), theta_z])

    def mean_coords(self) -> np.ndarray:
        """Mixture mean coordinates ``(Σ w_k E_k[s], (w_k E_k[s_sub])_{k≥1}, w_{1:})``."""
        full = normal_means_np(self.rep, self.means, self.covariances)
        sub = normal_means_np(self.varying, self.means, self.covariances)
        interaction = (self.weights[1:, None] * sub[1:]).T
        return np.concatenate([self.weights @ full, interaction.reshape(-1), self.weights[1:]])

    def component_logpdf(self, ys: np.ndarray) -> np.ndarray:
        """``log w_k + log N(y; μ_k, Σ_k)``, shape (N, K)."""
        columns = [
            np.log(w) + stats.multivariate_normal(m, c).logpdf(ys)
            for w, m, c in zip(*self.generative, strict=True)
        ]
        return np.stack(columns, axis=-1).reshape((*ys.shape[:-1], self.weights.size))

    def log_density(self, ys: np.ndarray) -> np.ndarray:
        return logsumexp(self.component_logpdf(ys), axis=-1)

    def responsibilities(self, ys: np.ndarray) -> np.ndarray:
        return softmax(self.component_logpdf(ys), axis=-1)

    def posterior_statistics(self, ys: np.ndarray) -> np.ndarray:
        """``(s(y), s_sub(y) ⊗ r_{k≥1}, r_{k≥1})`` per point."""
        resp = self.responsibilities(ys)[:, 1:]
        outer = statistic_np(self.varying, ys)[:, :, None] * resp[:, None, :]
        return np.concatenate(
            [statistic_np(self.rep, ys), outer.reshape(len(ys), -1), resp], axis=-1
        )


FROM_GENERATIVE = hx.jit(
    lambda model, *generative: model.from_generative(*generative), static_argnums=(0,)
)


@st.composite
def mixture_cases(draw: st.DrawFn, max_dim: int = 4, max_components: int = 4) -> MixtureCase:
    """A complete mixture built through its generative form (weights floored at 0.02)."""
    d = draw(st.integers(min_value=1, max_value=max_dim))
    k = draw(st.integers(min_value=1, max_value=max_components))
    rep = draw(reps)
    rng = np.random.default_rng(draw(seeds))
    scale = draw(st.sampled_from((0.2, 1.0, 5.0)))
    weights = np.maximum(rng.dirichlet(np.full(k, draw(st.sampled_from((0.5, 2.0))))), 0.02)
    weights /= weights.sum()
    means = 2.0 * np.sqrt(scale) * rng.normal(size=(k, d))
    covariances = np.stack([spd_matrix(rng, d, rep, scale) for _ in range(k)])
    points = means[rng.integers(k, size=6)] + np.sqrt(scale) * rng.normal(size=(6, d))
    return MixtureCase(rep, weights, means, covariances, points)


def sub_rep_case(rep: hx.CovarianceRep, sub_rep: hx.CovarianceRep, seed: int) -> MixtureCase:
    """Components with precisions ``P + S_k``: ``P`` shared, ``S_k`` of the sub-rep."""
    rng = np.random.default_rng(seed)
    d, k = 3, 3
    shared = np.linalg.inv(spd_matrix(rng, d, rep))
    if isinstance(sub_rep, hx.Diagonal):
        shifts = np.stack([np.diag(rng.uniform(0.0, 2.0, size=d)) for _ in range(k)])
    else:
        shifts = rng.uniform(0.0, 2.0, size=(k, 1, 1)) * np.eye(d)
    covariances = np.linalg.inv(shared + shifts)
    covariances = 0.5 * (covariances + np.swapaxes(covariances, -1, -2))
    weights = rng.dirichlet(np.full(k, 2.0)) * 0.9 + 0.1 / k
    means = 1.5 * rng.normal(size=(k, d))
    points = means[rng.integers(k, size=6)] + rng.normal(size=(6, d))
    return MixtureCase(rep, weights, means, covariances, points, sub_rep)


def fixed_case(rep: hx.CovarianceRep, seed: int = 0, k: int = 3) -> MixtureCase:
    """A 3-dimensional mixture (weights 0.2, 0.3, 0.5 when K = 3)."""
    rng = np.random.default_rng(seed)
    weights = np.array([0.2, 0.3, 0.5]) if k == 3 else np.full(k, 1.0 / k)
    means = 2.0 * rng.normal(size=(k, 3))
    covariances = np.stack([spd_matrix(rng, 3, rep) for _ in range(k)])
    points = means[rng.integers(k, size=7)] + rng.normal(size=(7, 3))
    return MixtureCase(rep, weights, means, covariances, points)


def property_settings(xp: Any) -> settings:
    """The loaded Hypothesis profile, with at most ``JAX_EXAMPLES`` examples on JAX."""
    count = settings.default.max_examples
    return settings(max_examples=min(count, JAX_EXAMPLES) if xp_name(xp) == "jax" else count)


# -- everything a mixture computes, against the oracles ----------------------------------------


def _mixture_outputs(
    model: hx.Mixture, weights: Any, means: Any, covariances: Any, ys: Any, labels: Any, parts: Any
) -> dict[str, Any]:
    params = model.from_generative(weights, means, covariances)
    eta = model.to_mean(params)
    lkl, prior = model.split_conjugated(params)
    components, weight_params = model.split_natural_mixture(params)
    out = {
        "params": params,
        "eta": eta,
        "generative": tuple(model.to_generative(params)),
        "prior": prior,
        "prior()": model.prior(params),
        "conjugation": model.conjugation_parameters(lkl),
        "log partition": model.log_partition_function(params),
        "joined conjugated": model.join_conjugated(lkl, prior),
        "components": components,
        "weight params": weight_params,
        "joined mixture": model.join_natural_mixture(components, weight_params),
        "likelihoods": model.likelihood_at(params, labels),
        "joined means": model.join_mean_mixture(parts, weights),
        "log density": model.log_observable_density(params, ys),
        "density": model.observable_density(params, ys),
        "average": model.average_log_observable_density(params, ys),
        "soft": model.posterior_soft_assignments(params, ys),
        "posterior": model.posterior_at(params, ys),
        "statistics": model.posterior_statistics(params, ys),
        "mean statistics": model.mean_posterior_statistics(params, ys),
        "observable": model.observable_mean_covariance(params),
    }
    if isinstance(model, hx.AnalyticMixture):
        out["split means"] = model.split_mean_mixture(eta)
        out["natural again"] = model.to_natural(eta)
        out["mean again"] = model.to_mean(model.to_natural(out["joined means"]))
        out["negative entropy"] = model.negative_entropy(eta)
    return out


MIXTURE_OUTPUTS = hx.jit(_mixture_outputs, static_argnums=(0,))


def check_against_oracles(xp: Any, case: MixtureCase) -> None:
    model, (k, d) = case.model, case.means.shape
    parts = normal_means_np(case.rep, case.means, case.covariances)
    arrays = (*case.generative, case.points, np.arange(k), parts)
    out = MIXTURE_OUTPUTS(model, *(xp.asarray(a) for a in arrays))
    natural, means = case.natural(), case.mean_coords()
    assert model.dim == natural.size == means.size
    assert_close(out["params"], natural, xp=xp)
    assert_close(out["eta"], means, xp=xp)
    for actual, desired in zip(out["generative"], case.generative, strict=True):
        assert_close(actual, desired, xp=xp)
    # conjugation: χ = ψ_0, ρ_k = ψ_k − ψ_0; prior = log(w_k/w_0); ψ = ψ_0 − log w_0
    psi = normal_log_partition_np(case.means, case.covariances)
    log_ratios = np.log(case.weights[1:] / case.weights[0])
    assert_close(out["conjugation"][0], psi[0], xp=xp)
    assert_close(out["conjugation"][1], psi[1:] - psi[0], xp=xp)
    assert_close(out["prior"], log_ratios, xp=xp)
    assert_close(out["prior()"], log_ratios, xp=xp)
    assert_close(out["log partition"], psi[0] - np.log(case.weights[0]), xp=xp)
    # splits and joins (split_coords eagerly: see test_split_coords_under_jit)
    obs, interaction, lat = model.split_coords(out["params"])
    assert tuple(obs.shape) == (hx.Normal(d, case.rep).dim,)
    assert tuple(interaction.shape) == (hx.Normal(d, case.varying).dim, k - 1)
    assert tuple(lat.shape) == (k - 1,)
    assert_close(model.join_coords(obs, interaction, lat), natural, xp=xp)
    assert_close(out["joined conjugated"], natural, xp=xp)
    assert_close(out["joined mixture"], natural, xp=xp)
    component_naturals = normal_natural_np(case.rep, case.means, case.covariances)
    assert_close(out["components"], component_naturals, xp=xp)
    assert_close(out["likelihoods"], component_naturals, xp=xp)
    assert_close(out["weight params"], log_ratios, xp=xp)
    assert_close(out["joined means"], means, xp=xp)
    # densities and posteriors
    log_density = case.log_density(case.points)
    assert_close(out["log density"], log_density, xp=xp)
    assert_close(out["density"], np.exp(log_density), xp=xp)
    assert_close(out["average"], np.mean(log_density), xp=xp)
    assert_close(out["soft"], case.responsibilities(case.points), xp=xp)
    ones = np.ones(len(case.points))
    assert_close(xp.sum(out["soft"], axis=-1), ones, xp=xp, rtol=1e-12, atol=1e-12)
    log_joint = case.component_logpdf(case.points)
    assert_close(out["posterior"], log_joint[:, 1:] - log_joint[:, :1], xp=xp)
    statistics = case.posterior_statistics(case.points)
    assert_close(out["statistics"], statistics, xp=xp)
    assert_close(out["mean statistics"], statistics.mean(axis=0), xp=xp)
    assert_close(
        out["mean statistics"], np.mean(to_numpy(out["statistics"]), axis=0), xp=xp, rtol=1e-12
    )
    # observable moments by the law of total covariance
    overall = case.weights @ case.means
    centred = case.means - overall
    within = np.einsum("k,kij->ij", case.weights, case.covariances)
    between = np.einsum("k,ki,kj->ij", case.weights, centred, centred)
    assert_close(out["observable"][0], overall, xp=xp)
    assert_close(out["observable"][1], within + between, xp=xp)
    if case.sub_rep is None:
        assert_close(out["split means"][0], parts, xp=xp)
        assert_close(out["split means"][1], case.weights, xp=xp)
        assert_close(out["natural again"], natural, xp=xp)
        assert_close(out["mean again"], means, xp=xp)
        entropy = np.sum(
            case.weights
            * (np.log(case.weights) - 0.5 * np.linalg.slogdet(case.covariances)[1] - 0.5 * d)
        )
        assert_close(out["negative entropy"], entropy, xp=xp)


def test_complete_mixtures_match_the_oracles(xp: Any) -> None:
    @property_settings(xp)
    @given(case=mixture_cases())
    def check(case: MixtureCase) -> None:
        check_against_oracles(xp, case)

    check()


SUB_REP_CONFIGS = [
    (hx.PositiveDefinite(), hx.Diagonal()),
    (hx.PositiveDefinite(), hx.Scale()),
    (hx.Diagonal(), hx.Scale()),
]
SUB_REP_IDS = [f"{type(a).__name__}-{type(b).__name__}" for a, b in SUB_REP_CONFIGS]


@pytest.mark.parametrize(("rep", "sub_rep"), SUB_REP_CONFIGS, ids=SUB_REP_IDS)
def test_sub_rep_mixtures_match_the_oracles(
    xp: Any, rep: hx.CovarianceRep, sub_rep: hx.CovarianceRep
) -> None:
    @property_settings(xp)
    @given(seed=seeds)
    def check(seed: int) -> None:
        check_against_oracles(xp, sub_rep_case(rep, sub_rep, seed))

    check()
    model = hx.Mixture(hx.Normal(3, rep), 3, sub_rep)
    assert model.int_shape == (hx.Normal(3, sub_rep).dim, 2)
    with pytest.raises(hx.ValidationError, match="needs a complete mixture"):
        model.split_mean_mixture(xp.asarray(np.zeros(model.dim)))


@pytest.mark.parametrize(("rep", "sub_rep"), SUB_REP_CONFIGS, ids=SUB_REP_IDS)
def test_sub_rep_mixture_rejects_components_differing_elsewhere(
    xp: Any, rep: hx.CovarianceRep, sub_rep: hx.CovarianceRep
) -> None:
    model = hx.Mixture(hx.Normal(3, rep), 3, sub_rep)
    rng = np.random.default_rng(0)
    first = spd_matrix(rng, 3, rep)
    # the third component's precision differs from the first's outside the sub-rep
    other = np.ones((3, 3)) - np.eye(3) if isinstance(rep, hx.PositiveDefinite) else 0.0
    third = np.linalg.inv(np.linalg.inv(first) + 0.3 * other + np.diag([0.0, 0.5, 1.0]))
    covariances = xp.asarray(np.stack([first, first, 0.5 * (third + third.T)]))
    weights, means = np.full(3, 1.0 / 3.0), rng.normal(size=(3, 3))
    with pytest.raises(hx.ValidationError, match="may differ only in"):
        model.from_generative(xp.asarray(weights), xp.asarray(means), covariances)


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_split_coords_under_jit(xp: Any, rep: hx.CovarianceRep) -> None:
    """``split_coords`` of a one-component mixture (empty interaction and weights) compiles.

    On JAX 0.10.2 (CPU) XLA fails to compile a program that returns an empty slice of a
    concatenation fed by a triangular solve ("No registered implementation for untyped custom
    call to lapack_dtrsm_ffi"): full-covariance ``K = 1`` mixtures hit it.
    """
    case = fixed_case(rep, seed=3, k=1)
    split = hx.jit(
        lambda model, *arrays: model.split_coords(model.from_generative(*arrays)),
        static_argnums=(0,),
    )
    obs, interaction, lat = split(case.model, *(xp.asarray(a) for a in case.generative))
    assert_close(obs, normal_natural_np(rep, case.means[0], case.covariances[0]), xp=xp)
    assert tuple(interaction.shape) == (hx.Normal(3, rep).dim, 0)
    assert tuple(lat.shape) == (0,)


def _batched_outputs(model: hx.Mixture, params: Any, ys: Any, first: Any) -> dict[str, Any]:
    means = model.to_mean(params)
    return {
        "means": means,
        "generative": tuple(model.to_generative(params)),
        "natural": model.to_natural(means),
        "log partition": model.log_partition_function(params),
        "log density": model.log_observable_density(first, ys),
        "soft": model.posterior_soft_assignments(first, ys),
    }


BATCHED_OUTPUTS = hx.jit(_batched_outputs, static_argnums=(0,))


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_batched_calls_equal_per_item_calls(xp: Any, rep: hx.CovarianceRep) -> None:
    cases = [fixed_case(rep, seed) for seed in (1, 2)]
    model = cases[0].model
    singles = [case.compiled_params(xp) for case in cases]
    params = xp.stack(singles)
    assert tuple(params.shape) == (2, model.dim)
    ys = np.stack([cases[0].points, cases[1].points])  # (2, 7, d) against one parameter vector
    out = BATCHED_OUTPUTS(model, params, xp.asarray(ys), singles[0])
    for i, case in enumerate(cases):
        assert_close(out["means"][i, ...], case.mean_coords(), xp=xp)
        for actual, desired in zip(out["generative"], case.generative, strict=True):
            assert_close(actual[i, ...], desired, xp=xp)
        psi = normal_log_partition_np(case.means[0], case.covariances[0])
        assert_close(out["log partition"][i], psi - np.log(case.weights[0]), xp=xp)
    assert_close(out["natural"], params, xp=xp)
    flat = ys.reshape(-1, 3)
    assert_close(out["log density"], cases[0].log_density(flat).reshape(2, 7), xp=xp)
    assert_close(out["soft"], cases[0].responsibilities(flat).reshape(2, 7, 3), xp=xp)


# -- cross-backend identity ----------------------------------------------------------------


def _identity_outputs(rep: hx.CovarianceRep, namespace: Any) -> dict[str, Any]:
    case = fixed_case(rep, seed=11)
    model = case.model
    params = case.params(namespace)
    ys = namespace.asarray(case.points)
    means = model.to_mean(params)
    drawn_ys, drawn_zs = model.sample(np.random.default_rng(9), params, 6)
    return {
        "natural": params,
        "mean": means,
        "round trip": model.to_natural(means),
        "log density": model.log_observable_density(params, ys),
        "soft assignments": model.posterior_soft_assignments(params, ys),
        "em step": model.expectation_maximization(params, ys),
        "covariances": model.to_generative(params).covariances,
        "sampled ys": drawn_ys,
        "sampled zs": drawn_zs,
        "from sample": model.initialize_from_sample(np.random.default_rng(2), ys),
    }


@pytest.mark.parametrize("rep", REPS, ids=REP_IDS)
def test_mixture_identical_across_backends(xp: Any, rep: hx.CovarianceRep) -> None:
    reference = _identity_outputs(rep, namespace_for("numpy"))
    actual = _identity_outputs(rep, xp)
    assert actual.keys() == reference.keys()
    for name, value in actual.items():
        tolerance = EM_STEP_TOLERANCE if name == "em step" else IDENTITY_TOLERANCE
        try:
            assert_close(value, to_numpy(reference[name]), xp=xp, rtol=tolerance, atol=tolerance)
        except AssertionError as exc:
            raise AssertionError(f"{name}: {exc}") from None
