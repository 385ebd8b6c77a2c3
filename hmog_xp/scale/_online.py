"""Online (stochastic-approximation) EM over mini-batches, after Cappé & Moulines (2009).

The state holds a running average ``s`` of mean sufficient statistics. Update ``t`` (counting
from 0) computes the mean posterior statistics ``ŝ`` of a mini-batch under the current
parameters and sets::

    s ← (1 − γ_t) s + γ_t ŝ,        γ_t = min(1, γ₀ (t + t₀)^(−α)),   α ∈ (0.5, 1],

then re-estimates the parameters with the same M-step as :func:`hmog_xp.em.em_step`,
``to_natural(frame(s))`` (``frame`` whitens the latent prior where the model has one). The
defaults ``γ₀ = 1``, ``t₀ = 1``, ``α = 0.6`` give
``γ_0 = 1`` (the first batch initialises ``s``) and ``Σ γ_t = ∞``, ``Σ γ_t² < ∞``: the
iterates converge to a stationary point of the expected log-likelihood; over repeated
passes of a finite data set, to a fixed point of batch EM on that data.

``s`` is kept in the latent frame of the current parameters (whitening re-expresses both),
so statistics from successive batches are averaged in one frame. With explicit stabilisers
(``regularization``) the E-step uses ``to_natural(regularize(s))``, ``s`` in its whitened
frame (batch EM regularises in the frame of the current parameters; the two agree at a fixed
point), and the reported parameters are its whitened form (the same ``p(x)``).
"""

from __future__ import annotations

import math
from typing import Any, NamedTuple

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import validation
from hmog_xp.em import (
    as_regularization,
    check_em_model,
    default_chunk_size,
    expectation,
    m_step,
    observable_statistics,
)

__all__ = [
    "OnlineEMFit",
    "OnlineEMState",
    "StepSize",
    "fit_online",
    "online_em_init",
    "online_em_update",
]


class StepSize(NamedTuple):
    """Decreasing step sizes ``γ_t = min(1, scale · (t + offset)^(−exponent))``.

    Attributes
    ----------
    scale : float
        ``γ₀ > 0``.
    offset : float
        ``t₀ >= 0``; ``t + t₀`` must be positive for ``t = 0``.
    exponent : float
        ``α ∈ (0.5, 1]`` (Robbins–Monro conditions).
    """

    scale: float = 1.0
    offset: float = 1.0
    exponent: float = 0.6

    def check(self) -> StepSize:
        """Validate the schedule and return it with float values.

        Returns
        -------
        StepSize
            The same schedule as Python floats.

        Raises
        ------
        ValidationError
            If ``scale <= 0``, ``offset`` is negative or ``offset = 0`` (``γ_0`` undefined),
            or ``exponent`` is outside ``(0.5, 1]``.
        """
        scale, offset, exponent = (float(value) for value in self)
        if not (math.isfinite(scale) and scale > 0.0):
            msg = f"step size scale must be a finite number > 0; got {self.scale!r}"
            raise ValidationError(msg)
        if not (math.isfinite(offset) and offset > 0.0):
            msg = f"step size offset must be a finite number > 0; got {self.offset!r}"
            raise ValidationError(msg)
        if not 0.5 < exponent <= 1.0:
            msg = f"step size exponent must be in (0.5, 1]; got {self.exponent!r}"
            raise ValidationError(msg)
        return StepSize(scale, offset, exponent)

    def at(self, t: int) -> float:
        """Return the step size of update ``t`` (counting from 0).

        Parameters
        ----------
        t : int
            Number of earlier updates.

        Returns
        -------
        float
            ``γ_t`` in ``(0, 1]``.
        """
        return min(1.0, self.scale * (t + self.offset) ** (-self.exponent))


class OnlineEMState(NamedTuple):
    """State of online EM; :func:`online_em_update` returns a new one.

    Attributes
    ----------
    model : AnalyticHMoG
        The model.
    params : array, shape (dim,)
        Current natural parameters (latent prior whitened).
    statistics : array or None
        Running average of mean statistics ``s`` in the frame of ``estep_params`` (``None``
        before the first update when ``γ_0 = 1``).
    estep_params : array, shape (dim,)
        Parameters the next E-step uses (``params`` itself without regularization).
    n_updates : int
        Number of updates so far (``t``).
    n_seen : int
        Number of observations seen so far.
    log_likelihood : array or None
        Average log-likelihood of the last batch under the parameters before its update.
    step_size : StepSize
        The step-size schedule.
    regularization : Regularization
        Stabilisers of the M-step.
    chunk_size : int or None
        Rows per E-step chunk (``None``: :func:`default_chunk_size` per batch).
    """

    model: Any
    params: Any
    statistics: Any
    estep_params: Any
    n_updates: int
    n_seen: int
    log_likelihood: Any
    step_size: StepSize
    regularization: Any
    chunk_size: int | None


class OnlineEMFit(NamedTuple):
    """Result of :func:`fit_online`.

    Attributes
    ----------
    params : array
        Final natural parameters.
    log_likelihoods : list of float
        Per epoch, the mean over its batches of the batch average log-likelihood (each
        under the parameters before that batch's update).
    n_updates : int
        Number of mini-batch updates.
    state : OnlineEMState
        Final state (continue with :func:`online_em_update`).
    """

    params: Any
    log_likelihoods: list[float]
    n_updates: int
    state: OnlineEMState


def online_em_init(
    model: Any,
    params: Any,
    *,
    step_size: StepSize | tuple[float, float, float] | None = None,
    regularization: Any = None,
    chunk_size: int | None = None,
) -> OnlineEMState:
    """Start online EM from ``params``.

    Parameters
    ----------
    model : ClosedFormEM
        Any model with closed-form EM (see :func:`hmog_xp.fit_em`).
    params : array, shape (dim,)
        Starting natural parameters.
    step_size : StepSize or tuple, optional
        Schedule ``γ_t = min(1, γ₀ (t + t₀)^(−α))`` as ``(γ₀, t₀, α)`` (default
        ``StepSize()``: ``γ₀ = 1, t₀ = 1, α = 0.6``).
        When ``γ_0 < 1`` the running average starts at ``to_mean(params)``.
    regularization : Regularization, optional
        Stabilisers of the M-step (default: exact).
    chunk_size : int, optional
        Rows per E-step chunk within a batch.

    Returns
    -------
    OnlineEMState
        The initial state.
    """
    check_em_model(model).check_estep_inputs(params)
    schedule = StepSize(*(StepSize() if step_size is None else step_size)).check()
    if chunk_size is not None and int(chunk_size) < 1:
        msg = f"chunk_size must be >= 1; got {chunk_size}"
        raise ValidationError(msg)
    statistics, estep_params = None, params
    if schedule.at(0) < 1.0:
        statistics = model.mstep_frame(model.to_mean(params))
        estep_params = model.to_natural(statistics)
    return OnlineEMState(
        model,
        params,
        statistics,
        estep_params,
        0,
        0,
        None,
        schedule,
        as_regularization(regularization),
        None if chunk_size is None else int(chunk_size),
    )


def online_em_update(state: OnlineEMState, batch: Any) -> OnlineEMState:
    """Update the running statistics with one mini-batch and re-estimate the parameters.

    Parameters
    ----------
    state : OnlineEMState
        Current state (from :func:`online_em_init` or an earlier update).
    batch : array, shape (m, p)
        A mini-batch of observations (``m >= 1``), same namespace as the parameters.

    Returns
    -------
    OnlineEMState
        The new state; ``state.log_likelihood`` is the batch's average log-likelihood
        under the parameters before the update.
    """
    model = state.model
    model.check_estep_inputs(xs=batch)
    n_rows = batch.shape[0]
    size = default_chunk_size(model, n_rows) if state.chunk_size is None else state.chunk_size
    gamma = state.step_size.at(state.n_updates)
    with validation(False):
        obs_statistics = observable_statistics(model, batch, size)
        batch_means, log_likelihood = expectation(
            model, state.estep_params, batch, obs_statistics, size
        )
        if state.statistics is None or gamma >= 1.0:
            averaged = batch_means
        else:
            averaged = (1.0 - gamma) * state.statistics + gamma * batch_means
        statistics = model.mstep_frame(averaged)
        if state.regularization.is_exact:
            params = model.to_natural(statistics)
            estep_params = params
        else:
            regularized = model.mstep_regularize(statistics, state.regularization)
            estep_params = model.to_natural(regularized)
            params = m_step(model, regularized)
    return state._replace(
        params=params,
        statistics=statistics,
        estep_params=estep_params,
        n_updates=state.n_updates + 1,
        n_seen=state.n_seen + n_rows,
        log_likelihood=log_likelihood,
    )


def fit_online(
    model: Any,
    params: Any,
    xs: Any,
    *,
    batch_size: int = 1024,
    n_epochs: int = 10,
    rng: Any = 0,
    shuffle: bool = True,
    step_size: StepSize | tuple[float, float, float] | None = None,
    regularization: Any = None,
    chunk_size: int | None = None,
) -> OnlineEMFit:
    """Run online EM over an in-memory array for ``n_epochs`` passes of mini-batches.

    Parameters
    ----------
    model : ClosedFormEM
        Any model with closed-form EM (see :func:`hmog_xp.fit_em`).
    params : array, shape (dim,)
        Starting natural parameters.
    xs : array, shape (N, p)
        Observations.
    batch_size : int, optional
        Rows per mini-batch (the last batch of an epoch may be smaller).
    n_epochs : int, optional
        Number of passes over the data.
    rng : int, generator or None, optional
        Randomness for the per-epoch shuffles (see :func:`hmog_xp.random_source`).
    shuffle : bool, optional
        Shuffle the rows every epoch (default) or visit them in order.
    step_size : StepSize or tuple, optional
        Step-size schedule (default ``StepSize()``; see :class:`StepSize`).
    regularization : Regularization, optional
        Stabilisers of the M-step (default: exact).
    chunk_size : int, optional
        Rows per E-step chunk within a batch.

    Returns
    -------
    OnlineEMFit
        Final parameters, per-epoch batch log-likelihoods, number of updates and the state.
    """
    check_em_model(model).check_estep_inputs(params, xs)
    xp = B.array_namespace(xs)
    if int(batch_size) < 1 or int(n_epochs) < 0:
        msg = f"batch_size must be >= 1 and n_epochs >= 0; got {batch_size}, {n_epochs}"
        raise ValidationError(msg)
    state = online_em_init(
        model, params, step_size=step_size, regularization=regularization, chunk_size=chunk_size
    )
    n_obs = xs.shape[0]
    source = B.random_source(rng, xp, B.device_of(xs))
    history: list[float] = []
    with validation(False):
        for _ in range(int(n_epochs)):
            rows = xp.take(xs, xp.argsort(source.uniform((n_obs,))), axis=0) if shuffle else xs
            values = []
            for start in range(0, n_obs, int(batch_size)):
                stop = min(start + int(batch_size), n_obs)
                state = online_em_update(state, rows[start:stop, ...])
                values.append(state.log_likelihood)
            total = sum(float(value) for value in values)
            history.append(total / len(values))
    return OnlineEMFit(state.params, history, state.n_updates, state)
