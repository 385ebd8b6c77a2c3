"""An HMoG fitted to data with missing entries, through the shared EM engine.

:class:`MarginalizedHMoG` wraps an analytic HMoG (diagonal or isotropic noise) and reads NaN
entries as missing at random. It is a :class:`~hmog_xp.harmoniums.closed_form.ClosedFormEM`
whose chunk sums are the expected complete-data statistics of :mod:`._missing` plus
``Σ log p(x_O)``, so :func:`hmog_xp.fit_em` (chunked, compiled on JAX, SQUAREM) runs EM on the
observed entries exactly, and its parameters are those of the wrapped model.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.harmoniums.closed_form import ClosedFormEM, check_closed_form_em
from hmog_xp.harmoniums.stabilizers import Regularization
from hmog_xp.hmog._marginal_inference import MarginalInference
from hmog_xp.hmog._missing import (
    SMALL_DIM,
    assemble_statistics,
    chunk_sums,
    component_terms,
    split_missing,
)
from hmog_xp.hmog._missing_patterns import MissingPatterns, pattern_terms
from hmog_xp.reps import PositiveDefinite

__all__ = ["MarginalizedHMoG"]


@dataclass(frozen=True)
class MarginalizedHMoG(ClosedFormEM, MarginalInference):  # numpydoc ignore=PR02
    """``model`` with NaN entries of the data marginalised exactly (missing at random).

    A :class:`~hmog_xp.ClosedFormEM`: :func:`~hmog_xp.fit_em`, :func:`~hmog_xp.fit_em_dask`
    and :func:`~hmog_xp.fit_online` run EM on the observed entries of each row, and the
    parameters they return are ``model``'s. Its inference methods have ``model``'s names
    and give the exact results for the observed entries (``log_observable_density`` is
    ``log p(x_O)``); data without NaN go to ``model``'s own methods. :meth:`impute` and
    :meth:`impute_sample` fill the holes. :class:`~hmog_xp.HMoG` with
    ``missing='marginalize'`` uses it.

    Parameters
    ----------
    model : AnalyticHMoG
        The model (diagonal or isotropic noise; a complete upper mixture).
    patterns : MissingPatterns, optional
        The distinct missingness patterns of the data EM will run on
        (``MissingPatterns.of(xs, max_patterns)``). When given, each E-step forms and
        factorises the ``d × d`` systems once per pattern, and rows gather their pattern's
        (``O(p d + K d²)`` per row instead of ``O(p d² + K d³)``); every row of the data
        must have one of the patterns (padding rows of weight 0 need not).

    Examples
    --------
    >>> import numpy as np
    >>> import hmog_xp as hx
    >>> model = hx.analytic_hmog(4, hx.Diagonal, 1, 2)
    >>> X = np.random.default_rng(0).normal(size=(50, 4))
    >>> X[::7, 2] = np.nan
    >>> wrapped = hx.MarginalizedHMoG(model)
    >>> params = model.initialize_from_sample(0, np.nan_to_num(X))
    >>> fit = hx.fit_em(wrapped, params, X, max_iter=20)
    >>> bool(np.isfinite(wrapped.log_observable_density(fit.params, X)).all())
    True
    """

    model: Any
    patterns: MissingPatterns | None = None

    def __post_init__(self) -> None:
        check_closed_form_em(self.model)
        if self.model.lower_harmonium.obs_rep == PositiveDefinite():
            msg = (
                "marginalising missing entries needs diagonal or isotropic noise; "
                f"{self.model!r} has full noise"
            )
            raise ValidationError(msg)

    # -- the model's coordinates -------------------------------------------------------------

    @property
    def obs_man(self) -> Any:
        """The wrapped model's observable family."""
        return self.model.obs_man

    @property
    def data_dim(self) -> int:
        """Number of observed variables ``p`` (the wrapped model's)."""
        return int(self.model.data_dim)

    @property
    def n_components(self) -> int:
        """Number of mixture components ``K`` (the wrapped model's)."""
        return int(self.model.n_components)

    @property
    def lat_dim(self) -> int:
        """Latent dimension ``d`` (the wrapped model's)."""
        return int(self.model.lat_dim)

    #: What :meth:`estep_invalid_rows` flags, for error messages.
    invalid_rows_description = "infinite values or rows with no observed entry"

    def estep_invalid_rows(self, xs: Any) -> Any:
        """Flag rows with an infinite entry or no observed entry (NaN is missing).

        Parameters
        ----------
        xs : array, shape (N, p)
            Observations (NaN: missing).

        Returns
        -------
        array of bool, shape (N,)
            The rows the E-step cannot use.
        """
        xp = B.array_namespace(xs)
        empty = xp.all(xp.isnan(xs), axis=1)
        return xp.logical_or(xp.any(xp.isinf(xs), axis=1), empty)

    @property
    def dim(self) -> int:
        """Dimension of the natural parameters (the wrapped model's)."""
        return int(self.model.dim)

    def log_partition_function(self, params: Any) -> Any:
        """Return the wrapped model's ``ψ(θ)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        array, shape ()
            The log-partition function.
        """
        return self.model.log_partition_function(params)

    def _check_params(self, params: Any, name: str = "params") -> ModuleType:
        return self.model._check_params(params, name)

    def _check_sample(self, xs: Any, params: Any = None, *, columns: bool = True) -> ModuleType:
        """Refuse a wrong shape, infinities, empty rows and (``columns``) empty columns."""
        xp = B.array_namespace(xs) if params is None else B.array_namespace(xs, params)
        p = self.model.data_dim
        if xs.ndim != 2 or xs.shape[0] == 0 or xs.shape[1] != p:
            msg = f"xs must have shape (N, {p}) with N >= 1; got {tuple(xs.shape)}"
            raise ValidationError(msg)
        if bool(xp.any(xp.isinf(xs))):
            msg = "xs has infinite entries (only NaN marks a missing entry)"
            raise ValidationError(msg)
        observed = xp.logical_not(xp.isnan(xs))
        empty_rows = xp.logical_not(xp.any(observed, axis=1))
        if bool(xp.any(empty_rows)):
            row = int(xp.argmax(xp.astype(empty_rows, xp.int32)))
            msg = f"row {row} of xs has no observed entry (every entry is NaN)"
            raise ValidationError(msg)
        empty_columns = xp.logical_not(xp.any(observed, axis=0))
        if columns and bool(xp.any(empty_columns)):
            column = int(xp.argmax(xp.astype(empty_columns, xp.int32)))
            msg = f"column {column} of xs has no observed entry (every entry is NaN)"
            raise ValidationError(msg)
        return xp

    # -- the E-step --------------------------------------------------------------------------

    def estep_observable_statistics(self, xs: Any, chunk_size: int) -> Any:
        """Zeros: the observable statistics depend on the parameters and are chunk sums here.

        Parameters
        ----------
        xs : array, shape (N, p)
            Observations (NaN: missing).
        chunk_size : int
            Rows per chunk (unused).

        Returns
        -------
        array, shape (obs_man.dim,)
            Zeros in the accumulation dtype.
        """
        xp = B.array_namespace(xs)
        wide = B.accumulation_dtype(xp, xs.dtype)
        return xp.zeros((self.obs_man.dim,), dtype=wide, device=B.device_of(xs))

    def estep_sums(self, params: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        """Return the chunk sums: expected complete-data statistics and ``Σ log p(x_O)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        callable
            ``sums(chunk, weights)`` (see :func:`hmog_xp.hmog._missing.row_sums`), the last
            entry ``Σ weight · log p(x_O)``.
        """
        model = self.model
        terms = component_terms(model, params)  # row-independent: once, not per chunk
        grouped = None
        if self.patterns is not None and model.lat_dim <= SMALL_DIM:
            grouped = pattern_terms(terms, self.patterns)  # once per pattern, not per row

        def _sums(chunk: Any, weights: Any) -> tuple[Any, ...]:
            filled, observed = split_missing(chunk)
            return chunk_sums(model, params, filled, observed, weights, terms, grouped)

        return _sums

    def estep_assemble(
        self,
        params: Any,
        obs_statistics: Any,
        sums: tuple[Any, ...],
        n_obs: int,
        log_partition: Any = None,
    ) -> tuple[Any, Any]:
        """Expected complete-data statistics and the observed-data log-likelihood.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters the sums were computed with.
        obs_statistics : array, shape (obs_man.dim,)
            Unused (zeros).
        sums : tuple of arrays
            Totals of :meth:`estep_sums`.
        n_obs : int
            Number of rows.
        log_partition : array, shape (), optional
            Unused: the observed-data log-likelihood is summed row by row.

        Returns
        -------
        means : array, shape (dim,)
            Mean coordinates for the M-step.
        log_likelihood : array, shape ()
            Average ``log p(x_O)``.
        """
        return assemble_statistics(self.model, sums, n_obs), sums[-1] / n_obs

    def estep_row_bytes(self) -> int:
        """Working bytes per row: ``8 (2 p d + 3 K d² + 4 p)``.

        Returns
        -------
        int
            Bytes.
        """
        p, d = self.model.int_shape
        return 8 * (2 * p * d + 3 * self.model.n_components * d * d + 4 * p)

    # -- the M-step: the wrapped model's ------------------------------------------------------

    def to_mean(self, params: Any) -> Any:
        """The wrapped model's ``to_mean``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        array, shape (dim,)
            Mean coordinates.
        """
        return self.model.to_mean(params)

    def to_natural(self, means: Any) -> Any:
        """The wrapped model's ``to_natural``.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        return self.model.to_natural(means)

    def mstep_regularize(self, means: Any, regularization: Regularization) -> Any:
        """The wrapped model's stabilisers.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates.
        regularization : Regularization
            The stabilisers.

        Returns
        -------
        array, shape (dim,)
            Regularised mean coordinates.
        """
        return self.model.mstep_regularize(means, regularization)

    def mstep_frame(self, means: Any) -> Any:
        """The wrapped model's canonical frame (whitened latent prior).

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates.

        Returns
        -------
        array, shape (dim,)
            Mean coordinates in that frame.
        """
        return self.model.mstep_frame(means)
