"""Hierarchical mixtures of Gaussians: the three variants and their factories."""

from hmog_xp.hmog._basis import canonical_latent_basis, has_full_latent_basis
from hmog_xp.hmog._marginalized import MarginalizedHMoG
from hmog_xp.hmog._missing_patterns import MissingPatterns, worthwhile_patterns
from hmog_xp.hmog._readable import HMoGParameters
from hmog_xp.hmog._standardize import Standardization
from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians
from hmog_xp.hmog.variants import (
    AnalyticHMoG,
    DifferentiableHMoG,
    SymmetricHMoG,
    analytic_hmog,
    differentiable_hmog,
    symmetric_hmog,
)

__all__ = [
    "AnalyticHMoG",
    "DifferentiableHMoG",
    "HMoGParameters",
    "HierarchicalMixtureOfGaussians",
    "MarginalizedHMoG",
    "MissingPatterns",
    "Standardization",
    "SymmetricHMoG",
    "analytic_hmog",
    "canonical_latent_basis",
    "differentiable_hmog",
    "has_full_latent_basis",
    "symmetric_hmog",
    "worthwhile_patterns",
]
