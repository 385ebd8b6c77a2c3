"""Model construction and one training run per restart (EM or Adam on the exact gradient)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp.em import fit_em
from hmog_xp.estimator._init import starting_point, user_starting_point
from hmog_xp.hmog import (
    AnalyticHMoG,
    HierarchicalMixtureOfGaussians,
    analytic_hmog,
    differentiable_hmog,
    symmetric_hmog,
)
from hmog_xp.hmog._regularize import Regularization
from hmog_xp.optim import Adam, fit_gradient
from hmog_xp.reps import CovarianceRep, Diagonal, PositiveDefinite, Scale

#: Covariance structure names accepted by ``noise`` and ``latent_rep``.
REPS: dict[str, type[CovarianceRep]] = {
    "full": PositiveDefinite,
    "diagonal": Diagonal,
    "isotropic": Scale,
}
VARIANTS = ("analytic", "differentiable", "symmetric")
INITS = ("kmeans++", "random")


def build_model(
    variant: str, noise: str, latent_rep: str, n_features: int, n_factors: int, n_components: int
) -> HierarchicalMixtureOfGaussians:
    """Build the HMoG the estimator's hyper-parameters describe.

    Parameters
    ----------
    variant : {'analytic', 'differentiable', 'symmetric'}
        Model variant.
    noise : {'full', 'diagonal', 'isotropic'}
        Observation noise structure.
    latent_rep : {'full', 'diagonal', 'isotropic'}
        Posterior rep (differentiable) or what varies across components (symmetric).
    n_features : int
        ``p``.
    n_factors : int
        ``d``.
    n_components : int
        ``K``.

    Returns
    -------
    HierarchicalMixtureOfGaussians
        The model.
    """
    obs_rep = REPS[noise]()
    if variant == "analytic":
        return analytic_hmog(n_features, obs_rep, n_factors, n_components)
    if variant == "differentiable":
        return differentiable_hmog(n_features, obs_rep, n_factors, REPS[latent_rep](), n_components)
    return symmetric_hmog(n_features, obs_rep, n_factors, REPS[latent_rep](), n_components)


def n_free_parameters(model: HierarchicalMixtureOfGaussians, latent_rep: str) -> int:
    """Count the free parameters of a model for BIC / AIC.

    The natural parameters over-count by the latent re-parametrisations that leave ``p(x)``
    unchanged: any affine map ``y ↦ Ly + c`` that keeps the model's structure is absorbed by
    the loadings and the mixture (``d + d²`` for full latent components, ``2d`` when the
    components differ only in diagonal matrices, ``d + 1 + d(d−1)/2`` (shift, scale,
    rotation) when they differ only in a scale).

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    latent_rep : {'full', 'diagonal', 'isotropic'}
        Latent structure for the non-analytic variants.

    Returns
    -------
    int
        Number of free parameters.
    """
    d = model.lat_dim
    structure = "full" if model.posterior_upper.varying_rep == PositiveDefinite() else latent_rep
    redundant = {"full": d + d * d, "diagonal": 2 * d, "isotropic": d + 1 + d * (d - 1) // 2}
    return int(model.dim - redundant[structure])


class RunResult(NamedTuple):
    """One restart's outcome.

    Attributes
    ----------
    params : array
        Final natural parameters.
    log_likelihoods : list of float
        Average log-likelihood history.
    n_iter : int
        Steps taken.
    converged : bool
        Whether ``tol`` was reached.
    """

    params: Any
    log_likelihoods: list[float]
    n_iter: int
    converged: bool


def run_once(
    model: HierarchicalMixtureOfGaussians,
    xs: Any,
    *,
    init: Any,
    seed: int,
    settings: dict[str, Any],
    callback: Callable[[int, float], object] | None,
) -> RunResult:
    """Initialise and train once.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    xs : array, shape (N, p)
        Data in the compute namespace.
    init : str, callable or parameters
        Initialisation (see ``HMoG``).
    seed : int
        Seed of this restart.
    settings : dict
        ``max_iter``, ``tol``, ``reg_covar``, ``noise_floor``, ``learning_rate``,
        ``batch_size``.
    callback : callable or None
        ``callback(iteration, log_likelihood)`` after each step.

    Returns
    -------
    RunResult
        Parameters and the training trace.
    """
    xp = B.array_namespace(xs)
    if isinstance(init, str):
        params = starting_point(
            model, xs, init, seed, settings["reg_covar"], settings["noise_floor"]
        )
    else:
        params = user_starting_point(model, xs, init, seed, xp)
    if isinstance(model, AnalyticHMoG):
        min_weight = 10.0 * float(xp.finfo(xs.dtype).eps)
        regularization = Regularization(settings["reg_covar"], settings["noise_floor"], min_weight)
        fit = fit_em(
            model,
            params,
            xs,
            max_iter=settings["max_iter"],
            tol=settings["tol"],
            regularization=regularization,
            callback=callback,
        )
        return RunResult(fit.params, fit.log_likelihoods, fit.n_iter, fit.converged)
    trace = fit_gradient(
        model,
        params,
        xs,
        n_steps=settings["max_iter"],
        optimizer=Adam(settings["learning_rate"]),
        batch_size=settings["batch_size"],
        rng=seed,
        tol=settings["tol"],
        callback=callback,
    )
    return RunResult(trace.params, trace.log_likelihoods, trace.n_iter, trace.converged)
