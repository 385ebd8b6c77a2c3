"""One fit's EM step functions: E-step, M-step and the whole step, bound to its data.

:func:`hmog_xp.fit_em` iterates them (plain or with SQUAREM). For models whose M-step gets
the log-partition function ``ψ`` of its result for less than an E-step spends on it, each
M-step's ``ψ`` goes to the E-step on exactly the parameters it made.
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

__all__ = ["FitSteps", "fit_steps"]


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
    carry : bool, optional
        Hand each M-step's ``ψ`` to the E-step on its result (default False). Only for
        parameters in the accumulation dtype, where the M-step's result is the next E-step's
        input unchanged; parameters of any other origin (the start, a SQUAREM extrapolation)
        get ``ψ`` computed on its own.
    by_parts : bool, optional
        Hand the E-step's statistics to an M-step of exactly its means by part
        (:meth:`~hmog_xp.harmoniums.closed_form.ChunkedEStep.estep_parts`), so that M-step
        does not unpack them again (default False; for backends that run each array
        operation, where that saves time: not JAX).
    """

    def __init__(
        self,
        model: ClosedFormEM,
        xs: Any,
        obs_statistics: Any,
        chunk_size: int,
        regularization: Regularization,
        wide: Any,
        carry: bool = False,
        by_parts: bool = False,
    ) -> None:
        self.model = model
        self.xs = xs
        self.obs_statistics = obs_statistics
        self.chunk_size = chunk_size
        self.regularization = regularization
        self.wide = wide
        self.carry = carry
        self.by_parts = by_parts
        self._made: Any = None
        self._made_log_partition: Any = None
        self._parts: list[tuple[Any, Any]] = []  # (means, their parts), the latest E-steps'

    def _keep(self, params: Any, log_partition: Any) -> Any:
        self._made, self._made_log_partition = params, log_partition
        return params

    def log_partition_of(self, params: Any) -> Any:
        """``ψ(params)`` where this fit hands it on, else None (the E-step computes it).

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        array, shape (), or None
            The M-step's ``ψ`` where it made exactly this array, else computed; None
            without ``carry``.
        """
        if not self.carry:
            return None
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
        known = self.log_partition_of(params)
        if self.by_parts:
            parts, log_likelihood = self.model.estep_parts(
                params, self.xs, self.obs_statistics, self.chunk_size, known
            )
            means = self.model.estep_join_parts(parts)
            # SQUAREM maximises the means of one of its last two E-steps (or an extrapolation)
            self._parts = [(means, parts), *self._parts[:1]]
            return means, log_likelihood
        arguments = (self.model, params, self.xs, self.obs_statistics, self.chunk_size)
        if known is None:
            return compiled_expectation(*arguments, self.wide)
        return compiled_expectation(*arguments, self.wide, known)

    def maximize(self, means: Any) -> Any:
        """M-step with the fit's stabilisers, in the accumulation dtype.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.

        Returns
        -------
        array, shape (dim,)
            Natural parameters (with ``carry``, their ``ψ`` is kept for the next E-step).
        """
        parts = next((part for made, part in self._parts if made is means), None)
        if parts is not None:  # the E-step's own means: its parts
            if not self.carry:
                return self.model.mstep_parts(parts, self.regularization)
            return self._keep(*self.model.mstep_parts_and_log_partition(parts, self.regularization))
        if not self.carry:
            return compiled_m_step(self.model, means, self.regularization)
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
        data = (self.xs, self.obs_statistics, self.chunk_size, self.regularization)
        if not self.carry:
            return compiled_step(self.model, params, *data)
        new_params, log_partition, log_likelihood = compiled_step_with_log_partition(
            self.model, params, self.log_partition_of(params), *data
        )
        return self._keep(new_params, log_partition), log_likelihood

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
        Carrying ``ψ`` where the model's M-step gives it and the parameters are in the
        accumulation dtype, and the E-step's parts wherever the backend does not compile.
    """
    xp = B.array_namespace(params, xs)
    wide = B.accumulation_dtype(xp, params.dtype)
    carry = model.mstep_gives_log_partition and wide == params.dtype
    by_parts = not B.compiles(xp)
    return FitSteps(model, xs, obs_statistics, chunk_size, regularization, wide, carry, by_parts)
