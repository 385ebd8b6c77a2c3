"""hmog_xp: hierarchical mixtures of Gaussians on any Array-API backend.

Public API (everything else is private):

* backends: :func:`set_backend`, :func:`get_backend`, :func:`installed_backends`,
  :func:`value_and_grad`, :func:`grad`, :func:`jit`;
* covariance representations: :class:`PositiveDefinite`, :class:`Diagonal`, :class:`Scale`;
* exponential families: :class:`Normal`, :class:`Categorical`;
* harmoniums: :class:`LinearGaussianModel`, :class:`AnalyticLinearGaussianModel`,
  :func:`factor_analysis`, :func:`principal_component_analysis`, :class:`Mixture`,
  :class:`AnalyticMixture`;
* hierarchical mixtures of Gaussians: :class:`DifferentiableHMoG`, :class:`SymmetricHMoG`,
  :class:`AnalyticHMoG` and the factories :func:`differentiable_hmog`,
  :func:`symmetric_hmog`, :func:`analytic_hmog`;
* EM at scale: :func:`fit_em` (chunked E-step, cached data statistics, jitted on JAX),
  :func:`em_steps`, with explicit M-step stabilisers :class:`Regularization`;
* beyond one array (:mod:`hmog_xp.scale`): :func:`fit_em_dask` and the lazy
  :func:`dask_predict`, :func:`dask_predict_proba`, :func:`dask_transform`,
  :func:`dask_score_samples` on Dask arrays; online EM :func:`online_em_init`,
  :func:`online_em_update`, :func:`fit_online` (:class:`StepSize`, :class:`OnlineEMState`,
  :class:`OnlineEMFit`);
* the scikit-learn style estimator :class:`HMoG` (fit / predict / transform / score / bic /
  sample / save / load);
* gradient training on every backend: :func:`fit_lbfgs`, :class:`Adam`, :func:`fit_gradient`;
* validation switch: :func:`set_validation`, :func:`validation`; errors
  :class:`ValidationError`, :class:`BackendError`, :class:`ModelFileError`.
"""

from typing import TYPE_CHECKING, Any

from hmog_xp._backend import (
    get_backend,
    grad,
    installed_backends,
    jit,
    set_backend,
    value_and_grad,
)
from hmog_xp._errors import BackendError, ValidationError
from hmog_xp._files import ModelFileError
from hmog_xp._lbfgs import fit_lbfgs
from hmog_xp._validation import set_validation, validation
from hmog_xp.em import EMFit, Regularization, em_steps, fit_em
from hmog_xp.families import Categorical, ExponentialFamily, Normal
from hmog_xp.harmoniums import (
    AnalyticLinearGaussianModel,
    AnalyticMixture,
    ChunkedEStep,
    ClosedFormEM,
    Harmonium,
    LinearGaussianModel,
    LinearGaussianParameters,
    Mixture,
    MixtureParameters,
    NoClosedFormEMError,
    factor_analysis,
    principal_component_analysis,
)
from hmog_xp.hmog import (
    AnalyticHMoG,
    DifferentiableHMoG,
    HierarchicalMixtureOfGaussians,
    HMoGParameters,
    MarginalizedHMoG,
    MissingPatterns,
    Standardization,
    SymmetricHMoG,
    analytic_hmog,
    canonical_latent_basis,
    differentiable_hmog,
    symmetric_hmog,
)
from hmog_xp.optim import Adam, AdamState, GradientFit, fit_gradient
from hmog_xp.reps import CovarianceRep, Diagonal, PositiveDefinite, Scale
from hmog_xp.scale import (
    OnlineEMFit,
    OnlineEMState,
    StepSize,
    dask_predict,
    dask_predict_proba,
    dask_score_samples,
    dask_transform,
    fit_em_dask,
    fit_online,
    online_em_init,
    online_em_update,
)

if TYPE_CHECKING:
    from hmog_xp.estimator import HMoG, ModelSelection, select_model

__version__ = "0.1.0.dev0"


def __getattr__(name: str) -> Any:
    """Import the estimator and model selection on first use (scikit-learn is slow to import).

    Parameters
    ----------
    name : str
        Attribute name.

    Returns
    -------
    object
        The attribute.
    """
    if name in ("HMoG", "ModelSelection", "select_model"):
        from hmog_xp import estimator

        return getattr(estimator, name)
    msg = f"module 'hmog_xp' has no attribute {name!r}"
    raise AttributeError(msg)


__all__ = [
    "Adam",
    "AdamState",
    "AnalyticHMoG",
    "AnalyticLinearGaussianModel",
    "AnalyticMixture",
    "BackendError",
    "Categorical",
    "ChunkedEStep",
    "ClosedFormEM",
    "CovarianceRep",
    "Diagonal",
    "DifferentiableHMoG",
    "EMFit",
    "ExponentialFamily",
    "GradientFit",
    "HMoG",
    "HMoGParameters",
    "Harmonium",
    "HierarchicalMixtureOfGaussians",
    "LinearGaussianModel",
    "LinearGaussianParameters",
    "MarginalizedHMoG",
    "MissingPatterns",
    "Mixture",
    "MixtureParameters",
    "ModelFileError",
    "ModelSelection",
    "NoClosedFormEMError",
    "Normal",
    "OnlineEMFit",
    "OnlineEMState",
    "PositiveDefinite",
    "Regularization",
    "Scale",
    "Standardization",
    "StepSize",
    "SymmetricHMoG",
    "ValidationError",
    "__version__",
    "analytic_hmog",
    "canonical_latent_basis",
    "dask_predict",
    "dask_predict_proba",
    "dask_score_samples",
    "dask_transform",
    "differentiable_hmog",
    "em_steps",
    "factor_analysis",
    "fit_em",
    "fit_em_dask",
    "fit_gradient",
    "fit_lbfgs",
    "fit_online",
    "get_backend",
    "grad",
    "installed_backends",
    "jit",
    "online_em_init",
    "online_em_update",
    "principal_component_analysis",
    "select_model",
    "set_backend",
    "set_validation",
    "symmetric_hmog",
    "validation",
    "value_and_grad",
]
