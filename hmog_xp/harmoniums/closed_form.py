"""The closed-form EM capability: chunked sufficient-statistic sums, stabilisers, M-step.

A model with closed-form EM (factor analysis and PPCA, complete Gaussian mixtures, the
analytic HMoGs) implements :class:`ClosedFormEM`. The EM drivers of :mod:`hmog_xp.em` and
:mod:`hmog_xp.scale` (in memory, chunked, on Dask arrays, online) only talk to this
interface, so one engine serves every such model.

Per EM step the data are visited once. Each row chunk contributes the model's *chunk sums*
(:meth:`ChunkedEStep.estep_sums`: GEMM-shaped products of the chunk with posterior
quantities, plus ``Σ ψ(posterior(x))``); the sums of any partition of the rows add up to the
same totals, which :meth:`ChunkedEStep.estep_assemble` turns into the mean posterior
statistics and the log-likelihood of the current parameters. ``mean s_x(x)`` never changes
during a fit and is computed once (:meth:`ChunkedEStep.estep_observable_statistics`). The
M-step is :meth:`ClosedFormEM.mstep`: stabilisers (:class:`Regularization`), then the
model's canonical frame (whitening of the latent prior, where there is one), then
``to_natural``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._backend.chunks import sum_over_chunks
from hmog_xp._errors import ValidationError
from hmog_xp.harmoniums.stabilizers import Regularization

__all__ = [
    "EM_MODELS",
    "ChunkedEStep",
    "ClosedFormEM",
    "NoClosedFormEMError",
    "Regularization",
    "check_closed_form_em",
    "harmonium_log_likelihood",
    "widened",
]


#: Target size of the per-chunk working arrays of an E-step.
CHUNK_BYTES = 32 * 2**20


class NoClosedFormEMError(ValidationError, TypeError):
    """EM was asked of a model that has no closed-form EM step.

    A :class:`TypeError` (the model is of the wrong kind) and a
    :class:`~hmog_xp.ValidationError`.
    """


#: What to tell a user who asks EM of a model without it.
EM_MODELS = (
    "closed-form EM exists for AnalyticLinearGaussianModel (factor_analysis, "
    "principal_component_analysis), AnalyticMixture, AnalyticHMoG (analytic_hmog) and "
    "SymmetricHMoG with a complete upper mixture (symmetric_hmog with lat_rep=PositiveDefinite)"
)


class ChunkedEStep(ABC):
    """The E-step as chunked, GEMM-shaped sums: what a model provides for EM and gradients.

    A model says what one chunk of rows contributes (:meth:`estep_sums`) and how the totals
    become mean posterior statistics and the log-likelihood (:meth:`estep_assemble`); the
    rest (chunking, accumulation in a wider dtype, caching ``mean s_x(x)``) is shared.
    """

    @property
    @abstractmethod
    def obs_man(self) -> Any:
        """The observable family (a :class:`~hmog_xp.families.Normal`)."""

    @abstractmethod
    def log_partition_function(self, params: Any) -> Any:
        """Return ``ψ(θ)``, raising for parameters that describe no distribution.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        array, shape ()
            The log-partition function.
        """

    @abstractmethod
    def _check_sample(self, xs: Any, params: Any = None) -> Any: ...

    #: What :meth:`estep_invalid_rows` flags, for the messages naming such rows.
    invalid_rows_description = "non-finite values (NaN or inf)"

    def estep_invalid_rows(self, xs: Any) -> Any:
        """Flag the rows the E-step cannot use (chunk by chunk, e.g. on Dask workers).

        Parameters
        ----------
        xs : array, shape (N, p)
            Observations.

        Returns
        -------
        array of bool, shape (N,)
            True for a row with a NaN or infinite entry (a model that reads NaN as a missing
            value flags less).
        """
        xp = B.array_namespace(xs)
        return xp.logical_not(xp.all(xp.isfinite(xs), axis=1))

    @abstractmethod
    def _check_params(self, params: Any, name: str = "params") -> Any: ...

    def check_estep_inputs(self, params: Any = None, xs: Any = None) -> None:
        """Validate parameters and/or a sample once, before a loop that checks nothing.

        Parameters
        ----------
        params : array, shape (dim,), optional
            Natural parameters (valid: their log-partition function is finite).
        xs : array, shape (N, p), optional
            Observations (finite, the right width, at least one row, ``params``'s namespace).

        Raises
        ------
        ValidationError
            If either is invalid.
        """
        if xs is not None:
            self._check_sample(xs, params)
        if params is not None:
            self._check_params(params)
            # One compiled evaluation on JAX (eager, with its checks, elsewhere); where it
            # is not finite, the eager call names what is wrong.
            value = compiled_log_partition(self, params)
            if not bool(B.array_namespace(value).isfinite(value)):
                self.log_partition_function(params)

    @abstractmethod
    def estep_sums(self, params: Any) -> Callable[[Any, Any], tuple[Any, ...]]:
        """Return ``sums(chunk, weights)``: what one row chunk adds to the E-step.

        Everything that does not depend on the rows (factorisations, inverses) is computed
        here, once per parameter vector.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        callable
            ``sums(chunk (m, p), weights (m,)) -> tuple of arrays``; every row's
            contribution is multiplied by its weight (0 for padding rows), and the last
            entry is ``Σ weight · ψ_z(posterior(x))``.
        """

    @abstractmethod
    def estep_assemble(
        self,
        params: Any,
        obs_statistics: Any,
        sums: tuple[Any, ...],
        n_obs: int,
        log_partition: Any = None,
    ) -> tuple[Any, Any]:
        """Mean posterior statistics and the average log-likelihood from summed chunk sums.

        The sums of any partition of the rows (chunks in memory, Dask blocks on workers)
        add up to the same totals.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters the sums were computed with.
        obs_statistics : array, shape (obs_man.dim,)
            ``mean_n s_x(x_n)`` over the same rows.
        sums : tuple of arrays
            Element-wise totals of :meth:`estep_sums` over the rows.
        n_obs : int
            Number of rows summed over.
        log_partition : array, shape (), optional
            ``ψ(params)`` where already known (the M-step that made ``params`` gives it:
            :meth:`ClosedFormEM.mstep_and_log_partition`); None: computed here.

        Returns
        -------
        means : array, shape (dim,)
            ``mean_posterior_statistics(params, xs)``.
        log_likelihood : array, shape ()
            ``average_log_observable_density(params, xs)``.
        """

    @abstractmethod
    def estep_row_bytes(self) -> int:
        """Return the bytes of E-step working memory per row (sets :meth:`estep_chunk_size`)."""

    def estep_chunk_size(self, n_obs: int) -> int:
        """Choose the rows per chunk so that the E-step's working arrays stay near 32 MiB.

        Parameters
        ----------
        n_obs : int
            Number of observations.

        Returns
        -------
        int
            Chunk size in ``[256, n_obs]`` (at least 1).
        """
        return max(1, min(n_obs, max(256, CHUNK_BYTES // self.estep_row_bytes())))

    def estep_observable_statistics(self, xs: Any, chunk_size: int) -> Any:
        """``mean_n s_x(x_n)``, computed chunk by chunk (cached once per fit by EM).

        Parameters
        ----------
        xs : array, shape (N, p)
            Observations.
        chunk_size : int
            Rows per chunk.

        Returns
        -------
        array, shape (obs_man.dim,)
            Average observable sufficient statistic, in
            :func:`~hmog_xp._backend.accumulation_dtype` of ``xs``.
        """
        xp = B.array_namespace(xs)
        wide = B.accumulation_dtype(xp, xs.dtype)
        family = self.obs_man
        (total,) = sum_over_chunks(
            widened(lambda chunk, weights: (weights @ family.sufficient_statistic(chunk),), wide),
            xs,
            chunk_size,
            xp=xp,
        )
        return total / xs.shape[0]

    def estep(
        self,
        params: Any,
        xs: Any,
        obs_statistics: Any,
        chunk_size: int,
        dtype: Any = None,
        log_partition: Any = None,
    ) -> tuple[Any, Any]:
        """One chunked E-step: mean posterior statistics and the average log-likelihood.

        Chunks are computed in the data's dtype and summed, and assembled, in
        :func:`~hmog_xp._backend.accumulation_dtype` (float64 for float32 data where the
        backend has it).

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, p)
            Observations.
        obs_statistics : array, shape (obs_man.dim,)
            :meth:`estep_observable_statistics` of ``xs``.
        chunk_size : int
            Rows per chunk.
        dtype : dtype, optional
            The dtype of the results (default: ``params``'s). The EM driver asks for the
            accumulation dtype, so that the M-step runs in it too.
        log_partition : array, shape (), optional
            ``ψ(params)`` where already known, in the accumulation dtype (see
            :meth:`estep_assemble`); None: computed here.

        Returns
        -------
        means : array, shape (dim,)
            ``mean_posterior_statistics(params, xs)``.
        log_likelihood : array, shape ()
            ``average_log_observable_density(params, xs)``.
        """
        xp = B.array_namespace(params, xs)
        means, log_likelihood = self.estep_assemble(
            *self._summed(params, xs, obs_statistics, chunk_size), log_partition
        )
        dtype = params.dtype if dtype is None else dtype
        return B.cast(means, dtype, xp=xp), B.cast(log_likelihood, dtype, xp=xp)

    def estep_parts(
        self, params: Any, xs: Any, obs_statistics: Any, chunk_size: int, log_partition: Any = None
    ) -> tuple[Any, Any]:
        """:meth:`estep` with the mean statistics as :meth:`ClosedFormEM.mstep_parts` takes them.

        An EM step hands the E-step's statistics to the M-step of the same model; a model
        whose mean coordinates pack parts that the M-step would unpack again gives the parts
        instead (:meth:`estep_assemble_parts`). The results are in the accumulation dtype.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, p)
            Observations.
        obs_statistics : array, shape (obs_man.dim,)
            :meth:`estep_observable_statistics` of ``xs``.
        chunk_size : int
            Rows per chunk.
        log_partition : array, shape (), optional
            ``ψ(params)`` where already known (see :meth:`estep`).

        Returns
        -------
        parts : array, shape (dim,), or the model's parts
            The mean posterior statistics (default: the mean coordinates themselves).
        log_likelihood : array, shape ()
            ``average_log_observable_density(params, xs)``.
        """
        return self.estep_assemble_parts(
            *self._summed(params, xs, obs_statistics, chunk_size), log_partition
        )

    def estep_assemble_parts(
        self,
        params: Any,
        obs_statistics: Any,
        sums: tuple[Any, ...],
        n_obs: int,
        log_partition: Any = None,
    ) -> tuple[Any, Any]:
        """:meth:`estep_assemble`, giving the parts :meth:`estep_parts` documents.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters the sums were computed with.
        obs_statistics : array, shape (obs_man.dim,)
            ``mean_n s_x(x_n)`` over the same rows.
        sums : tuple of arrays
            Element-wise totals of :meth:`estep_sums` over the rows.
        n_obs : int
            Number of rows summed over.
        log_partition : array, shape (), optional
            ``ψ(params)`` where already known; None: computed here.

        Returns
        -------
        parts : array, shape (dim,), or the model's parts
            The mean posterior statistics (default: :meth:`estep_assemble`'s).
        log_likelihood : array, shape ()
            The average log-likelihood.
        """
        return self.estep_assemble(params, obs_statistics, sums, n_obs, log_partition)

    def estep_join_parts(self, parts: Any) -> Any:
        """Mean coordinates from :meth:`estep_parts`'s parts (default: they are the coordinates).

        Parameters
        ----------
        parts : array, shape (dim,), or the model's parts
            Mean posterior statistics by part.

        Returns
        -------
        array, shape (dim,)
            The mean coordinates.
        """
        return parts

    def _summed(
        self, params: Any, xs: Any, obs_statistics: Any, chunk_size: int
    ) -> tuple[Any, Any, tuple[Any, ...], int]:
        """The chunk sums over ``xs``, with ``params`` and ``obs_statistics``, all widened."""
        xp = B.array_namespace(params, xs)
        wide = B.accumulation_dtype(xp, params.dtype)
        chunk_sums = self.estep_sums(params)
        if wide != params.dtype:  # the chunks add up in the wider dtype
            chunk_sums = widened(chunk_sums, wide)
        sums = sum_over_chunks(chunk_sums, xs, chunk_size, xp=xp)
        wide_params = B.cast(params, wide, xp=xp)
        return wide_params, B.cast(obs_statistics, wide, xp=xp), sums, xs.shape[0]


class ClosedFormEM(ChunkedEStep):
    """Models whose M-step is closed form: ``to_natural(frame(regularize(means)))``.

    Implemented by :class:`~hmog_xp.harmoniums.AnalyticLinearGaussianModel` (factor
    analysis, PPCA), :class:`~hmog_xp.harmoniums.AnalyticMixture`,
    :class:`~hmog_xp.hmog.AnalyticHMoG` and :class:`~hmog_xp.hmog.SymmetricHMoG` (the last
    only with a complete upper mixture: see :attr:`has_closed_form_em`). Every EM driver
    (:func:`hmog_xp.fit_em`, :func:`hmog_xp.em.em_steps`, :func:`hmog_xp.scale.fit_em_dask`,
    :func:`hmog_xp.scale.fit_online`) takes any of them.
    """

    @property
    def has_closed_form_em(self) -> bool:
        """Whether this instance's M-step is closed form (True unless a subclass says)."""
        return True

    @abstractmethod
    def to_natural(self, means: Any) -> Any:
        """Natural parameters from mean coordinates (the closed-form M-step).

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """

    @abstractmethod
    def mstep_regularize(self, means: Any, regularization: Regularization) -> Any:
        """Apply the stabilisers to mean coordinates before the M-step.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.
        regularization : Regularization
            The stabilisers (the model documents which apply to it).

        Returns
        -------
        array, shape (dim,)
            Regularised mean coordinates (``means`` itself when every stabiliser is zero).
        """

    def mstep_frame(self, means: Any) -> Any:
        """Re-express mean coordinates in the model's canonical frame (default: unchanged).

        Latent-variable models whiten the latent prior here (``p(x)`` is unchanged).

        Parameters
        ----------
        means : array, shape (dim,)
            Mean coordinates.

        Returns
        -------
        array, shape (dim,)
            Mean coordinates in the canonical frame.
        """
        return means

    def mstep(self, means: Any, regularization: Regularization | None = None) -> Any:
        """The closed-form M-step: ``to_natural(mstep_frame(mstep_regularize(means)))``.

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.
        regularization : Regularization, optional
            Stabilisers (default or None: exact).

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        regularization = Regularization() if regularization is None else regularization
        return self.to_natural(self.mstep_frame(self.mstep_regularize(means, regularization)))

    @property
    def mstep_gives_log_partition(self) -> bool:
        """Whether :meth:`mstep_and_log_partition` gets ``ψ`` for less than an E-step spends.

        The EM drivers then hand it to the next E-step (default: False, they do not ask).

        Returns
        -------
        bool
            False here.
        """
        return False

    def mstep_parts(self, parts: Any, regularization: Regularization | None = None) -> Any:
        """:meth:`mstep` of the mean statistics as :meth:`ChunkedEStep.estep_parts` gives them.

        Default: the parts are the mean coordinates.

        Parameters
        ----------
        parts : array, shape (dim,), or the model's parts
            Mean posterior statistics.
        regularization : Regularization, optional
            Stabilisers (default or None: exact).

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        return self.mstep(parts, regularization)

    def mstep_parts_and_log_partition(
        self, parts: Any, regularization: Regularization | None = None
    ) -> tuple[Any, Any]:
        """:meth:`mstep_and_log_partition` of :meth:`ChunkedEStep.estep_parts`'s statistics.

        Parameters
        ----------
        parts : array, shape (dim,), or the model's parts
            Mean posterior statistics.
        regularization : Regularization, optional
            Stabilisers (default or None: exact).

        Returns
        -------
        params : array, shape (dim,)
            :meth:`mstep_parts` of ``parts``.
        log_partition : array, shape ()
            ``ψ(params)``.
        """
        return self.mstep_and_log_partition(parts, regularization)

    def mstep_and_log_partition(
        self, means: Any, regularization: Regularization | None = None
    ) -> tuple[Any, Any]:
        """The M-step's parameters and their log-partition function ``ψ``.

        Default: :meth:`mstep`, then ``log_partition_function``; a model whose M-step
        already holds what ``ψ`` needs overrides this (see :attr:`mstep_gives_log_partition`).

        Parameters
        ----------
        means : array, shape (dim,)
            Mean posterior statistics.
        regularization : Regularization, optional
            Stabilisers (default or None: exact).

        Returns
        -------
        params : array, shape (dim,)
            :meth:`mstep` of ``means``.
        log_partition : array, shape ()
            ``ψ(params)``.
        """
        params = self.mstep(means, regularization)
        return params, self.log_partition_function(params)


def check_closed_form_em(model: object) -> ClosedFormEM:
    """Return ``model`` if it has closed-form EM; raise a clear error otherwise.

    Parameters
    ----------
    model : object
        The model.

    Returns
    -------
    ClosedFormEM
        ``model``.

    Raises
    ------
    NoClosedFormEMError
        If ``model`` is not a :class:`ClosedFormEM` or this instance has no closed-form
        M-step (a ``SymmetricHMoG`` whose components share a sub-rep).
    """
    if not isinstance(model, ClosedFormEM) or not model.has_closed_form_em:
        msg = f"{model!r} has no closed-form EM; {EM_MODELS}; train other models with fit_gradient"
        raise NoClosedFormEMError(msg)
    return model


def widened(
    sums: Callable[[Any, Any], tuple[Any, ...]], dtype: Any
) -> Callable[[Any, Any], tuple[Any, ...]]:
    """``sums`` with every output cast to ``dtype`` (so the chunks add up in it).

    Parameters
    ----------
    sums : callable
        ``sums(chunk, weights) -> tuple of arrays``.
    dtype : dtype
        The dtype to add up in.

    Returns
    -------
    callable
        The same sums, cast.
    """

    def cast(chunk: Any, weights: Any) -> tuple[Any, ...]:
        xp = B.array_namespace(chunk)
        return tuple(B.cast(part, dtype, xp=xp) for part in sums(chunk, weights))

    return cast


def harmonium_log_likelihood(
    model: Any,
    params: Any,
    obs_statistics: Any,
    log_partition_sum: Any,
    n_obs: int,
    log_partition: Any = None,
) -> Any:
    """Average ``log p(x) = θ_x·s_x(x) + ψ_z(posterior(x)) − ψ(θ) + log base(x)``.

    Parameters
    ----------
    model : Harmonium
        A harmonium with a Normal observable (base measure ``−½ p log 2π``).
    params : array, shape (dim,)
        Natural parameters.
    obs_statistics : array, shape (obs_man.dim,)
        ``mean_n s_x(x_n)``.
    log_partition_sum : array, shape ()
        ``Σ_n ψ_z(posterior(x_n))``.
    n_obs : int
        Number of rows.
    log_partition : array, shape (), optional
        ``ψ(θ)`` where already known; None: ``model.log_partition_function(params)``.

    Returns
    -------
    array, shape ()
        The average log-likelihood.
    """
    xp = B.array_namespace(params, obs_statistics)
    obs_params = params[: model.obs_man.dim]
    base = -0.5 * model.obs_man.n * math.log(2.0 * math.pi)
    if log_partition is None:
        log_partition = model.log_partition_function(params)
    return xp.sum(obs_params * obs_statistics) + base + log_partition_sum / n_obs - log_partition


def log_partition(model: ClosedFormEM, params: Any) -> Any:
    """Return ``model.log_partition_function(params)`` (compiled: ``compiled_log_partition``).

    Parameters
    ----------
    model : ClosedFormEM
        The model.
    params : array, shape (dim,)
        Natural parameters.

    Returns
    -------
    array, shape ()
        ``ψ(params)``.
    """
    return model.log_partition_function(params)


#: :func:`log_partition` compiled once per model and shape on JAX.
compiled_log_partition = B.jit(log_partition, static_argnums=(0,))
