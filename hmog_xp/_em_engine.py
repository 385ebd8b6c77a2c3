"""The EM engine's step functions on any :class:`~hmog_xp.harmoniums.closed_form.ClosedFormEM`.

Re-exported by :mod:`hmog_xp.em` (the public module); the Dask and online drivers of
:mod:`hmog_xp.scale` use them through it.
"""

from __future__ import annotations

from typing import Any

from hmog_xp import _backend as B
from hmog_xp.harmoniums.closed_form import (
    ClosedFormEM,
    NoClosedFormEMError,
    check_closed_form_em,
    compiled_log_partition,
    log_partition,
)
from hmog_xp.harmoniums.stabilizers import Regularization

#: No stabilisers: the exact EM step.
EXACT = Regularization()

#: The dtype E-step sums are accumulated in (float64 for float32 data).
accumulation_dtype = B.accumulation_dtype

__all__ = [
    "EXACT",
    "NoClosedFormEMError",
    "accumulation_dtype",
    "as_regularization",
    "check_em_model",
    "compiled_expectation",
    "compiled_log_partition",
    "compiled_m_step",
    "compiled_m_step_and_log_partition",
    "compiled_statistics",
    "compiled_step",
    "compiled_step_with_log_partition",
    "default_chunk_size",
    "em_step",
    "em_step_with_log_partition",
    "expectation",
    "log_partition",
    "m_step",
    "m_step_and_log_partition",
    "observable_statistics",
]


def em_step(
    model: ClosedFormEM,
    params: Any,
    xs: Any,
    obs_statistics: Any,
    chunk_size: int,
    regularization: Regularization = EXACT,
) -> tuple[Any, Any]:
    """One EM step from cached statistics: ``(new params, log-likelihood of params)``.

    The E-step sums, the M-step and the log-likelihood run in the accumulation dtype
    (float64 for float32 data); the new parameters are cast back to ``params``'s dtype.

    Parameters
    ----------
    model : ClosedFormEM
        A model with closed-form EM.
    params : array, shape (dim,)
        Current natural parameters.
    xs : array, shape (N, p)
        Observations.
    obs_statistics : array, shape (obs_man.dim,)
        Cached ``mean s_x(x)``.
    chunk_size : int
        Rows per chunk.
    regularization : Regularization, optional
        Stabilisers applied to the mean statistics before the M-step (default: none, exact).

    Returns
    -------
    params : array, shape (dim,)
        Updated parameters.
    log_likelihood : array, shape ()
        Average log-likelihood of the *input* parameters, in float64 for float32 data (see
        :func:`accumulation_dtype`).
    """
    xp = B.array_namespace(params, xs)
    parts, log_likelihood = model.estep_parts(params, xs, obs_statistics, chunk_size)
    new_params = model.mstep_parts(parts, as_regularization(regularization))
    return B.cast(new_params, params.dtype, xp=xp), log_likelihood


def em_step_with_log_partition(
    model: ClosedFormEM,
    params: Any,
    log_partition: Any,
    xs: Any,
    obs_statistics: Any,
    chunk_size: int,
    regularization: Regularization = EXACT,
) -> tuple[Any, Any, Any]:
    """:func:`em_step` that takes ``ψ(params)`` and gives ``ψ`` of the new parameters.

    For models whose M-step gets ``ψ`` for less than the E-step spends on it
    (:attr:`~hmog_xp.harmoniums.ClosedFormEM.mstep_gives_log_partition`): a loop hands each
    step's ``ψ`` to the next, so no E-step computes it. The values are :func:`em_step`'s.

    Parameters
    ----------
    model : ClosedFormEM
        A model with closed-form EM.
    params : array, shape (dim,)
        Current natural parameters.
    log_partition : array, shape (), or None
        ``ψ(params)`` in the accumulation dtype; None: the E-step computes it.
    xs : array, shape (N, p)
        Observations.
    obs_statistics : array, shape (obs_man.dim,)
        Cached ``mean s_x(x)``.
    chunk_size : int
        Rows per chunk.
    regularization : Regularization, optional
        Stabilisers applied to the mean statistics before the M-step (default: none, exact).

    Returns
    -------
    params : array, shape (dim,)
        Updated parameters.
    log_partition : array, shape (), or None
        ``ψ`` of the updated parameters; None where they were cast to a narrower dtype (the
        M-step's ``ψ`` is not that of the rounded parameters).
    log_likelihood : array, shape ()
        Average log-likelihood of the *input* parameters (see :func:`em_step`).
    """
    xp = B.array_namespace(params, xs)
    wide = accumulation_dtype(xp, params.dtype)
    parts, log_likelihood = model.estep_parts(params, xs, obs_statistics, chunk_size, log_partition)
    new_params, new_log_partition = model.mstep_parts_and_log_partition(
        parts, as_regularization(regularization)
    )
    if wide != params.dtype:
        return xp.astype(new_params, params.dtype), None, log_likelihood
    return new_params, new_log_partition, log_likelihood


def m_step(model: ClosedFormEM, means: Any, regularization: Regularization | None = None) -> Any:
    """Return ``model.mstep(means, regularization)``: the closed-form M-step.

    ``to_natural(mstep_frame(mstep_regularize(means)))``; shared by :func:`em_step` and the
    Dask and online drivers of :mod:`hmog_xp.scale`.

    Parameters
    ----------
    model : ClosedFormEM
        The model.
    means : array, shape (dim,)
        Mean posterior statistics.
    regularization : Regularization, optional
        Stabilisers (default or None: exact).

    Returns
    -------
    array, shape (dim,)
        Natural parameters (in the model's canonical frame: a whitened latent prior).
    """
    return model.mstep(means, as_regularization(regularization))


#: Return the model if it has closed-form EM, else raise a ``NoClosedFormEMError`` naming
#: the models that have it (:func:`~hmog_xp.harmoniums.closed_form.check_closed_form_em`).
check_em_model = check_closed_form_em


def m_step_and_log_partition(
    model: ClosedFormEM, means: Any, regularization: Regularization | None = None
) -> tuple[Any, Any]:
    """Return ``model.mstep_and_log_partition(means, regularization)``: parameters and ``ψ``.

    Parameters
    ----------
    model : ClosedFormEM
        The model.
    means : array, shape (dim,)
        Mean posterior statistics.
    regularization : Regularization, optional
        Stabilisers (default or None: exact).

    Returns
    -------
    params : array, shape (dim,)
        :func:`m_step` of ``means``.
    log_partition : array, shape ()
        ``ψ(params)``.
    """
    return model.mstep_and_log_partition(means, as_regularization(regularization))


def default_chunk_size(model: ClosedFormEM, n_obs: int) -> int:
    """Choose the rows per chunk so that the E-step's working arrays stay near 32 MiB.

    Parameters
    ----------
    model : ClosedFormEM
        The model (any :class:`~hmog_xp.harmoniums.closed_form.ChunkedEStep`).
    n_obs : int
        Number of observations.

    Returns
    -------
    int
        Chunk size in ``[256, n_obs]`` (at least 1).
    """
    return model.estep_chunk_size(n_obs)


def expectation(
    model: ClosedFormEM,
    params: Any,
    xs: Any,
    obs_statistics: Any,
    chunk_size: int,
    dtype: Any = None,
    log_partition: Any = None,
) -> tuple[Any, Any]:
    """One chunked E-step, ``model.estep``: mean posterior statistics and log-likelihood.

    Parameters
    ----------
    model : ClosedFormEM
        The model.
    params : array, shape (dim,)
        Natural parameters.
    xs : array, shape (N, p)
        Observations.
    obs_statistics : array, shape (obs_man.dim,)
        :func:`observable_statistics` of ``xs``.
    chunk_size : int
        Rows per chunk.
    dtype : dtype, optional
        The dtype of the results (default: ``params``'s).
    log_partition : array, shape (), optional
        ``ψ(params)`` where already known (in the accumulation dtype); None: computed.

    Returns
    -------
    means : array, shape (dim,)
        Mean posterior statistics.
    log_likelihood : array, shape ()
        Average log-likelihood of ``params``.
    """
    return model.estep(params, xs, obs_statistics, chunk_size, dtype, log_partition)


def observable_statistics(model: ClosedFormEM, xs: Any, chunk_size: int) -> Any:
    """``mean_n s_x(x_n)``, chunk by chunk, in :func:`accumulation_dtype` of ``xs``.

    Parameters
    ----------
    model : ClosedFormEM
        The model.
    xs : array, shape (N, p)
        Observations.
    chunk_size : int
        Rows per chunk.

    Returns
    -------
    array, shape (obs_man.dim,)
        The average observable sufficient statistic.
    """
    return model.estep_observable_statistics(xs, chunk_size)


def as_regularization(value: Regularization | tuple[float, ...] | None) -> Regularization:
    """Return checked stabilisers (None: exact EM).

    Parameters
    ----------
    value : Regularization, tuple or None
        ``(reg_covar, min_variance, min_weight)``.

    Returns
    -------
    Regularization
        Validated values as floats.
    """
    return EXACT if value is None else Regularization(*value).check()


compiled_step = B.jit(em_step, static_argnums=(0, 4, 5))
compiled_statistics = B.jit(observable_statistics, static_argnums=(0, 2))
compiled_expectation = B.jit(expectation, static_argnums=(0, 4, 5))
compiled_m_step = B.jit(m_step, static_argnums=(0, 2))
compiled_step_with_log_partition = B.jit(em_step_with_log_partition, static_argnums=(0, 5, 6))
compiled_m_step_and_log_partition = B.jit(m_step_and_log_partition, static_argnums=(0, 2))
