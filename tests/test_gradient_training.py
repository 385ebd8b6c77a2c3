"""Gradient training that reaches the optimum: preconditioned L-BFGS on every backend.

Oracles: EM on the analytic model (the symmetric variant with full latent components is the
same family, so both must reach the same maximum from the same start); the first-order
conditions (a small gradient at the end of the differentiable variant's fit); a dense
finite-difference Jacobian of ``to_mean`` and ``to_natural`` for the Fisher products; and
the generative parameters for the noise-floor projection.
"""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import hmog_xp as hx
from hmog_xp._bounds import noise_floor_projection
from hmog_xp._errors import ValidationError
from hmog_xp._lbfgs import _BAD_DIRECTION, _LineSearch, fit_lbfgs
from hmog_xp._natural import (
    apply_inverse,
    fisher_matrix,
    fisher_vector_product,
    inverse_fisher_product,
    inverse_operator,
    natural_direction,
)
from hmog_xp.estimator import _training as training
from hmog_xp.estimator._gradient_start import (
    _gram,
    em_warm_start,
    kl_posterior_precisions,
    pooled_basis,
    project_to_family,
)
from hmog_xp.harmoniums.stabilizers import Regularization
from tests.helpers import assert_close, to_numpy, xp_name


def _sample(n: int = 150, p: int = 5, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = np.array([[2.0, 0.0], [-2.0, 1.0]])
    latent = centres[rng.integers(0, 2, size=n)] + 0.5 * rng.normal(size=(n, 2))
    xs = latent @ rng.normal(size=(p, 2)).T + 0.4 * rng.normal(size=(n, p))
    return (xs - xs.mean(0)) / xs.std(0)


def _models() -> tuple[hx.SymmetricHMoG, hx.AnalyticHMoG, hx.DifferentiableHMoG]:
    return (
        hx.symmetric_hmog(5, hx.Diagonal, 2, hx.PositiveDefinite, 2),
        hx.analytic_hmog(5, hx.Diagonal, 2, 2),
        hx.differentiable_hmog(5, hx.Diagonal, 2, hx.Diagonal, 2),
    )


def _skip_on_jax(xp) -> None:
    """Long fits run on NumPy, array-api-strict and PyTorch: JAX compiles every eager op."""
    if xp_name(xp) == "jax":
        pytest.skip("a long eager fit on JAX (the Fisher and autodiff tests cover JAX)")


def test_symmetric_full_latent_reaches_the_em_optimum(xp) -> None:
    _skip_on_jax(xp)
    symmetric, analytic, _ = _models()
    xs = xp.asarray(_sample())
    start = analytic.initialize_from_sample(0, xs)
    em = hx.fit_em(analytic, start, xs, max_iter=3000, tol=1e-12)
    fit = fit_lbfgs(symmetric, start, xs, max_iter=200, tol=1e-10)
    assert fit.converged
    assert fit.n_iter < em.n_iter  # the natural-gradient preconditioning pays
    assert abs(fit.log_likelihoods[-1] - em.log_likelihoods[-1]) < 1e-7
    # the same distribution: the densities of the data agree row by row
    assert_close(
        symmetric.log_observable_density(fit.params, xs),
        to_numpy(analytic.log_observable_density(em.params, xs)),
        xp=xp,
        rtol=1e-5,
        atol=1e-5,
    )


def test_differentiable_variant_ends_at_a_stationary_point(xp) -> None:
    _skip_on_jax(xp)
    *_, model = _models()
    xs = xp.asarray(_sample())
    start = model.initialize_from_sample(0, xs)
    fit = fit_lbfgs(model, start, xs, max_iter=300, tol=1e-11)
    gradient = to_numpy(model.log_likelihood_gradient(fit.params, xs))
    assert fit.log_likelihoods[-1] > fit.log_likelihoods[0] + 1.0
    assert np.max(np.abs(gradient)) < 1e-4
    assert_close(  # the returned parameters are the last (= best) point of the history
        model.average_log_observable_density(fit.params, xs),
        fit.log_likelihoods[-1],
        xp=xp,
        check_dtype=False,
    )


def test_every_accepted_step_increases_the_log_likelihood() -> None:
    *_, model = _models()
    xs = _sample(seed=4)
    start = model.initialize_from_sample(3, xs)
    for preconditioner in ("natural", "none"):
        fit = fit_lbfgs(model, start, xs, max_iter=40, tol=None, preconditioner=preconditioner)
        history = np.asarray(fit.log_likelihoods)
        assert np.all(np.diff(history) > 0)
        assert fit.n_iter == len(history) - 1 == fit.best_iter


def test_a_step_that_leaves_the_valid_space_is_rejected() -> None:
    *_, model = _models()
    xs = _sample()
    start = model.initialize_from_sample(0, xs)
    value = float(model.average_log_observable_density(start, xs))
    gradient = model.log_likelihood_gradient(start, xs)
    # the unit step negates the noise precisions: no distribution there
    obs = model.obs_man.dim
    direction = np.zeros_like(start)
    direction[:obs] = -2.0 * start[:obs]
    lift = 2.0 * max(0.0, -float(np.dot(gradient, direction))) / float(np.dot(gradient, gradient))
    direction = direction + (lift + 1e-3) * gradient  # uphill, yet the unit step is invalid
    with pytest.raises(ValidationError):
        model.average_log_observable_density(start + direction, xs)

    slope = float(np.dot(gradient, direction))
    assert slope > 0
    search = _LineSearch(model, None, False, xs, 30, compiled=False)
    accepted = search(start, value, gradient, direction)
    assert accepted is not _BAD_DIRECTION
    if accepted is not None:  # a shorter step may help; it is valid and better
        candidate, trial, new_gradient, curvature = accepted
        assert trial > value
        assert trial == float(model.average_log_observable_density(candidate, xs))
        assert_close(new_gradient, model.log_likelihood_gradient(candidate, xs), xp=np)
        step, change = candidate - start, gradient - new_gradient
        assert curvature == pytest.approx(float(np.dot(step, change)), rel=1e-12)
    assert search(start, value, gradient, -direction) is _BAD_DIRECTION


def test_a_start_without_finite_likelihood_and_bad_arguments_are_refused() -> None:
    *_, model = _models()
    xs = _sample()
    start = model.initialize_from_sample(0, xs)
    with pytest.raises(ValidationError, match="preconditioner"):
        fit_lbfgs(model, start, xs, preconditioner="newton")
    with pytest.raises(ValidationError, match="gradient"):
        fit_lbfgs(model, start, xs, gradient="numeric")
    with pytest.raises(ValidationError, match="max_iter"):
        fit_lbfgs(model, start, xs, max_iter=-1)
    with pytest.raises(ValidationError, match="memory"):
        fit_lbfgs(model, start, xs, memory=0)


def test_fisher_products_match_the_jacobian_of_the_mean_map(xp) -> None:
    _, analytic, differentiable = _models()
    xs = xp.asarray(_sample(n=60))
    rng = np.random.default_rng(0)
    on_jax = xp_name(xp) == "jax"  # each new eager shape compiles there: one model only
    for model in (differentiable,) if on_jax else (analytic, differentiable):
        params = model.initialize_from_sample(0, xs)
        dense = to_numpy(fisher_matrix(model, params))
        # independent oracle: forward differences of to_mean, one coordinate at a time (on
        # NumPy: JAX's eager dispatch makes the loop slow, and the parameters are the same)
        host = np.asarray(to_numpy(params))
        base, step = model.to_mean(host), 1e-6
        columns = []
        for i in range(model.dim):
            unit = np.zeros(model.dim)
            unit[i] = step
            columns.append((model.to_mean(host + unit) - base) / step)
        oracle = np.stack(columns, axis=1)
        scale = np.max(np.abs(oracle))
        assert np.max(np.abs(dense - oracle)) < 1e-3 * scale
        assert np.all(np.linalg.eigvalsh(dense) > -1e-6 * scale)  # F is a covariance
        vector = rng.normal(size=model.dim)
        assert_close(
            fisher_vector_product(model, params, xp.asarray(vector)),
            oracle @ vector,
            xp=xp,
            rtol=1e-3,
            atol=1e-3 * scale,
        )
        solved = to_numpy(
            apply_inverse(inverse_operator(fisher_matrix(model, params)), xp.asarray(vector))
        )
        assert np.allclose(dense @ solved, vector, atol=1e-6 * np.max(np.abs(vector)) * 1e3)
    if on_jax:
        return
    params = analytic.initialize_from_sample(0, xs)
    vector = xp.asarray(rng.normal(size=analytic.dim))
    exact = to_numpy(inverse_fisher_product(analytic, params, vector))
    solved = np.linalg.solve(to_numpy(fisher_matrix(analytic, params)), to_numpy(vector))
    assert np.allclose(exact, solved, rtol=1e-4, atol=1e-4 * np.max(np.abs(solved)))
    cg = to_numpy(natural_direction(analytic, params, vector, n_steps=analytic.dim))
    assert float(np.dot(cg, to_numpy(vector))) > 0  # an ascent direction


def test_noise_floor_projection_moves_only_the_small_noise_variances(xp) -> None:
    *_, model = _models()
    xs = xp.asarray(_sample())
    params = model.initialize_from_sample(0, xs)
    before = model.to_generative(params)
    floor = float(np.sort(to_numpy(before.noise))[2])  # two variances lie below it
    project = noise_floor_projection(model, floor)
    assert project is not None
    after = model.to_generative(project(params))
    expected = np.maximum(to_numpy(before.noise), floor)
    assert_close(after.noise, expected, xp=xp, rtol=1e-10)
    for name in ("loadings", "bias", "weights"):
        assert_close(getattr(after, name), to_numpy(getattr(before, name)), xp=xp, rtol=1e-10)
    full = hx.differentiable_hmog(5, hx.PositiveDefinite, 2, hx.Diagonal, 2)
    assert noise_floor_projection(full, floor) is None
    assert noise_floor_projection(model, 0.0) is None


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_autodiff_gradients_give_the_closed_form_trajectory(xp, backend) -> None:
    if xp_name(xp) != backend:
        pytest.skip(f"autodiff check runs on {backend}")
    *_, model = _models()
    xs = xp.asarray(_sample(n=40))
    start = model.initialize_from_sample(0, xs)
    steps = 2 if backend == "jax" else 4  # jax.grad retraces each eager call
    closed = fit_lbfgs(model, start, xs, max_iter=steps, tol=None)
    auto = fit_lbfgs(model, start, xs, max_iter=steps, tol=None, gradient="autodiff")
    assert closed.n_iter == auto.n_iter == steps
    assert np.allclose(closed.log_likelihoods, auto.log_likelihoods, rtol=1e-9, atol=1e-9)
    assert_close(auto.params, to_numpy(closed.params), xp=xp, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("solver", ["natural", "lbfgs"])
def test_estimator_symmetric_full_latent_reaches_the_em_fit(solver) -> None:
    xs = _sample(n=200, seed=2)
    em = hx.HMoG(n_components=2, n_factors=2, random_state=0, tol=1e-10, max_iter=2000).fit(xs)
    symmetric = hx.HMoG(
        n_components=2,
        n_factors=2,
        variant="symmetric",
        latent_rep="full",
        random_state=0,
        solver=solver,
        tol=1e-9,
    ).fit(xs)
    assert symmetric.converged_
    assert abs(symmetric.score(xs) - em.score(xs)) < 1e-5
    history = np.asarray(symmetric.log_likelihood_)
    assert history[-1] >= history[0]


def test_estimator_solver_choice_and_mini_batches_use_adam() -> None:
    xs = _sample(n=120)
    common = {"n_components": 2, "n_factors": 2, "variant": "differentiable", "random_state": 0}
    with pytest.raises(ValueError, match="solver"):
        hx.HMoG(**common, solver="sgd").fit(xs)
    lbfgs = hx.HMoG(**common, max_iter=100).fit(xs)  # 'natural' means L-BFGS here
    with pytest.warns(ConvergenceWarning):  # Adam does not get there in 30 steps
        adam = hx.HMoG(**common, max_iter=30, solver="adam").fit(xs)
    with pytest.warns(ConvergenceWarning):
        batched = hx.HMoG(**common, max_iter=30, batch_size=40, tol=0.0).fit(xs)
    assert lbfgs.score(xs) > adam.score(xs)
    assert batched.n_iter_ == 30  # Adam's steps (L-BFGS would have converged or stopped)
    assert len(adam.log_likelihood_) == adam.n_iter_ + 1


def test_a_second_fit_of_the_same_shapes_compiles_nothing(xp, monkeypatch) -> None:
    if xp_name(xp) != "jax":
        pytest.skip("compilation is JAX's (the other backends run the same kernels eagerly)")
    model_type = type(_models()[2])
    traced = []
    original = model_type.log_likelihood_gradient

    def counting(self, params, xs):  # runs while JAX traces a kernel, not when it reuses one
        traced.append(xs.shape)
        return original(self, params, xs)

    monkeypatch.setattr(model_type, "log_likelihood_gradient", counting)
    fits = []
    for seed in (1, 2):  # new data, new but equal models and projections
        *_, model = _models()
        host = _sample(n=40, seed=seed)
        xs, start = xp.asarray(host), xp.asarray(model.initialize_from_sample(0, host))
        project = noise_floor_projection(model, 1e-3)
        fits.append(fit_lbfgs(model, start, xs, max_iter=4, tol=None, project=project))
        fits.append(hx.fit_gradient(model, start, xs, n_steps=3, batch_size=20, rng=0))
        if seed == 1:
            first = len(traced)
            assert first > 0
    assert len(traced) == first  # the second round reused every compiled kernel
    # the compiled loop takes the eager loop's path (same start, same data; the Fisher matrix
    # is a finite difference, so rounding differences grow to about ε^½ relative)
    *_, model = _models()
    start = model.initialize_from_sample(0, host)
    eager = fit_lbfgs(
        model, start, host, max_iter=4, tol=None, project=noise_floor_projection(model, 1e-3)
    )
    assert np.allclose(fits[2].log_likelihoods, eager.log_likelihoods, rtol=1e-6, atol=0)


# -- warm start of the differentiable variant: EM's fit projected into its family ----------


def _three_groups(n: int = 240, p: int = 6, seed: int = 3) -> np.ndarray:
    """Three latent groups with correlated, unequal covariances (off the diagonal family)."""
    rng = np.random.default_rng(seed)
    centres = np.array([[2.5, 0.0], [-2.0, 1.5], [0.0, -2.5]])
    shapes = np.array([[[1.0, 0.8], [0.8, 1.0]], [[0.6, -0.4], [-0.4, 0.5]], [[0.3, 0], [0, 1]]])
    groups = rng.integers(0, 3, size=n)
    latent = centres[groups] + np.einsum(
        "nij,nj->ni", np.linalg.cholesky(shapes[groups]), rng.normal(size=(n, 2))
    )
    xs = latent @ rng.normal(size=(p, 2)).T + 0.3 * rng.normal(size=(n, p))
    return (xs - xs.mean(0)) / xs.std(0)


@pytest.mark.parametrize("rep", [hx.Diagonal, hx.Scale])
def test_kl_posterior_precisions_match_the_stationarity_conditions(xp, rep) -> None:
    rng = np.random.default_rng(0)
    d, k = 3, 4
    factor = rng.normal(size=(5, d))
    gram = factor.T @ factor  # G = AᵀΨ⁻¹A: positive semi-definite, not diagonal
    roots = rng.normal(size=(k, d, d))
    covariances = roots @ np.swapaxes(roots, -1, -2) + 0.2 * np.eye(d)
    values = to_numpy(kl_posterior_precisions(rep(), xp.asarray(gram), xp.asarray(covariances)))
    assert values.shape == (k, d)
    precisions = values[..., None] * np.eye(d) - gram
    assert np.all(np.linalg.eigvalsh(precisions) > 0)  # D_k − G stays positive definite
    implied = np.diagonal(np.linalg.inv(precisions), axis1=-2, axis2=-1)
    target = np.diagonal(covariances, axis1=-2, axis2=-1)
    if rep is hx.Scale:  # one value per component; its optimum matches the trace
        assert np.allclose(values, values[:, :1])
        implied, target = implied.sum(-1), target.sum(-1)
    # ∂KL/∂D = ½ (Σ − (D − G)⁻¹) restricted to the rep vanishes at the minimum
    assert np.allclose(implied, target, rtol=1e-9, atol=0)


def test_pooled_basis_diagonalises_the_gram_and_the_pooled_precision(xp) -> None:
    rng = np.random.default_rng(1)
    d, k = 3, 2
    factor = rng.normal(size=(6, d))
    gram = factor.T @ factor
    roots = rng.normal(size=(k, d, d))
    precisions = roots @ np.swapaxes(roots, -1, -2) + 0.5 * np.eye(d)
    weights = np.array([0.3, 0.7])
    basis = to_numpy(pooled_basis(xp.asarray(gram), xp.asarray(precisions), xp.asarray(weights)))
    pooled = np.einsum("k,kij->ij", weights, precisions)
    assert np.allclose(basis.T @ pooled @ basis, np.eye(d), atol=1e-10)
    rotated = basis.T @ gram @ basis
    assert np.allclose(rotated, np.diag(np.diag(rotated)), atol=1e-10)
    # the oracle: the generalised eigenvalues of (G, M), ascending
    assert np.allclose(
        np.diag(rotated), np.sort(np.linalg.eigvals(np.linalg.solve(pooled, gram)).real)
    )
    assert np.all(np.sum(basis**3, axis=0) > 0)  # the sign convention


@pytest.mark.parametrize("rep", [hx.Diagonal, hx.Scale])
def test_projection_maps_a_point_of_the_family_to_itself(xp, rep) -> None:
    model = hx.differentiable_hmog(6, hx.Diagonal, 2, rep, 3)
    rng = np.random.default_rng(5)
    loadings, noise = rng.normal(size=(6, 2)), rng.uniform(0.2, 1.0, size=6)
    gram = loadings.T @ (loadings / noise[:, None])  # not diagonal: the pooled basis differs
    assert abs(gram[0, 1]) > 0.1 * np.sqrt(gram[0, 0] * gram[1, 1])
    # posterior precisions D_k in the rep, different per component; Σ_k = (D_k − G)⁻¹
    spread = rng.uniform(0.5, 2.0, size=(3, 1 if rep is hx.Scale else 2))
    posterior = np.sum(np.abs(gram), axis=1).max() + spread
    covariances = np.linalg.inv(posterior[..., None] * np.eye(2) - gram)
    weights, means, bias = np.array([0.2, 0.3, 0.5]), rng.normal(size=(3, 2)), rng.normal(size=6)
    parts = (weights, means, covariances, loadings, bias, noise)
    params = model.from_generative(*(xp.asarray(part) for part in parts))
    lkl_params, _ = model.split_conjugated(params)
    assert_close(_gram(model, lkl_params), gram, xp=xp, rtol=1e-10)
    projected = project_to_family(model, lkl_params, model.to_generative(params))
    assert_close(projected, to_numpy(params), xp=xp, rtol=1e-7, atol=1e-7)


def test_projection_of_an_em_fit_is_a_valid_point_near_it(xp) -> None:
    analytic = hx.analytic_hmog(6, hx.Diagonal, 2, 3)
    model = hx.differentiable_hmog(6, hx.Diagonal, 2, hx.Diagonal, 3)
    xs = xp.asarray(_three_groups())
    em = hx.fit_em(analytic, analytic.initialize_from_sample(0, xs), xs, max_iter=300)
    lkl_params, _ = analytic.split_conjugated(em.params)
    projected = project_to_family(model, lkl_params, analytic.to_generative(em.params))
    generative = model.to_generative(projected)
    # the posterior precisions Σ_k⁻¹ + AᵀΨ⁻¹A are diagonal: a point of the family
    loadings, noise = to_numpy(generative.loadings), to_numpy(generative.noise)
    posterior = np.linalg.inv(to_numpy(generative.covariances)) + loadings.T @ (
        loadings / noise[:, None]
    )
    off = posterior - np.einsum("kii->ki", posterior)[..., None] * np.eye(2)
    assert np.max(np.abs(off)) < 1e-8 * np.max(np.abs(posterior))
    # same weights, and close to EM's density (within the family's restriction)
    assert_close(generative.weights, to_numpy(analytic.to_generative(em.params).weights), xp=xp)
    warm = float(model.average_log_observable_density(projected, xs))
    cold = float(model.average_log_observable_density(model.initialize_from_sample(0, xs), xs))
    assert cold < warm <= em.log_likelihoods[-1] + 1e-9
    # the symmetric family with diagonal differences gets the same prior: its precisions
    # differ across components only on the diagonal, and the density is the same
    symmetric = hx.symmetric_hmog(6, hx.Diagonal, 2, hx.Diagonal, 3)
    lifted = project_to_family(symmetric, lkl_params, analytic.to_generative(em.params))
    precisions = np.linalg.inv(to_numpy(symmetric.to_generative(lifted).covariances))
    differences = precisions[1:] - precisions[:1]
    assert np.max(np.abs(differences[:, 0, 1])) < 1e-8 * np.max(np.abs(precisions))
    assert float(symmetric.average_log_observable_density(lifted, xs)) == pytest.approx(
        warm, rel=1e-10
    )


def test_warm_started_fit_ends_at_least_as_high_as_the_cold_one(xp) -> None:
    model = hx.differentiable_hmog(6, hx.Diagonal, 2, hx.Diagonal, 3)
    host = _three_groups()
    xs = xp.asarray(host)
    settings = hx.HMoG(n_components=3, n_factors=2, variant="differentiable", max_iter=300)
    cold = model.initialize_from_sample(0, xs)
    regularization = Regularization(1e-6, 1e-6, 1e-12)
    warm = em_warm_start(model, xs, xs, 0, cold, settings, regularization)
    steps = 150 if xp_name(xp) != "jax" else 60  # eager JAX compiles each new shape
    fits = [fit_lbfgs(model, start, xs, max_iter=steps, tol=1e-12) for start in (cold, warm)]
    cold_fit, warm_fit = fits
    assert warm_fit.log_likelihoods[0] > cold_fit.log_likelihoods[0]
    assert warm_fit.log_likelihoods[-1] >= cold_fit.log_likelihoods[-1] - 1e-9
    # first-order conditions at the warm fit's end, against autodiff-free NumPy data
    gradient = to_numpy(model.log_likelihood_gradient(warm_fit.params, xs))
    assert np.max(np.abs(gradient)) < 1e-4


def test_estimator_warm_starts_only_from_its_own_starts(monkeypatch) -> None:
    calls = []
    original = training.em_warm_start

    def recording(*args, **kwargs):
        calls.append(args[0])
        return original(*args, **kwargs)

    monkeypatch.setattr(training, "em_warm_start", recording)
    xs = _three_groups(n=150)
    common = {"n_components": 3, "n_factors": 2, "random_state": 0, "max_iter": 300}
    warm = hx.HMoG(**common, variant="differentiable").fit(xs)
    assert len(calls) == 1
    assert isinstance(calls[0], hx.DifferentiableHMoG)
    with pytest.warns(ConvergenceWarning):
        hx.HMoG(**{**common, "max_iter": 5}, variant="differentiable", solver="adam").fit(xs)
    hx.HMoG(**common, variant="symmetric", latent_rep="full", solver="lbfgs").fit(xs)
    assert len(calls) == 1  # Adam and the complete symmetric family keep the usual start
    restricted = hx.HMoG(**common, variant="symmetric", latent_rep="diagonal").fit(xs)
    assert len(calls) == 2
    assert isinstance(calls[1], hx.SymmetricHMoG)
    assert restricted.score(xs) >= warm.score(xs) - 1e-6  # a larger family than warm's

    def user_start(model, data, seed):  # the user's parameters are used as given
        return warm.params_

    user = hx.HMoG(**common, variant="differentiable", init=user_start).fit(xs)
    assert len(calls) == 2
    assert user.score(xs) >= warm.score(xs) - 1e-9
