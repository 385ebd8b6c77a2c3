"""Harmoniums: linear Gaussian models (factor analysis, PCA) and Gaussian mixtures."""

from hmog_xp.harmoniums._lgm_init import (
    check_start_options,
    column_signs,
    dominating_in_rep,
    ppca_start,
)
from hmog_xp.harmoniums._mixture_init import check_sample_size, spread_start
from hmog_xp.harmoniums.base import Harmonium
from hmog_xp.harmoniums.closed_form import (
    ChunkedEStep,
    ClosedFormEM,
    NoClosedFormEMError,
)
from hmog_xp.harmoniums.lgm import LinearGaussianModel, LinearGaussianParameters
from hmog_xp.harmoniums.lgm_analytic import (
    AnalyticLinearGaussianModel,
    factor_analysis,
    principal_component_analysis,
)
from hmog_xp.harmoniums.mixture import Mixture, MixtureParameters
from hmog_xp.harmoniums.mixture_analytic import AnalyticMixture
from hmog_xp.harmoniums.stabilizers import Regularization

__all__ = [
    "AnalyticLinearGaussianModel",
    "AnalyticMixture",
    "ChunkedEStep",
    "ClosedFormEM",
    "Harmonium",
    "LinearGaussianModel",
    "LinearGaussianParameters",
    "Mixture",
    "MixtureParameters",
    "NoClosedFormEMError",
    "Regularization",
    "check_sample_size",
    "check_start_options",
    "column_signs",
    "dominating_in_rep",
    "factor_analysis",
    "ppca_start",
    "principal_component_analysis",
    "spread_start",
]
