"""The noise-variance floor of gradient training, as a projection of natural parameters.

A column the latent factors explain exactly (a constant column, a pixel that is always 0)
drives its noise variance to zero and the log-likelihood to ``+∞``; EM floors the variances
at each M-step (``noise_floor``). Gradient training honours the same floor by projecting
every trial point: a noise precision ``λ_j`` above ``1 / floor`` is lowered to it, and the
row's linear term ``h_j`` and interaction row ``W_j`` are scaled by the same factor, so the
loadings ``A = Λ⁻¹ W`` and the bias ``b = Λ⁻¹ h`` stay put and only the variance moves. The
latent coordinates are untouched; the prior precision they imply grows by
``Σ_j (1 − r_j) λ_j a_j a_jᵀ`` (``r_j <= 1`` the factor), so a valid point stays valid.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hmog_xp import _backend as B
from hmog_xp.reps import Diagonal, Scale


@dataclass(frozen=True)
class NoiseFloor:  # numpydoc ignore=PR02
    """``project(params)``: noise variances raised to at least ``1 / ceiling``.

    A frozen dataclass (equal for equal models and floors), so the compiled line-search
    kernel that takes it as a static argument is reused by the next fit.

    Parameters
    ----------
    model : HMoG variant
        The model (diagonal or isotropic noise).
    ceiling : float
        Largest noise precision, ``1 / floor``.
    """

    model: Any
    ceiling: float

    def __call__(self, params: Any) -> Any:
        """Project natural parameters onto the noise floor.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        array, shape (..., dim)
            The projected parameters.
        """
        xp = B.array_namespace(params)
        obs_man = self.model.obs_man
        rows, cols = self.model.int_shape
        obs_end = obs_man.dim
        lkl_end = obs_end + rows * cols
        location, precision = obs_man.split_location_precision(params[..., :obs_end])
        lowered = xp.minimum(precision, xp.full_like(precision, self.ceiling))
        ratio = lowered / precision
        interaction = xp.reshape(params[..., obs_end:lkl_end], (rows, cols))
        scaled = xp.reshape(interaction * ratio[:, None], (rows * cols,))
        obs = obs_man.join_location_precision(location * ratio, lowered)
        return xp.concat([obs, scaled, params[..., lkl_end:]], axis=-1)


def noise_floor_projection(model: Any, floor: float) -> NoiseFloor | None:
    """The projection onto noise variances of at least ``floor``, or None (full noise).

    Parameters
    ----------
    model : HMoG variant
        The model (its lower harmonium's observable Normal and interaction).
    floor : float
        Smallest noise variance (``> 0``; 0 or less: no projection).

    Returns
    -------
    NoiseFloor or None
        ``project(params) -> params`` (shape ``(dim,)`` both) for diagonal or isotropic
        noise; None for full noise (no elementwise floor) or ``floor <= 0``.
    """
    if floor <= 0 or not isinstance(model.obs_man.rep, Diagonal | Scale):
        return None
    return NoiseFloor(model, 1.0 / float(floor))
