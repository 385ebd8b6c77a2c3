"""One fit's EM step functions: E-step, M-step and the whole step, bound to its data.

:func:`hmog_xp.fit_em` iterates them (plain or with SQUAREM). :class:`FitSteps` runs the
engine's compiled functions; :class:`LogPartitionCarryingSteps`, for models whose M-step
gets the log-partition function ``ψ`` of its result for less than an E-step spends on it,
hands each M-step's ``ψ`` to the E-step on exactly the parameters it made.
"""

from __future__ import annotations

from typing import Any

from hmog_xp import _backend as B
from hmog_xp._em_engine import (
    compiled_expectation,
    compiled_log_partition,
    compiled_m_step,
    compiled_m_step_and_log_partition,
    compiled_step,
    compiled_step_with_log_partition,
)
from hmog_xp.harmoniums.closed_form import ClosedFormEM
from hmog_xp.harmoniums.stabilizers import Regularization

__all__ = ["FitSteps", "LogPartitionCarryingSteps", "fit_steps"]


class FitSteps:
    """The compiled E-step, M-step and EM step of one fit.

    Parameters
    ----------
    model : ClosedFormEM
        The model.
    xs : array, shape (N, p)
        Observations.
    obs_statistics : array, shape (obs_man.dim,)
        Cached ``mean s_x(x)``.
    chunk_size : int
        Rows per chunk.
    regularization : Regularization
        The M-step's stabilisers.
    wide : dtype
        The accumulation dtype (E-step results and the M-step).
    """

    def __init__(
        self,
        model: ClosedFormEM,
        xs: Any,
        obs_statistics: Any,
        chunk_size: int,
        regularization: Regularization,
        wide: Any,
    ) -> None:
        self.model = model
        self.xs = xs
        self.obs_statistics = obs_statistics
        self.chunk_size = chunk_size
        self.regularization = regularization
        self.wide = wide

    def expect(self, params: Any) -> tuple[Any, Any]:
        """E-step in the accumulation dtype.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        means : array, shape (dim,)
            Mean posterior statistics.
        log_likelihood : array, shape ()
            Average log-likelihood of ``params``.
        """
        return compiled_expectation(
            self.model, params, self.xs, self.obs_statistics, self.chunk_size, self.wide
        )

    def maximize(self, means: Any) -> Any:
        """M-step with the fit's stabilisers, in the accumulation dtype.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        return compiled_m_step(self.model, means, self.regularization)

    def step(self, params: Any) -> tuple[Any, Any]:
        """E-step and M-step in one compiled function.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        params : array, shape (dim,)
            The updated parameters.
        log_likelihood : array, shape ()
            Average log-likelihood of the input parameters.
        """
        return compiled_step(
            self.model, params, self.xs, self.obs_statistics, self.chunk_size, self.regularization
        )

    def log_likelihood(self, params: Any) -> Any:
        """Average log-likelihood of ``params``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        array, shape ()
            Average log-likelihood.
        """
        return self.expect(params)[1]


class LogPartitionCarryingSteps(FitSteps):
    """:class:`FitSteps` whose E-steps take ``ψ`` from the M-step that made their parameters.

    Only for parameters in the accumulation dtype (float64 data, or backends without
    float64), where the M-step's result is the next E-step's input unchanged. Parameters of
    any other origin (the start, a SQUAREM extrapolation) get ``ψ`` computed on its own.

    Parameters
    ----------
    model : ClosedFormEM
        The model (:attr:`~hmog_xp.harmoniums.ClosedFormEM.mstep_gives_log_partition`).
    xs : array, shape (N, p)
        Observations.
    obs_statistics : array, shape (obs_man.dim,)
        Cached ``mean s_x(x)``.
    chunk_size : int
        Rows per chunk.
    regularization : Regularization
        The M-step's stabilisers.
    wide : dtype
        The accumulation dtype, the parameters' own.
    """

    def __init__(
        self,
        model: ClosedFormEM,
        xs: Any,
        obs_statistics: Any,
        chunk_size: int,
        regularization: Regularization,
        wide: Any,
    ) -> None:
        super().__init__(model, xs, obs_statistics, chunk_size, regularization, wide)
        self._made: Any = None
        self._made_log_partition: Any = None

    def _keep(self, params: Any, log_partition: Any) -> Any:
        self._made, self._made_log_partition = params, log_partition
        return params

    def log_partition_of(self, params: Any) -> Any:
        """``ψ(params)``: the M-step's where it made exactly this array, else computed.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        array, shape ()
            The log-partition function.
        """
        if params is self._made:
            return self._made_log_partition
        return compiled_log_partition(self.model, params)

    def expect(self, params: Any) -> tuple[Any, Any]:
        """E-step in the accumulation dtype.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        means : array, shape (dim,)
            Mean posterior statistics.
        log_likelihood : array, shape ()
            Average log-likelihood of ``params``.
        """
        return compiled_expectation(
            self.model,
            params,
            self.xs,
            self.obs_statistics,
            self.chunk_size,
            self.wide,
            self.log_partition_of(params),
        )

    def maximize(self, means: Any) -> Any:
        """M-step with the fit's stabilisers; its ``ψ`` is kept for the next E-step.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        return self._keep(
            *compiled_m_step_and_log_partition(self.model, means, self.regularization)
        )

    def step(self, params: Any) -> tuple[Any, Any]:
        """E-step and M-step in one compiled function.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        params : array, shape (dim,)
            The updated parameters.
        log_likelihood : array, shape ()
            Average log-likelihood of the input parameters.
        """
        new_params, log_partition, log_likelihood = compiled_step_with_log_partition(
            self.model,
            params,
            self.log_partition_of(params),
            self.xs,
            self.obs_statistics,
            self.chunk_size,
            self.regularization,
        )
        return self._keep(new_params, log_partition), log_likelihood


def fit_steps(
    model: ClosedFormEM,
    params: Any,
    xs: Any,
    obs_statistics: Any,
    chunk_size: int,
    regularization: Regularization,
) -> FitSteps:
    """The step functions for a fit from ``params``: carrying ``ψ`` where that saves work.

    Parameters
    ----------
    model : ClosedFormEM
        The model.
    params : array, shape (dim,)
        Starting natural parameters (their dtype is the fit's).
    xs : array, shape (N, p)
        Observations.
    obs_statistics : array, shape (obs_man.dim,)
        Cached ``mean s_x(x)``.
    chunk_size : int
        Rows per chunk.
    regularization : Regularization
        The M-step's stabilisers.

    Returns
    -------
    FitSteps
        :class:`LogPartitionCarryingSteps` where the model's M-step gives ``ψ`` and the
        parameters are in the accumulation dtype, else :class:`FitSteps`.
    """
    xp = B.array_namespace(params, xs)
    wide = B.accumulation_dtype(xp, params.dtype)
    kind: type[FitSteps] = FitSteps
    if model.mstep_gives_log_partition and wide == params.dtype:
        kind = LogPartitionCarryingSteps
    return kind(model, xs, obs_statistics, chunk_size, regularization, wide)
