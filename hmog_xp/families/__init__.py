"""Exponential families: the protocol, ``Normal`` and ``Categorical``."""

from hmog_xp.families.base import ExponentialFamily
from hmog_xp.families.categorical import Categorical
from hmog_xp.families.normal import Normal

__all__ = ["Categorical", "ExponentialFamily", "Normal"]
