"""The scikit-learn style estimator :class:`HMoG` (fit / predict / score / save / load)."""

from hmog_xp.estimator._estimator import HMoG
from hmog_xp.estimator._selection import ModelSelection, select_model

__all__ = ["HMoG", "ModelSelection", "select_model"]
