"""An HMoG's mean coordinates by part, as the E-step makes them and the M-step takes them.

The mean coordinates of an HMoG with a complete upper mixture are ``(E[s_x(x)], E[x yᵀ],
η_mix)``, and ``η_mix`` stores the pooled latent moments, the weighted moments of the
components after the first and their weights (:meth:`~hmog_xp.harmoniums.Mixture.
join_weighted_mean_mixture`). The E-step's sums are the weighted moments of *every*
component and the weights, and the M-step starts from exactly those, so within one EM step
they travel as :class:`MeanParts` and are never packed and unpacked
(:meth:`~hmog_xp.harmoniums.closed_form.ChunkedEStep.estep_parts`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

if TYPE_CHECKING:
    from hmog_xp.harmoniums import Mixture

__all__ = ["MeanParts", "join_mean_parts", "split_mean_parts"]


class MeanParts(NamedTuple):
    """Mean coordinates of an HMoG with a complete upper mixture, by part.

    Attributes
    ----------
    obs_means : array, shape (obs_man.dim,)
        ``E[s_x(x)]``.
    cross : array, shape (p, d)
        ``E[x yᵀ]``.
    weighted : array, shape (K, Normal(d).dim)
        ``π_k η_k``, the weighted latent moments of every component.
    weights : array, shape (K,)
        ``π_k``.
    """

    obs_means: Any
    cross: Any
    weighted: Any
    weights: Any


class _MixtureCoords(Protocol):
    """What splitting and joining the parts needs of a model (the HMoG variants have it)."""

    @property
    def posterior_upper(self) -> Mixture: ...

    def split_coords(self, params: Any) -> tuple[Any, Any, Any]: ...

    def join_coords(self, obs: Any, interaction: Any, lat: Any) -> Any: ...


def split_mean_parts(model: _MixtureCoords, means: Any) -> MeanParts:
    """The parts of mean coordinates (the inverse of :func:`join_mean_parts`).

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        A model with a complete upper mixture.
    means : array, shape (dim,)
        Mean coordinates.

    Returns
    -------
    MeanParts
        Their parts.
    """
    obs_means, cross, upper_means = model.split_coords(means)
    weighted, weights = model.posterior_upper.split_weighted_mean_mixture(upper_means)
    return MeanParts(obs_means, cross, weighted, weights)


def join_mean_parts(model: _MixtureCoords, parts: MeanParts) -> Any:
    """Mean coordinates from their parts.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    parts : MeanParts
        The parts.

    Returns
    -------
    array, shape (dim,)
        Mean coordinates.
    """
    upper = model.posterior_upper.join_weighted_mean_mixture(parts.weighted, parts.weights)
    return model.join_coords(parts.obs_means, parts.cross, upper)
