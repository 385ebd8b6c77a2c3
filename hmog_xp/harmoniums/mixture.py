"""Gaussian mixtures as harmoniums of a ``Normal(d, rep)`` and a ``Categorical(K)``.

Statistics ``(s_y(y), s_sub(y) ⊗ e_z, e_z)``, natural parameters ``(θ_y, Θ, θ_z)`` with ``Θ``
of shape ``(sub_dim, K−1)``: component ``k`` has natural parameters
``θ_y + embed(Θ[:, k−1])`` (``θ_y`` for ``k = 0``), where ``s_sub`` is the statistic of
``Normal(d, sub_rep)``, the part of the Normal that varies across components. A full
``sub_rep`` (the default) gives a complete mixture; ``Diagonal``/``Scale`` sub-reps give
components that share the rest of the precision.

* conjugation: ``χ = ψ_y(θ_0)``, ``ρ_k = ψ_y(θ_k) − ψ_y(θ_0)``;
* weights ``π = softmax(θ_z + ρ)`` (with ``θ_{z,0} = 0``);
* mean coordinates ``(Σ_k π_k E_k[s_y], (π_k E_k[s_sub])_{k≥1}, (π_k)_{k≥1})``.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType
from typing import Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_finite
from hmog_xp.harmoniums._mixture_init import random_params, sample_params
from hmog_xp.harmoniums._mixture_structure import MixtureStructure


class MixtureParameters(NamedTuple):
    """Readable Gaussian-mixture parameters.

    Attributes
    ----------
    weights : array, shape (K,)
        Component probabilities.
    means : array, shape (K, d)
        Component means.
    covariances : array, shape (K, d, d)
        Dense component covariances.
    """

    weights: Any
    means: Any
    covariances: Any


@dataclass(frozen=True, repr=False)
class Mixture(MixtureStructure):  # numpydoc ignore=PR02
    """Mixture of ``n_components`` Normals that differ in their ``sub_rep`` part.

    Parameters
    ----------
    component_man : Normal
        The component family ``Normal(d, rep)`` (also the harmonium's ``obs_man``).
    n_components : int
        Number of components ``K >= 1``.
    sub_rep : CovarianceRep, optional
        What varies across components (default: ``obs_man.rep``, a complete mixture).
    """

    # -- starting points ----------------------------------------------------------------------

    def initialize(
        self,
        rng: Any,
        location: float = 0.0,
        shape: float = 1.0,
        *,
        xp: ModuleType | None = None,
        dtype: Any = None,
    ) -> Any:
        """Random parameters: equal weights, identity covariances, random means.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness; picks the namespace when ``xp`` is None.
        location : float, optional
            Centre of the random means.
        shape : float, optional
            Spread of the random means.
        xp : module, optional
            Namespace.
        dtype : dtype, optional
            Floating dtype.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        return random_params(self, rng, location, shape, xp, dtype)

    def initialize_from_sample(self, rng: Any, xs: Any, min_var: float = 1e-6) -> Any:
        """Build parameters from data: means at distinct random points, pooled covariance.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness.
        xs : array, shape (N, d)
            Observations, ``N >= n_components``.
        min_var : float, optional
            Floor of the pooled variances.

        Returns
        -------
        array, shape (dim,)
            Natural parameters in ``xs``'s namespace.
        """
        self._check_sample(xs)
        return sample_params(self, rng, xs, min_var)

    # -- user-facing quantities -----------------------------------------------------------

    def posterior_soft_assignments(self, params: Any, xs: Any) -> Any:
        """Posterior component probabilities ``p(z = k | y)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (..., d)
            Observations.

        Returns
        -------
        array, shape (..., K)
            Probabilities summing to one along the last axis.
        """
        return self.pst_man.to_probs(self.posterior_at(params, xs))

    def to_mean(self, params: Any) -> Any:
        """Mean coordinates in closed form from the components and weights.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        array, shape (..., dim)
            Mixture mean coordinates.
        """
        components, weights = self.split_natural_mixture(params)
        return self.join_mean_mixture(
            self.component_man.to_mean(components), self.pst_man.to_probs(weights)
        )

    def to_generative(self, params: Any) -> MixtureParameters:
        """Return ``(weights, means, covariances)`` with dense covariances.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        MixtureParameters
            Weights ``(..., K)``, means ``(..., K, d)``, covariances ``(..., K, d, d)``.
        """
        components, weights = self.split_natural_mixture(params)
        means, covariances = self.component_man.to_moments(components)
        return MixtureParameters(self.pst_man.to_probs(weights), means, covariances)

    def from_generative(self, weights: Any, means: Any, covariances: Any) -> Any:
        """Natural parameters from weights, means and dense covariances.

        Parameters
        ----------
        weights : array, shape (K,)
            Component probabilities (positive, summing to one).
        means : array, shape (K, d)
            Component means.
        covariances : array, shape (K, d, d)
            Covariances of the component rep's structure; for a mixture with a restricted
            ``sub_rep`` the components must share the rest of their precision.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        xp = B.array_namespace(weights, means, covariances)
        k = self.n_components
        if tuple(weights.shape[-1:]) != (k,) or means.ndim < 2 or means.shape[-2] != k:
            msg = (
                f"{self!r} needs weights of shape ({k},) and means of shape ({k}, "
                f"{self.component_man.n}); got {tuple(weights.shape)} and {tuple(means.shape)}"
            )
            raise ValidationError(msg)
        check_finite(weights, "weights", xp=xp)
        components = self.component_man.from_moments(means, covariances)
        return self.join_natural_mixture(components, self.pst_man.from_probs(weights))

    def observable_mean_covariance(self, params: Any) -> tuple[Any, Any]:
        """Mean and dense covariance of the mixture's marginal distribution of ``y``.

        Parameters
        ----------
        params : array, shape (..., dim)
            Natural parameters.

        Returns
        -------
        mean : array, shape (..., d)
            ``Σ_k π_k μ_k``.
        covariance : array, shape (..., d, d)
            ``Σ_k π_k (Σ_k + μ_k μ_kᵀ) − mean meanᵀ``.
        """
        return mixture_moments(*self.to_generative(params))


def mixture_moments(weights: Any, means: Any, covariances: Any) -> tuple[Any, Any]:
    """Mean and covariance of a Gaussian mixture from its readable parameters.

    Parameters
    ----------
    weights : array, shape (..., K)
        Component probabilities.
    means : array, shape (..., K, d)
        Component means.
    covariances : array, shape (..., K, d, d)
        Dense component covariances.

    Returns
    -------
    mean : array, shape (..., d)
        ``Σ_k π_k μ_k``.
    covariance : array, shape (..., d, d)
        ``Σ_k π_k (Σ_k + μ_k μ_kᵀ) − mean meanᵀ``.
    """
    xp = B.array_namespace(weights, means, covariances)
    mean = xp.sum(weights[..., :, None] * means, axis=-2)
    second = xp.sum(
        weights[..., :, None, None] * (covariances + means[..., :, None] * means[..., None, :]),
        axis=-3,
    )
    return mean, second - mean[..., :, None] * mean[..., None, :]
