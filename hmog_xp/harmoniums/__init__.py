"""Harmoniums: linear Gaussian models (factor analysis, PCA) and Gaussian mixtures."""

from hmog_xp.harmoniums.base import Harmonium
from hmog_xp.harmoniums.lgm import LinearGaussianModel, LinearGaussianParameters
from hmog_xp.harmoniums.lgm_analytic import (
    AnalyticLinearGaussianModel,
    factor_analysis,
    principal_component_analysis,
)

__all__ = [
    "AnalyticLinearGaussianModel",
    "Harmonium",
    "LinearGaussianModel",
    "LinearGaussianParameters",
    "factor_analysis",
    "principal_component_analysis",
]
