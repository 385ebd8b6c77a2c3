"""Complete Gaussian mixtures: exact ``to_natural`` and closed-form EM."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.harmoniums.mixture import Mixture


@dataclass(frozen=True, repr=False)
class AnalyticMixture(Mixture):  # numpydoc ignore=PR02
    """Complete mixture of ``Normal(d, rep)`` components (each component free).

    Parameters
    ----------
    component_man : Normal
        The component family ``Normal(d, rep)``.
    n_components : int
        Number of components ``K >= 1``.
    """

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.varying_rep != self.component_man.rep:
            msg = (
                f"AnalyticMixture is a complete mixture: sub_rep must be None or "
                f"{self.component_man.rep!r}; got {self.sub_rep!r}"
            )
            raise ValidationError(msg)

    def to_natural(self, means: Any) -> Any:
        """Natural parameters from mean coordinates, component by component.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mixture mean coordinates.

        Returns
        -------
        array, shape (..., dim)
            Natural parameters; exact inverse of :meth:`to_mean`.
        """
        components, weights = self.split_mean_mixture(means)
        natural = self.component_man.to_natural(components)
        return self.join_natural_mixture(natural, self.pst_man.from_probs(weights))

    def negative_entropy(self, means: Any) -> Any:
        """Return ``φ(η) = θ·η − ψ(θ)`` with ``θ = to_natural(η)``.

        Parameters
        ----------
        means : array, shape (..., dim)
            Mixture mean coordinates.

        Returns
        -------
        array, shape (...)
            Negative entropy of the joint ``(y, z)`` relative to the base measure.
        """
        params = self.to_natural(means)
        xp = B.array_namespace(means)
        return xp.sum(params * means, axis=-1) - self.log_partition_function(params)

    def expectation_maximization(self, params: Any, xs: Any) -> Any:
        """One EM step: responsibilities, then the closed-form M-step.

        Parameters
        ----------
        params : array, shape (dim,)
            Current natural parameters.
        xs : array, shape (N, d)
            Observations.

        Returns
        -------
        array, shape (dim,)
            Updated natural parameters (the log-likelihood never decreases).
        """
        return self.to_natural(self.mean_posterior_statistics(params, xs))
