"""The closed-form EM capability: chunked sufficient-statistic sums, stabilisers, M-step.

A model with closed-form EM (factor analysis and PPCA, complete Gaussian mixtures, the
analytic HMoGs) implements :class:`ClosedFormEM`. The EM drivers of :mod:`hmog_xp.em` and
:mod:`hmog_xp.scale` (in memory, chunked, on Dask arrays, online) only talk to this
interface, so one engine serves every such model.

Per EM step the data are visited once. Each row chunk contributes the model's *chunk sums*
(:meth:`ClosedFormEM.em_chunk_sums`: GEMM-shaped products of the chunk with posterior
quantities, plus ``Σ ψ(posterior(x))``); the sums of any partition of the rows add up to the
same totals, which :meth:`ClosedFormEM.em_assemble` turns into the mean posterior
statistics and the log-likelihood of the current parameters. ``mean s_x(x)`` never changes
during a fit and is computed once (:meth:`ClosedFormEM.em_observable_statistics`). The
M-step is :meth:`ClosedFormEM.em_m_step`: stabilisers (:class:`Regularization`), then the
model's canonical frame (whitening of the latent prior, where there is one), then
``to_natural``.
"""

from __future__ import annotations

from typing import NamedTuple

from hmog_xp._errors import ValidationError

__all__ = ["Regularization"]


class Regularization(NamedTuple):
    """Stabilisers of the closed-form M-step (all zero: exact EM).

    Attributes
    ----------
    reg_covar : float
        Added to the diagonal of every latent component covariance.
    min_variance : float
        Added to every observable noise variance.
    min_weight : float
        Pseudo-weight of the pooled latent moments mixed into every component.
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
