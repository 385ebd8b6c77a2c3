"""HMoG shapes, construction and starting points; invalid input raises an error saying why.

Valid: factories taking rep classes or instances, batched observations, ``initialize`` and
``initialize_from_sample`` giving real distributions (density checked against SciPy through
``to_generative``). Invalid, raising ``ValidationError`` (or ``BackendError``): wrong shapes,
non-finite data, empty samples, parameters of the wrong length or that are not a distribution,
generative forms that are not a distribution or that a variant cannot represent, inconsistent
constructor arguments and bad factory arguments.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import hmog_xp as hx
from hmog_xp.harmoniums import (
    AnalyticLinearGaussianModel,
    AnalyticMixture,
    LinearGaussianModel,
    Mixture,
)
from tests.helpers import assert_close, to_numpy, xp_name
from tests.strategies import REPS
from tests.test_hmog import (
    KINDS,
    asarray,
    generative_log_density,
    is_jax,
    make_case,
    standard_model,
)

FULL, DIAG = hx.PositiveDefinite(), hx.Diagonal()


def setup(xp: Any, kind: str) -> tuple[Any, Any, Any]:
    model = standard_model(kind)
    case = make_case(model, seed=30)
    return model, asarray(xp, case.natural), asarray(xp, case.points)


# -- shapes and starting points --------------------------------------------------------------------


def test_factories_accept_rep_classes_and_instances() -> None:
    model = hx.differentiable_hmog(5, hx.Diagonal, 2, hx.Diagonal(), 3)
    assert model == hx.differentiable_hmog(5, hx.Diagonal(), 2, hx.Diagonal, 3)
    assert hash(model) == hash(hx.differentiable_hmog(5, hx.Diagonal, 2, hx.Diagonal, 3))
    assert isinstance(model, hx.DifferentiableHMoG)
    assert (model.lat_dim, model.n_components, model.data_dim) == (2, 3, 5)
    # θ_x (5 + 5) + W (10) + θ_y (2 + 2) + Θ (4 × 2) + θ_z (2)
    assert model.dim == 10 + 10 + 4 + 8 + 2
    symmetric = hx.symmetric_hmog(4, hx.Scale, 2, hx.Diagonal, 2)
    assert symmetric.dim == 5 + 8 + 5 + 4 + 1
    analytic = hx.analytic_hmog(4, hx.PositiveDefinite, 3, 1)
    assert analytic.dim == 14 + 12 + 9
    assert "lat_rep=PositiveDefinite()" in repr(analytic)
    assert "pst_rep=Diagonal()" in repr(model)


@pytest.mark.parametrize("kind", KINDS)
def test_batched_observations_and_factory_defaults(xp: Any, kind: str) -> None:
    model = standard_model(kind)
    case = make_case(model, seed=1)
    params = asarray(xp, case.natural)
    points = case.points.reshape(2, 3, 3)
    x = asarray(xp, points)
    assert tuple(model.log_observable_density(params, x).shape) == (2, 3)
    assert_close(
        model.log_observable_density(params, x),
        case.log_density(case.points).reshape(2, 3),
        xp=xp,
        rtol=1e-7,
    )
    soft = model.posterior_soft_assignments(params, x)
    assert tuple(soft.shape) == (2, 3, 2)
    assert tuple(model.posterior_categorical(params, x).shape) == (2, 3, 1)
    assert tuple(model.posterior_hard_assignment(params, x).shape) == (2, 3)
    assert tuple(model.posterior_latent_mean(params, x).shape) == (2, 3, 2)
    statistics = model.posterior_statistics(params, x)
    assert tuple(statistics.shape) == (2, 3, model.dim)
    assert_close(statistics[1, 2, ...], model.posterior_statistics(params, x[1, 2, ...]), xp=xp)


def test_a_batch_of_parameters_is_supported_or_rejected_clearly(xp: Any) -> None:
    """DESIGN §2: parameters ``(..., dim)`` broadcast against data ``(..., p)`` like gufuncs,
    and a wrong shape is a ``ValidationError`` saying so; never a backend's own error (the
    posterior kernels are shared by the variants: one is enough)."""
    model = standard_model("analytic")
    cases = [make_case(model, seed=s) for s in (32, 33)]
    params = asarray(xp, np.stack([case.natural for case in cases]))  # (2, dim)
    x = asarray(xp, cases[0].points[:2])  # (2, p): one observation per parameter vector
    try:
        result = model.log_observable_density(params, x)
    except hx.ValidationError:
        return
    expected = [case.log_density(cases[0].points[i : i + 1])[0] for i, case in enumerate(cases)]
    assert_close(result, np.array(expected), xp=xp, rtol=1e-7)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("rep", REPS, ids=lambda r: type(r).__name__)
def test_initializations_are_valid_distributions(xp: Any, kind: str, rep: Any) -> None:
    if is_jax(xp) and not isinstance(rep, hx.Diagonal):
        pytest.skip("one structure per variant on JAX (eager compilation is slow)")
    model = standard_model(kind, rep)
    case = make_case(model, seed=4)
    xs = asarray(xp, case.points)
    for params in (model.initialize(0, xp=xp), model.initialize_from_sample(1, xs)):
        assert tuple(params.shape) == (model.dim,)
        assert params.dtype == xp.float64
        values = to_numpy(params)
        assert np.all(np.isfinite(values))
        generative = model.to_generative(params)
        assert_close(xp.sum(generative.weights), 1.0, xp=xp, check_dtype=False)
        assert np.all(np.linalg.eigvalsh(to_numpy(generative.covariances)) > 0)
        expected = generative_log_density(model, generative, case.points)
        assert_close(model.log_observable_density(params, xs), expected, xp=xp, rtol=1e-7)
    assert_close(model.initialize(5, xp=xp), model.initialize(5, xp=xp), xp=xp, rtol=0, atol=0)


# -- observations ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_observations_of_the_wrong_dimension(xp: Any, kind: str) -> None:
    model, params, _ = setup(xp, kind)
    expects = re.escape(f"{model!r} expects shape (..., 3)")
    wide = asarray(xp, np.ones((2, 4)))
    methods: list[Callable[..., Any]] = [
        model.log_observable_density,
        model.observable_density,
        model.posterior_soft_assignments,
        model.posterior_hard_assignment,
        model.posterior_categorical,
        model.posterior_latent_mean,
        model.posterior_statistics,
    ]
    for method in methods:
        with pytest.raises(hx.ValidationError, match=r"x has shape \(2, 4\); " + expects):
            method(params, wide)
    with pytest.raises(hx.ValidationError, match=r"x has shape \(\); "):
        model.log_observable_density(params, asarray(xp, 1.0))
    with pytest.raises(hx.ValidationError, match=r"xs has shape \(2, 4\); "):
        model.mean_posterior_statistics(params, wide)
    with pytest.raises(hx.ValidationError, match="x must be an array of shape"):
        model.log_observable_density(params, [[1.0, 2.0, 3.0]])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_observations(xp: Any, kind: str, bad: float) -> None:
    model, params, _ = setup(xp, kind)
    x = asarray(xp, np.array([[0.5, bad, 1.0], [0.0, 0.0, 0.0]]))
    match = r"contains 1 non-finite value\(s\)"
    for method in (
        model.log_observable_density,
        model.posterior_soft_assignments,
        model.posterior_hard_assignment,
        model.posterior_latent_mean,
        model.average_log_observable_density,
        model.mean_posterior_statistics,
        model.log_likelihood_gradient,
    ):
        with pytest.raises(hx.ValidationError, match=match):
            method(params, x)
    with pytest.raises(hx.ValidationError, match=match):
        model.initialize_from_sample(0, x)
    if kind == "analytic":
        with pytest.raises(hx.ValidationError, match=match):
            model.expectation_maximization(params, x)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_and_unbatched_samples(xp: Any, kind: str) -> None:
    model, params, _ = setup(xp, kind)
    empty = asarray(xp, np.zeros((0, 3)))
    match = re.escape("xs must have shape (N, 3) with N >= 1; got (0, 3)")
    for method in (
        model.average_log_observable_density,
        model.mean_posterior_statistics,
        model.log_likelihood_gradient,
    ):
        with pytest.raises(hx.ValidationError, match=match):
            method(params, empty)
    if kind == "analytic":
        with pytest.raises(hx.ValidationError, match=match):
            model.expectation_maximization(params, empty)
    with pytest.raises(hx.ValidationError, match=re.escape("with N >= 1; got (3,)")):
        model.mean_posterior_statistics(params, asarray(xp, np.zeros(3)))
    with pytest.raises(hx.ValidationError, match="need at least n_components=2 observations"):
        model.initialize_from_sample(0, asarray(xp, np.zeros((1, 3))))


# -- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_parameters_of_the_wrong_length(xp: Any, kind: str) -> None:
    model, params, x = setup(xp, kind)
    short = params[:-1]
    match = re.escape(
        f"params has shape ({model.dim - 1},); {model!r} expects shape (..., {model.dim})"
    )
    for call in (
        lambda: model.log_observable_density(short, x),
        lambda: model.posterior_soft_assignments(short, x),
        lambda: model.mean_posterior_statistics(short, x),
        lambda: model.log_likelihood_gradient(short, x),
        lambda: model.to_mean(short),
        lambda: model.to_generative(short),
        lambda: model.split_coords(short),
        lambda: model.log_partition_function(short),
        lambda: model.sample(0, short, 3),
    ):
        with pytest.raises(hx.ValidationError, match=match):
            call()
    if kind != "symmetric":  # whiten_prior needs a complete upper mixture
        with pytest.raises(hx.ValidationError, match=r"means has shape"):
            model.whiten_prior(short)
    if kind == "analytic":
        with pytest.raises(hx.ValidationError, match=r"means has shape"):
            model.to_natural(short)


@pytest.mark.parametrize("kind", KINDS)
def test_parameters_that_are_not_a_distribution(xp: Any, kind: str) -> None:
    model, params, x = setup(xp, kind)
    values = to_numpy(params).copy()
    broken = values.copy()
    broken[3:6] = 1.0  # −½ diag(Λ_x) > 0: the observable precision is negative
    with pytest.raises(hx.ValidationError, match=r"observable precision .* not positive definite"):
        model.log_observable_density(asarray(xp, broken), x)
    broken = values.copy()
    broken[model.lkl_dim + 2 : model.lkl_dim + 4] = 50.0  # a negative component precision
    with pytest.raises(hx.ValidationError, match="not positive definite"):
        model.log_observable_density(asarray(xp, broken), x)
    with pytest.raises(hx.ValidationError, match="not positive definite"):
        model.to_mean(asarray(xp, broken))
    with pytest.raises(hx.ValidationError, match="non-negative int"):
        model.sample(0, params, -1)


# -- generative forms -----------------------------------------------------------------------------


def _generative(xp: Any, model: Any) -> dict[str, Any]:
    names = ("weights", "means", "covariances", "loadings", "bias", "noise")
    return dict(zip(names, make_case(model, seed=31).generative, strict=True))


BAD_FORMS = [
    ("weights", np.array([0.5, 0.6]), "must sum to one"),
    ("weights", np.array([1.2, -0.2]), r"must all be > 0"),
    ("weights", np.array([0.2, 0.3, 0.5]), r"needs weights of shape \(2,\)"),
    ("weights", np.array([np.nan, 1.0]), "weights contains 1 non-finite"),
    (
        "covariances",
        np.stack([[[1.0, 2.0], [2.0, 1.0]], np.eye(2)]),
        "covariance .* not positive definite",
    ),
    ("covariances", np.stack([[[1.0, 0.5], [0.2, 1.0]], np.eye(2)]), "not a symmetric matrix"),
    ("covariances", np.ones((2, 3, 3)), r"covariance has shape \(2, 3, 3\)"),
    ("means", np.ones((2, 3)), r"mean has shape \(2, 3\)"),
    ("noise", np.array([1.0, -1.0, 1.0]), "noise covariance .* not positive definite"),
    ("noise", np.ones(4), r"noise has shape \(4,\)"),
    ("noise", np.asarray(1.0), r"noise has shape \(\)"),
    ("loadings", np.ones((2, 3)), r"loadings has shape \(2, 3\); .* expects \(3, 2\)"),
    ("bias", np.ones(4), r"bias has shape \(4,\)"),
]


@pytest.mark.parametrize(
    ("field", "value", "match"), BAD_FORMS, ids=[f"{f}-{i}" for i, (f, *_) in enumerate(BAD_FORMS)]
)
def test_generative_forms_that_are_not_distributions(
    xp: Any, field: str, value: Any, match: str
) -> None:
    model = standard_model("analytic")
    form = _generative(xp, model) | {field: value}
    with pytest.raises(hx.ValidationError, match=match):
        model.from_generative(**{name: asarray(xp, a) for name, a in form.items()})


def test_restricted_variants_refuse_what_they_cannot_represent(xp: Any) -> None:
    complete = _generative(xp, standard_model("analytic"))
    arrays = {name: asarray(xp, a) for name, a in complete.items()}
    symmetric, params, x = setup(xp, "symmetric")
    means = symmetric.to_mean(params)
    for call in (
        lambda: symmetric.to_natural(means),
        lambda: symmetric.negative_entropy(means),
        lambda: symmetric.whiten_prior(means),
        lambda: symmetric.expectation_maximization(params, x),
    ):
        with pytest.raises(hx.ValidationError, match="needs a complete upper mixture"):
            call()
    with pytest.raises(hx.ValidationError, match=r"may differ only in Diagonal\(\)"):
        symmetric.from_generative(**arrays)  # full covariances differing off the diagonal
    differentiable, params, _ = setup(xp, "differentiable")
    with pytest.raises(hx.ValidationError, match=r"may differ only in Diagonal\(\)"):
        differentiable.from_generative(**arrays)
    one = hx.differentiable_hmog(3, hx.Diagonal, 2, hx.Diagonal, 1)  # nothing varies: Λ_0 checked
    single = arrays | {
        "weights": asarray(xp, [1.0]),
        "means": arrays["means"][:1, ...],
        "covariances": arrays["covariances"][:1, ...],
    }
    with pytest.raises(hx.ValidationError, match="cannot represent this generative form"):
        one.from_generative(**single)
    with pytest.raises(hx.ValidationError, match="join_conjugated needs the prior and posterior"):
        differentiable.join_conjugated(*differentiable.split_conjugated(params))
    assert not hasattr(differentiable, "to_natural")
    assert not hasattr(differentiable, "expectation_maximization")


def test_autodiff_needs_an_autodiff_backend(xp: Any) -> None:
    if xp_name(xp) in ("jax", "torch"):
        pytest.skip("this backend has automatic differentiation")
    model, params, x = setup(xp, "analytic")
    with pytest.raises(hx.BackendError, match="automatic differentiation is not available"):
        hx.grad(model.average_log_observable_density)(params, x)
    with pytest.raises(hx.BackendError, match="closed-form gradients"):
        hx.value_and_grad(model.average_log_observable_density)(params, x)


# -- construction ---------------------------------------------------------------------------------


LGM_DIAG = LinearGaussianModel(3, DIAG, 2, DIAG)
LGM_FULL = AnalyticLinearGaussianModel(3, DIAG, 2)
PST, PRR = AnalyticMixture(hx.Normal(2, DIAG), 2), Mixture(hx.Normal(2, FULL), 2, DIAG)
CONSTRUCTORS = [
    (
        lambda: hx.DifferentiableHMoG(LGM_DIAG, AnalyticMixture(hx.Normal(3, DIAG), 2), PRR),
        "is over dimension 3, but the lower harmonium has lat_dim=2",
    ),
    (
        lambda: hx.DifferentiableHMoG(LGM_DIAG, PST, Mixture(hx.Normal(2, FULL), 3, DIAG)),
        "disagree on n_components",
    ),
    (
        lambda: hx.DifferentiableHMoG(LGM_DIAG, AnalyticMixture(hx.Normal(2, FULL), 2), PRR),
        "pst_upr_hrm must be AnalyticMixture",
    ),
    (
        lambda: hx.DifferentiableHMoG(LGM_DIAG, PST, Mixture(hx.Normal(2, FULL), 2)),
        "prr_upr_hrm must be Mixture",
    ),
    (lambda: hx.DifferentiableHMoG("lgm", PST, PRR), "lwr_hrm must be a LinearGaussianModel"),
    (lambda: hx.DifferentiableHMoG(LGM_DIAG, hx.Normal(2, DIAG), PRR), "must be Mixture instances"),
    (
        lambda: hx.AnalyticHMoG(LGM_FULL, Mixture(hx.Normal(2, FULL), 2, DIAG)),
        r"AnalyticHMoG needs upr_hrm=AnalyticMixture",
    ),
    (
        lambda: hx.AnalyticHMoG(LGM_FULL, AnalyticMixture(hx.Normal(2, DIAG), 2)),
        r"AnalyticHMoG needs upr_hrm=",
    ),
    (
        lambda: hx.AnalyticHMoG(
            LinearGaussianModel(3, DIAG, 2, FULL), AnalyticMixture(hx.Normal(2, FULL), 2)
        ),
        "AnalyticHMoG needs an AnalyticLinearGaussianModel",
    ),
    (lambda: hx.AnalyticHMoG(LGM_FULL, AnalyticMixture(hx.Normal(3, FULL), 2)), "over dimension 3"),
    (lambda: hx.SymmetricHMoG(LGM_DIAG, PRR), "SymmetricHMoG needs a full-latent lwr_hrm"),
    (lambda: hx.SymmetricHMoG(LGM_FULL, Mixture(hx.Normal(2, DIAG), 2)), "full-covariance upper"),
]


@pytest.mark.parametrize(
    ("build", "match"), CONSTRUCTORS, ids=[str(i) for i in range(len(CONSTRUCTORS))]
)
def test_inconsistent_constructor_arguments(build: Callable[[], Any], match: str) -> None:
    with pytest.raises(hx.ValidationError, match=match):
        build()


FACTORY_ERRORS = [
    (
        lambda: hx.analytic_hmog(3, "diag", 2, 2),
        "obs_rep must be PositiveDefinite, Diagonal or Scale; got 'diag'",
    ),
    (lambda: hx.analytic_hmog(3, int, 2, 2), "obs_rep must be PositiveDefinite, Diagonal or Scale"),
    (
        lambda: hx.differentiable_hmog(3, hx.Diagonal, 2, "full", 2),
        "pst_rep must be PositiveDefinite",
    ),
    (lambda: hx.symmetric_hmog(3, hx.Diagonal, 2, None, 2), "lat_rep must be PositiveDefinite"),
    (lambda: hx.analytic_hmog(0, hx.Diagonal, 2, 2), "obs_dim must be a positive int; got 0"),
    (
        lambda: hx.differentiable_hmog(3, hx.Scale, 0, hx.Diagonal, 2),
        "lat_dim must be a positive int",
    ),
    (lambda: hx.analytic_hmog(3, hx.Diagonal, 2, 0), "n_components must be a positive int; got 0"),
    (
        lambda: hx.symmetric_hmog(3, hx.Diagonal, 2, hx.Scale, 2.0),
        "n_components must be a positive int",
    ),
]


@pytest.mark.parametrize(
    ("build", "match"), FACTORY_ERRORS, ids=[str(i) for i in range(len(FACTORY_ERRORS))]
)
def test_bad_factory_arguments(build: Callable[[], Any], match: str) -> None:
    with pytest.raises(hx.ValidationError, match=re.escape(match) if "'" in match else match):
        build()


@pytest.mark.parametrize(
    "method",
    [
        "log_observable_density",
        "average_log_observable_density",
        "posterior_soft_assignments",
        "posterior_latent_mean",
        "mean_posterior_statistics",
    ],
)
def test_parameters_and_data_from_different_backends_are_named(xp: Any, method: str) -> None:
    if xp_name(xp) == "numpy":
        pytest.skip("needs a second backend: NumPy data against non-NumPy parameters")
    model = hx.analytic_hmog(3, hx.Diagonal, 1, 2)
    params = model.initialize(0, xp=xp)
    with pytest.raises(hx.BackendError, match=r"not arrays of a single supported backend \(got"):
        getattr(model, method)(params, np.ones((4, 3)))
