"""Complete Gaussian mixtures: exact ``to_natural`` and closed-form EM."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.harmoniums.closed_form import ClosedFormEM, harmonium_log_likelihood
from hmog_xp.harmoniums.mixture import Mixture
from hmog_xp.harmoniums.stabilizers import (
    Regularization,
    add_pseudo_weight,
    floor_covariances,
)


@dataclass(frozen=True, repr=False)
class AnalyticMixture(Mixture, ClosedFormEM):  # numpydoc ignore=PR02
    """Complete mixture of ``Normal(d, rep)`` components (each component free).

    Its EM runs through the shared engine (:class:`~hmog_xp.harmoniums.closed_form.ClosedFormEM`):
    a chunk with statistics ``S`` (one row ``s(x)`` per observation) and responsibilities
    ``R`` contributes ``Sᵀ R`` (one GEMM, after the GEMM ``S W`` for the logits).

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

    # -- the closed-form EM capability --------------------------------------------------------

    def estep_sums(self, params: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        """Return ``sums(chunk, weights) -> (Sᵀ R₁, Σ R₁, Σ log Σ_k exp(logit_k))``.

        ``R₁`` are the responsibilities of components ``1 … K−1`` (component 0 is the
        reference of the categorical coordinates).

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        callable
            The weighted chunk sums (see :class:`~hmog_xp.harmoniums.closed_form.ChunkedEStep`).
        """
        xp = B.array_namespace(params)
        _, interaction, lat = self.split_coords(params)

        def _sums(chunk: Any, weights: Any) -> tuple[Any, ...]:
            statistics = self._obs_interaction_statistic(chunk)  # (m, obs_man.dim)
            logits = lat + statistics @ interaction  # (m, K − 1)
            zero = xp.zeros((chunk.shape[0], 1), dtype=logits.dtype, device=B.device_of(chunk))
            full = xp.concat([zero, logits], axis=-1)
            log_normalizers = B.logsumexp(full, axis=-1, keepdims=True, xp=xp)
            probs = xp.exp(full[:, 1:] - log_normalizers) * weights[:, None]
            return (
                xp.matrix_transpose(statistics) @ probs,
                xp.sum(probs, axis=0),
                weights @ log_normalizers[:, 0],
            )

        return _sums

    def estep_assemble(
        self,
        params: Any,
        obs_statistics: Any,
        sums: tuple[Any, ...],
        n_obs: int,
        log_partition: Any = None,
    ) -> tuple[Any, Any]:
        """Mean coordinates ``(mean s(x), mean s(x) r₁ᵀ, mean r₁)`` and the log-likelihood.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters the sums were computed with.
        obs_statistics : array, shape (obs_man.dim,)
            ``mean_n s(x_n)``.
        sums : tuple of arrays
            Totals of :meth:`estep_sums` over the rows.
        n_obs : int
            Number of rows.
        log_partition : array, shape (), optional
            ``ψ(params)`` where already known; None: computed here.

        Returns
        -------
        means : array, shape (dim,)
            Mean posterior statistics.
        log_likelihood : array, shape ()
            Average log-likelihood of ``params``.
        """
        cross, counts, partition = sums
        means = self.join_coords(obs_statistics, cross / n_obs, counts / n_obs)
        return means, harmonium_log_likelihood(
            self, params, obs_statistics, partition, n_obs, log_partition
        )

    def estep_row_bytes(self) -> int:
        """Working bytes per row: ``8 (2 dim(s) + 3K)``.

        Returns
        -------
        int
            Bytes.
        """
        return 8 * (2 * self.obs_man.dim + 3 * self.n_components)

    def mstep_regularize(self, means: Any, regularization: Regularization) -> Any:
        """Pseudo-weight ``min_weight``, then a floor on every covariance's eigenvalues.

        ``π_k ← (π_k + ε) / (1 + Kε)`` and ``π_k η_k ← (π_k η_k + ε η_total) / (1 + Kε)``
        (an emptied component falls back to the pooled moments); then the eigenvalues of
        every component covariance below ``max(reg_covar, min_variance)`` are lifted to it
        (a mixture's noise *is* its component covariance, so the two floors act on the same
        thing; :func:`~hmog_xp.harmoniums.stabilizers.floor_covariances`). Unlike
        scikit-learn's ``reg_covar``, which is added at every step, a covariance that
        clears the floor is left as it is.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.
        regularization : Regularization
            The stabilisers.

        Returns
        -------
        array, shape (dim,)
            Regularised mean coordinates.
        """
        if regularization.is_exact:
            return means
        weighted, weights = self.split_weighted_mean_mixture(means)
        components, weights = add_pseudo_weight(weighted, weights, regularization.min_weight)
        floor = max(regularization.reg_covar, regularization.min_variance)
        if floor > 0.0:
            components = floor_covariances(self.component_man, components, floor)
        return self.join_mean_mixture(components, weights)
