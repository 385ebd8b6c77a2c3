"""Stabilisers of closed-form M-steps: floors on variances and eigenvalues, pseudo-weights.

The floors act in mean coordinates, before the M-step, and only where the exact step would
cross them: a variance (or eigenvalue) that clears its floor is left exactly as it is, so
interior fixed points of exact EM stay fixed points (adding a constant at every step, as
scikit-learn's ``reg_covar`` does, moves optima near Heywood cases by much more than the
constant). Shared by factor analysis, Gaussian mixtures and the analytic HMoGs.
"""

from __future__ import annotations

from types import ModuleType
from typing import Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.families import Normal
from hmog_xp.reps import CovarianceRep, PositiveDefinite

__all__ = [
    "Regularization",
    "add_pseudo_weight",
    "eigenvalue_floor_shift",
    "floor_covariances",
    "floor_noise_variances",
    "noise_floor_lift",
]


class Regularization(NamedTuple):
    """Stabilisers of the closed-form M-step (all zero: exact EM).

    Attributes
    ----------
    reg_covar : float
        Floor on the eigenvalues of every latent component covariance (of every component
        covariance, for a Gaussian mixture).
    min_variance : float
        Floor on every noise variance the M-step produces (a Gaussian mixture's noise is its
        component covariance: the floor is then ``max(reg_covar, min_variance)``).
    min_weight : float
        Pseudo-weight of the pooled latent moments mixed into every component.

    Each floor acts only where the exact M-step would go below it, so a fixed point of exact
    EM whose variances clear the floors is a fixed point of the stabilised EM too.
    """

    reg_covar: float = 0.0
    min_variance: float = 0.0
    min_weight: float = 0.0

    def check(self) -> Regularization:
        """Validate the values (finite, non-negative) and return them as floats.

        Returns
        -------
        Regularization
            The same values as Python floats.

        Raises
        ------
        ValidationError
            If a value is negative or not finite.
        """
        values = []
        for name, value in zip(self._fields, self, strict=True):
            number = float(value)
            if not 0.0 <= number < float("inf"):
                msg = f"{name} must be a finite number >= 0; got {value!r}"
                raise ValidationError(msg)
            values.append(number)
        return Regularization(*values)

    @property
    def is_exact(self) -> bool:
        """Whether every stabiliser is zero (the M-step is exact)."""
        return not any(self)


def eigenvalue_floor_shift(matrices: Any, floor: float, *, xp: ModuleType) -> Any:
    """Return the symmetric matrix that lifts every eigenvalue below ``floor`` to ``floor``.

    ``V diag(max(0, floor − λ)) Vᵀ`` for ``M = V diag(λ) Vᵀ``: adding it to ``M`` gives
    ``V diag(max(λ, floor)) Vᵀ``; it is exactly zero when every eigenvalue clears the floor.

    Parameters
    ----------
    matrices : array, shape (..., n, n)
        Symmetric matrices.
    floor : float
        Lowest eigenvalue allowed.
    xp : module
        Namespace.

    Returns
    -------
    array, shape (..., n, n)
        The shift.
    """
    eigenvalues, vectors = xp.linalg.eigh(matrices)
    lift = xp.maximum(floor - eigenvalues, xp.zeros_like(eigenvalues))
    return (vectors * lift[..., None, :]) @ xp.matrix_transpose(vectors)


def floor_covariances(family: Normal, means: Any, floor: float) -> Any:
    """Lift the eigenvalues of Normal covariances (in mean coordinates) to at least ``floor``.

    Parameters
    ----------
    family : Normal
        The family (any rep: a diagonal or isotropic covariance floors its variances).
    means : array, shape (..., family.dim)
        Mean coordinates.
    floor : float
        Lowest eigenvalue allowed.

    Returns
    -------
    array, shape (..., family.dim)
        Mean coordinates with the same means and floored covariances (``means`` itself
        where the host can tell that no eigenvalue is below the floor:
        :func:`~hmog_xp._backend.eigenvalues_known_above`).
    """
    xp = B.array_namespace(means)
    rep, n = family.rep, family.n
    mean, covariance = family.split_mean_covariance(means)
    dense = rep.unpack(covariance, n)
    if B.eigenvalues_known_above(dense, floor, xp=xp):  # nothing to lift
        return means
    lifted = dense + eigenvalue_floor_shift(dense, floor, xp=xp)
    return family.join_mean_covariance(mean, rep.pack(lifted))


def floor_noise_variances(
    observable: Normal, obs_means: Any, cross: Any, latent: Any, floor: float
) -> Any:
    """Raise ``Cov[x]`` where the M-step's noise ``Cov[x] − C S⁻¹ Cᵀ`` would fall below ``floor``.

    With ``C = Cov[x, y]`` and ``S = Cov[y]`` from the same mean coordinates, wherever a
    noise variance ``Ψ_j`` falls below the floor ``max(0, floor − Ψ_j)`` is added to
    ``Cov[x]_jj``: ``Ψ_j`` ends at exactly ``floor`` and nothing else changes (the loadings
    ``C S⁻¹`` do not depend on ``Cov[x]``). ``Scale`` noise floors its one variance,
    ``PositiveDefinite`` noise the eigenvalues of ``Ψ``.

    Parameters
    ----------
    observable : Normal
        The observable family (its rep is the noise structure).
    obs_means : array, shape (observable.dim,)
        Mean coordinates of ``x``.
    cross : array, shape (p, d)
        ``E[x yᵀ]``.
    latent : array, shape (Normal(d).dim,)
        Mean coordinates of the latent marginal (full covariance).
    floor : float
        Lowest noise variance allowed.

    Returns
    -------
    array, shape (observable.dim,)
        Mean coordinates of ``x`` with the floored covariance.
    """
    xp = B.array_namespace(obs_means, cross, latent)
    rep, p, d = observable.rep, observable.n, cross.shape[-1]
    obs_mean, obs_covariance = observable.split_mean_covariance(obs_means)
    lat_family = Normal(d, PositiveDefinite())
    lat_mean, lat_covariance = lat_family.split_mean_covariance(latent)
    lat_dense = lat_family.rep.unpack(lat_covariance, d)
    centred = cross - obs_mean[..., :, None] * lat_mean[..., None, :]
    # C S⁻¹ Cᵀ = (L⁻¹Cᵀ)ᵀ(L⁻¹Cᵀ) with S = L Lᵀ.
    factor = B.cholesky(lat_dense, xp=xp)
    white = xp.matrix_transpose(B.solve_triangular(factor, xp.matrix_transpose(centred), xp=xp))
    eye = xp.eye(d, dtype=obs_means.dtype, device=B.device_of(obs_means))
    explained = rep.statistic_to_packed(rep.congruence_statistic(white, eye), p)
    lift = noise_floor_lift(rep, obs_covariance - explained, p, floor, xp=xp)
    return observable.join_mean_covariance(obs_mean, obs_covariance + lift)


def noise_floor_lift(
    rep: CovarianceRep, noise: Any, n: int, floor: float, *, xp: ModuleType
) -> Any:
    """What to add to a noise covariance so that it clears ``floor`` (zero where it does).

    ``max(0, floor − Ψ_j)`` on the diagonal for diagonal and isotropic noise; the
    :func:`eigenvalue_floor_shift` of ``Ψ`` for full noise.

    Parameters
    ----------
    rep : CovarianceRep
        The noise structure.
    noise : array, shape (..., rep.size(n))
        ``Ψ`` in the rep's plain storage.
    n : int
        Matrix dimension.
    floor : float
        Lowest noise variance allowed.
    xp : module
        Namespace.

    Returns
    -------
    array, shape (..., rep.size(n))
        The lift, in the same storage.
    """
    if rep == PositiveDefinite():
        dense = rep.unpack(noise, n)
        if B.eigenvalues_known_above(dense, floor, xp=xp):
            return xp.zeros_like(noise)
        return rep.pack(eigenvalue_floor_shift(dense, floor, xp=xp))
    variances = rep.diagonal(noise, n)
    shift = xp.maximum(floor - variances, xp.zeros_like(variances))
    return rep.add_diagonal(xp.zeros_like(noise), shift, n)


def add_pseudo_weight(weighted: Any, weights: Any, pseudo: float) -> tuple[Any, Any]:
    """Mix a pseudo-weight of the pooled moments into every mixture component.

    ``π_k ← (π_k + ε) / (1 + Kε)`` and ``π_k η_k ← (π_k η_k + ε η_total) / (1 + Kε)``: an
    emptied component falls back to the pooled moments ``η_total = Σ_k π_k η_k`` (unchanged).

    Parameters
    ----------
    weighted : array, shape (..., K, dim)
        ``π_k η_k``.
    weights : array, shape (..., K)
        ``π_k``.
    pseudo : float
        ``ε``.

    Returns
    -------
    components : array, shape (..., K, dim)
        The new component mean coordinates ``η_k``.
    weights : array, shape (..., K)
        The new weights.
    """
    xp = B.array_namespace(weighted, weights)
    total = xp.sum(weighted, axis=-2, keepdims=True)
    scale = 1.0 + weights.shape[-1] * pseudo
    new_weights = (weights + pseudo) / scale
    return (weighted + pseudo * total) / scale / new_weights[..., :, None], new_weights
