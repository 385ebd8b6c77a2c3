"""Model construction and one training run per restart (EM, L-BFGS or Adam)."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._bounds import noise_floor_projection
from hmog_xp._lbfgs import fit_lbfgs
from hmog_xp.em import accumulation_dtype, fit_em
from hmog_xp.estimator._gradient_start import em_warm_start, has_warm_start
from hmog_xp.estimator._init import starting_point, user_starting_point
from hmog_xp.estimator._missing import mean_filled
from hmog_xp.estimator._rows import init_sample
from hmog_xp.harmoniums.closed_form import ClosedFormEM
from hmog_xp.harmoniums.stabilizers import Regularization
from hmog_xp.hmog import (
    AnalyticHMoG,
    HierarchicalMixtureOfGaussians,
    MarginalizedHMoG,
    Standardization,
    analytic_hmog,
    differentiable_hmog,
    symmetric_hmog,
)
from hmog_xp.optim import Adam, fit_gradient
from hmog_xp.reps import CovarianceRep, Diagonal, PositiveDefinite, Scale

if TYPE_CHECKING:
    from hmog_xp.estimator._estimator import HMoG

#: Covariance structure names accepted by ``noise`` and ``latent_rep``.
REPS: dict[str, type[CovarianceRep]] = {
    "full": PositiveDefinite,
    "diagonal": Diagonal,
    "isotropic": Scale,
}
VARIANTS = ("analytic", "differentiable", "symmetric")
INITS = ("kmeans++", "random")
#: What ``missing`` accepts: refuse NaN, or marginalise NaN entries.
MISSING = ("error", "marginalize")


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
        Natural parameters returned: EM's last iterate, or the best iterate of gradient
        training.
    log_likelihoods : list of float
        Average log-likelihood history.
    n_iter : int
        Steps taken.
    converged : bool
        Whether ``tol`` was reached.
    best : int
        Index in ``log_likelihoods`` of ``params`` (-1: the last entry).
    """

    params: Any
    log_likelihoods: list[float]
    n_iter: int
    converged: bool
    best: int = -1

    @property
    def log_likelihood(self) -> float:
        """Average log-likelihood of ``params``."""
        return self.log_likelihoods[self.best]


def standardization_for(estimator: HMoG, xs: Any, missing: bool = False) -> Standardization:
    """The map to the coordinates the estimator fits in: columns centred and scaled.

    Isotropic noise is closed only under a common scale, so it gets one scale for all
    columns; the other noise structures get one per column.

    Parameters
    ----------
    estimator : HMoG
        The estimator (``noise``).
    xs : array, shape (N, p)
        Training data in the compute namespace.
    missing : bool, optional
        Whether ``xs`` has NaN entries to ignore (the moments of the observed entries).

    Returns
    -------
    Standardization
        Column means and standard deviations (see :class:`~hmog_xp.Standardization`).
    """
    common = estimator.noise == "isotropic"
    return Standardization.from_data(xs, common_scale=common, missing=missing)


def initial_params(
    estimator: HMoG,
    model: HierarchicalMixtureOfGaussians,
    zs: Any,
    seed: int,
    standardization: Standardization,
) -> Any:
    """Starting natural parameters for one restart (standardised coordinates).

    The named strategies start from the standardised data; a user's ``init`` (callable or
    parameters) speaks the data's units, so its parameters are mapped to standardised
    coordinates.

    Parameters
    ----------
    estimator : HMoG
        The estimator (``init``, ``reg_covar``, ``noise_floor``).
    model : HierarchicalMixtureOfGaussians
        The model.
    zs : array, shape (N, p)
        Standardised data in the compute namespace.
    seed : int
        Seed of this restart.
    standardization : Standardization
        The map from the data's units to ``zs``.

    Returns
    -------
    array, shape (model.dim,)
        Natural parameters of the standardised model.
    """
    if isinstance(estimator.init, str):
        return starting_point(
            model, zs, estimator.init, seed, estimator.reg_covar, estimator.noise_floor
        )
    xs = standardization.unstandardize(zs)
    params = user_starting_point(model, xs, estimator.init, seed, B.array_namespace(xs))
    return standardization.params_from_data(model, params)


def em_regularization(estimator: HMoG, dtype: Any, xp: ModuleType) -> Regularization:
    """The EM stabilisers of the estimator: ``reg_covar``, ``noise_floor``, 10 eps of weight.

    Parameters
    ----------
    estimator : HMoG
        The estimator.
    dtype : dtype
        Floating dtype of the data.
    xp : module
        Its namespace.

    Returns
    -------
    Regularization
        The stabilisers.
    """
    min_weight = 10.0 * float(xp.finfo(dtype).eps)
    return Regularization(estimator.reg_covar, estimator.noise_floor, min_weight)


def run_once(
    estimator: HMoG,
    model: HierarchicalMixtureOfGaussians,
    xs: Any,
    seed: int,
    callback: Callable[[int, float], object] | None,
    standardization: Standardization,
    finished: list[tuple[Any, RunResult]] | None = None,
    marginalized: MarginalizedHMoG | None = None,
) -> RunResult:
    """Initialise and train once: EM for the analytic variant, ``solver`` for the others.

    Everything happens in standardised coordinates (the trace too). EM is deterministic, so
    a restart whose start equals an earlier restart's (one component: every seed gives the
    same partition) reuses that result instead of fitting again. With ``marginalized``, the
    start is computed from the data with every NaN entry at its column's mean, and EM runs
    on the observed entries (:class:`~hmog_xp.MarginalizedHMoG`).

    Parameters
    ----------
    estimator : HMoG
        The estimator (its hyper-parameters).
    model : HierarchicalMixtureOfGaussians
        The model.
    xs : array, shape (N, p)
        Standardised data in the compute namespace.
    seed : int
        Seed of this restart.
    callback : callable or None
        ``callback(iteration, log_likelihood)`` after each step (standardised units).
    standardization : Standardization
        The map from the data's units to ``xs`` (for a user's ``init``).
    finished : list, optional
        ``(start, result)`` of the EM restarts run so far (appended to).
    marginalized : MarginalizedHMoG, optional
        For data with NaN entries: ``model`` wrapped to marginalise them (see
        :func:`marginalized_model`).

    Returns
    -------
    RunResult
        Parameters and the training trace, in standardised coordinates.
    """
    sample = init_sample(xs, seed)
    if marginalized is not None:
        sample = mean_filled(sample)
    params = initial_params(estimator, model, sample, seed, standardization)
    xp = B.array_namespace(xs)
    if isinstance(model, AnalyticHMoG):
        for start, result in finished or ():
            if bool(xp.all(start == params)):
                return result
        fit = fit_em(
            model if marginalized is None else marginalized,
            params,
            xs,
            max_iter=estimator.max_iter,
            tol=estimator.tol,
            # The in-memory M-step runs in the accumulation dtype (float64 for float32 data).
            regularization=em_regularization(estimator, accumulation_dtype(xp, xs.dtype), xp),
            callback=callback,
            accelerate=estimator.accelerate,
        )
        result = RunResult(fit.params, fit.log_likelihoods, fit.n_iter, fit.converged)
        if finished is not None:
            finished.append((params, result))
        return result
    full_batch = estimator.batch_size is None
    if (
        estimator.solver == "natural"
        and full_batch
        and isinstance(model, ClosedFormEM)
        and model.has_closed_form_em
    ):
        # A complete upper mixture (symmetric, full latent): the mirror map is closed form
        # and its unit natural-gradient step is EM's, accelerated by SQUAREM.
        fit = fit_em(
            model,
            params,
            xs,
            max_iter=estimator.max_iter,
            tol=estimator.tol,
            regularization=em_regularization(estimator, accumulation_dtype(xp, xs.dtype), xp),
            callback=callback,
            accelerate=estimator.accelerate,
        )
        return RunResult(fit.params, fit.log_likelihoods, fit.n_iter, fit.converged)
    if estimator.solver != "adam" and full_batch:
        if isinstance(estimator.init, str) and has_warm_start(model):
            # Start from a closed-form EM fit projected into the family, if more likely.
            regularization = em_regularization(estimator, accumulation_dtype(xp, xs.dtype), xp)
            params = em_warm_start(model, xs, sample, seed, params, estimator, regularization)
        # L-BFGS preconditioned by the inverse Fisher matrix; the noise floor is a bound.
        trace = fit_lbfgs(
            model,
            params,
            xs,
            max_iter=estimator.max_iter,
            tol=estimator.tol,
            project=noise_floor_projection(model, estimator.noise_floor),
            callback=callback,
        )
    else:
        trace = fit_gradient(
            model,
            params,
            xs,
            n_steps=estimator.max_iter,
            optimizer=Adam(estimator.learning_rate),
            batch_size=estimator.batch_size,
            rng=seed,
            tol=estimator.tol,
            callback=callback,
        )
    return RunResult(
        trace.params, trace.log_likelihoods, trace.n_iter, trace.converged, trace.best_iter
    )
