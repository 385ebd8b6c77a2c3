"""The scikit-learn style estimator :class:`HMoG` (fit / predict / score / save / load)."""

from hmog_xp.estimator._estimator import HMoG

__all__ = ["HMoG"]
