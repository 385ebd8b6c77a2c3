"""Linear Gaussian models: invalid input raises ``hmog_xp.ValidationError`` naming the problem."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp.harmoniums import AnalyticLinearGaussianModel, LinearGaussianModel, factor_analysis
from tests.helpers import assert_close
from tests.strategies import REPS
from tests.test_lgm import asarray, make_case, quadratic_np


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: LinearGaussianModel(0, hx.Diagonal(), 2), "obs_dim must be a positive int"),
        (lambda: LinearGaussianModel(3, hx.Diagonal(), 0), "lat_dim must be a positive int"),
        (lambda: LinearGaussianModel(3.0, hx.Diagonal(), 1), "obs_dim must be a positive int"),
        (lambda: LinearGaussianModel(3, "diagonal", 1), "obs_rep must be"),
        (lambda: LinearGaussianModel(3, hx.Diagonal(), 1, None), "pst_rep must be"),
        (
            lambda: AnalyticLinearGaussianModel(3, hx.Diagonal(), 2, hx.Diagonal()),
            r"needs pst_rep=PositiveDefinite\(\)",
        ),
        (lambda: factor_analysis(3, 0), "lat_dim must be a positive int"),
    ],
)
def test_constructor_rejects_invalid_arguments(make: Any, match: str) -> None:
    with pytest.raises(hx.ValidationError, match=match):
        make()


def test_invalid_data_and_parameters_raise(xp: Any) -> None:
    model = factor_analysis(3, 2)
    case = make_case(model, seed=1)
    params, x = asarray(xp, case.natural), asarray(xp, case.points)
    wrong_dim = asarray(xp, case.points[:, :2])
    for method in (model.log_observable_density, model.posterior_at, model.posterior_statistics):
        with pytest.raises(hx.ValidationError, match=r"x has shape \(4, 2\)"):
            method(params, wrong_dim)
    for method in (model.mean_posterior_statistics, model.expectation_maximization):
        with pytest.raises(hx.ValidationError, match=r"xs has shape \(4, 2\)"):
            method(params, wrong_dim)
    bad = case.points.copy()
    bad[1, 2] = np.nan
    with pytest.raises(hx.ValidationError, match="x contains 1 non-finite"):
        model.log_observable_density(params, asarray(xp, bad))
    bad[0, 0] = np.inf
    with pytest.raises(hx.ValidationError, match="xs contains 2 non-finite"):
        model.expectation_maximization(params, asarray(xp, bad))
    empty = asarray(xp, np.zeros((0, 3)))
    for method in (
        model.average_log_observable_density,
        model.mean_posterior_statistics,
        model.expectation_maximization,
        lambda _, xs: model.initialize_from_sample(0, xs),
    ):
        with pytest.raises(hx.ValidationError, match=r"xs must have shape \(N, 3\) with N >= 1"):
            method(params, empty)
    short = params[:-1]
    for method in (model.log_observable_density, model.posterior_latent_mean):
        with pytest.raises(hx.ValidationError, match=rf"params has shape \({model.dim - 1},\)"):
            method(short, x)
    for unary in (model.log_partition_function, model.to_mean, model.to_generative):
        with pytest.raises(hx.ValidationError, match="params has shape"):
            unary(short)
    with pytest.raises(hx.ValidationError, match=rf"means has shape \({model.dim - 1},\)"):
        model.to_natural(short)
    with pytest.raises(hx.ValidationError, match="means has shape"):
        model.whiten_prior(short)
    obs, interaction, lat = model.split_coords(params)
    with pytest.raises(hx.ValidationError, match=r"interaction has shape \(2, 3\)"):
        model.join_coords(obs, xp.matrix_transpose(interaction), lat)


@pytest.mark.parametrize("pst_rep", REPS, ids=lambda rep: type(rep).__name__)
def test_indefinite_prior_raises(xp: Any, pst_rep: hx.CovarianceRep) -> None:
    """θ_y with a valid posterior precision Λ_y but Λ_y − WᵀΨ⁻¹W indefinite."""
    case = make_case(LinearGaussianModel(3, hx.Diagonal(), 2, pst_rep), seed=4, loading_scale=2)
    model = case.model
    gram = case.loadings.T @ case.noise_precision @ case.loadings
    level = np.linalg.eigvalsh(gram)[-1] / 4  # posterior precision PD, prior not
    lat = np.concatenate([np.zeros(2), -0.5 * quadratic_np(pst_rep, level * np.eye(2))])
    params = asarray(xp, np.concatenate([case.natural[: model.lkl_dim], lat]))
    x = asarray(xp, case.points)
    assert_close(  # the posterior is still a valid Normal
        model.posterior_latent_mean(params, x),
        (case.points @ case.noise_precision @ case.loadings) / level,
        xp=xp,
    )
    for method in (model.log_partition_function, model.to_generative, model.to_mean):
        with pytest.raises(hx.ValidationError, match="not positive definite"):
            method(params)
    with pytest.raises(hx.ValidationError, match="not positive definite"):
        model.log_observable_density(params, x)
    with pytest.raises(hx.ValidationError, match="not positive definite"):
        model.sample(0, params, 3)
    # a posterior precision that is not positive definite fails in the posterior itself
    flipped = np.concatenate([case.natural[: model.lkl_dim], -lat])
    with pytest.raises(hx.ValidationError, match=r"posterior precision .* not positive definite"):
        model.posterior_latent_mean(asarray(xp, flipped), x)


@pytest.mark.parametrize(
    ("rep", "loadings", "noise", "match"),
    [
        (hx.Diagonal(), (3, 2), [1.0, -0.5, 1.0], "noise covariance .* not positive definite"),
        (hx.Scale(), (3, 2), -1.0, "noise covariance .* not positive definite"),
        (hx.PositiveDefinite(), (3, 2), [[1, 2, 0], [2, 1, 0], [0, 0, 1]], "not positive def"),
        (hx.Diagonal(), (2, 3), [1.0, 1.0, 1.0], r"loadings has shape \(2, 3\).* \(3, 2\)"),
        (hx.Diagonal(), (3,), [1.0, 1.0, 1.0], r"loadings has shape \(3,\)"),
        (hx.Diagonal(), (3, 2), [1.0, 1.0], r"noise has shape \(2,\); .* expects \(3,\)"),
        (hx.PositiveDefinite(), (3, 2), [1.0, 1.0, 1.0], r"noise has shape \(3,\).* \(3, 3\)"),
        (hx.Diagonal(), (3, 2), [1.0, np.nan, 1.0], "noise contains 1 non-finite"),
    ],
)
def test_from_generative_rejects_bad_generative_forms(
    xp: Any, rep: hx.CovarianceRep, loadings: tuple[int, ...], noise: Any, match: str
) -> None:
    model = AnalyticLinearGaussianModel(3, rep, 2)
    with pytest.raises(hx.ValidationError, match=match):
        model.from_generative(
            asarray(xp, np.ones(loadings)), asarray(xp, np.zeros(3)), asarray(xp, noise)
        )
    with pytest.raises(hx.ValidationError, match=r"bias has shape \(2,\)"):
        model.from_generative(
            asarray(xp, np.ones((3, 2))), asarray(xp, np.zeros(2)), asarray(xp, noise)
        )
