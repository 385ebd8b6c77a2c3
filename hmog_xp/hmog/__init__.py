"""Hierarchical mixtures of Gaussians: the three variants and their factories."""

from hmog_xp.hmog._readable import HMoGParameters
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
    "SymmetricHMoG",
    "analytic_hmog",
    "differentiable_hmog",
    "symmetric_hmog",
]
