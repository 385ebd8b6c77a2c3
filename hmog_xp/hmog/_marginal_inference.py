"""Inference on rows with missing entries: densities, posteriors and imputation.

:class:`MarginalInference` gives :class:`~hmog_xp.hmog.MarginalizedHMoG` the inference methods
of an HMoG under the same names (``log_observable_density``, ``posterior_soft_assignments``,
``posterior_hard_assignment``, ``posterior_latent_mean``), computed from the exact marginal of
each row's observed entries (NaN: missing), plus imputation by the conditional mean or by a
draw from the conditional distribution of the missing entries. Rows are processed in chunks
of ``estep_chunk_size`` so the ``(rows, K, d, d)`` working arrays stay bounded.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.hmog._missing import (
    ObservedPosteriors,
    component_terms,
    impute_conditional_mean,
    observed_posteriors,
    split_missing,
)

__all__ = ["MarginalInference"]


def _unchanged(_params: Any, xs: Any) -> Any:
    """Complete rows have nothing to impute."""
    return xs


class MarginalInference:
    """Inference methods from the observed entries of each row (mixed into the wrapper).

    The class that mixes this in provides ``model`` (the wrapped HMoG), ``estep_chunk_size``
    and ``_check_sample`` (which refuses infinities and rows or columns with no observed
    entry).
    """

    model: Any
    estep_chunk_size: Callable[[int], int]
    _check_sample: Callable[..., Any]

    def _by_observed_rows(
        self,
        params: Any,
        xs: Any,
        per_rows: Callable[[ObservedPosteriors, Any, Any], Any],
        complete: Callable[[Any, Any], Any],
    ) -> Any:
        """Apply ``per_rows(posteriors, filled, observed)`` chunk by chunk and concatenate.

        Rows need an observed entry each, columns need not (inference on new rows). Data
        without a NaN entry go to ``complete(params, xs)`` instead: the complete-data
        method, so they get exactly its results.
        """
        xp = self._check_sample(xs, params, columns=False)
        if params.ndim != 1:
            msg = f"inference takes one parameter vector; got shape {tuple(params.shape)}"
            raise ValidationError(msg)
        if not bool(xp.any(xp.isnan(xs))):
            return complete(params, xs)
        terms = component_terms(self.model, params)  # row-independent: once
        n_rows = int(xs.shape[0])
        size = self.estep_chunk_size(n_rows)
        parts = []
        for start in range(0, n_rows, size):
            filled, observed = split_missing(xs[start : min(start + size, n_rows), ...])
            posteriors = observed_posteriors(self.model, params, filled, observed, terms)
            parts.append(per_rows(posteriors, filled, observed))
        return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)

    def log_observable_density(self, params: Any, xs: Any) -> Any:
        """Return ``log p(x_O)`` of every row, its missing entries marginalised exactly.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters of the wrapped model.
        xs : array, shape (N, p)
            Observations (NaN: missing; every row needs an observed entry).

        Returns
        -------
        array, shape (N,)
            Log-densities of the observed entries.
        """
        return self._by_observed_rows(
            params, xs, lambda post, _x, _o: post.log_density(), self.model.log_observable_density
        )

    def average_log_observable_density(self, params: Any, xs: Any) -> Any:
        """Return the mean over rows of :meth:`log_observable_density`.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, p)
            Observations (NaN: missing).

        Returns
        -------
        array, shape ()
            Average log-density.
        """
        xp = B.array_namespace(xs)
        if not bool(xp.any(xp.isnan(xs))):
            return self.model.average_log_observable_density(params, xs)
        return xp.mean(self.log_observable_density(params, xs))

    def posterior_soft_assignments(self, params: Any, xs: Any) -> Any:
        """Return ``p(z = k | x_O)`` of every row.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, p)
            Observations (NaN: missing).

        Returns
        -------
        array, shape (N, K)
            Responsibilities (rows sum to one).
        """
        return self._by_observed_rows(
            params,
            xs,
            lambda post, _x, _o: post.responsibilities(),
            self.model.posterior_soft_assignments,
        )

    def posterior_hard_assignment(self, params: Any, xs: Any) -> Any:
        """Return ``argmax_k p(z = k | x_O)`` of every row.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, p)
            Observations (NaN: missing).

        Returns
        -------
        array of int, shape (N,)
            Most probable components.
        """
        xp = B.array_namespace(xs)
        return self._by_observed_rows(
            params,
            xs,
            lambda post, _x, _o: xp.argmax(post.logits, axis=-1),
            self.model.posterior_hard_assignment,
        )

    def posterior_latent_mean(self, params: Any, xs: Any) -> Any:
        """Return the factor scores ``E[y | x_O]`` of every row.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, p)
            Observations (NaN: missing).

        Returns
        -------
        array, shape (N, d)
            Posterior latent means given the observed entries.
        """
        xp = B.array_namespace(xs)

        def _latent(post: ObservedPosteriors, _x: Any, _o: Any) -> Any:
            return xp.sum(post.responsibilities()[:, :, None] * post.latent_means, axis=1)

        return self._by_observed_rows(params, xs, _latent, self.model.posterior_latent_mean)

    def impute(self, params: Any, xs: Any) -> Any:
        """Replace every missing entry by its conditional mean ``E[x_j | x_O]``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, p)
            Observations (NaN: missing).

        Returns
        -------
        array, shape (N, p)
            ``xs`` with its NaN entries filled (observed entries unchanged).
        """
        return self._by_observed_rows(params, xs, impute_conditional_mean, _unchanged)

    def impute_sample(self, source: Any, params: Any, xs: Any) -> Any:
        """Replace every missing entry by a draw from ``p(x_M | x_O)``.

        Each row draws ``z ~ p(z | x_O)``, then ``y ~ p(y | x_O, z)``, then the missing
        entries from ``N(A_M y + b_M, Ψ_M)``: an exact draw, since ``x_M`` and ``x_O`` are
        independent given ``y``.

        Parameters
        ----------
        source : RandomSource
            Where the draws come from (:func:`hmog_xp.random_source`).
        params : array, shape (dim,)
            Natural parameters.
        xs : array, shape (N, p)
            Observations (NaN: missing).

        Returns
        -------
        array, shape (N, p)
            ``xs`` with its NaN entries drawn (observed entries unchanged).
        """
        xp = B.array_namespace(xs)

        def _draw(post: ObservedPosteriors, filled: Any, observed: Any) -> Any:
            m, k = post.logits.shape
            dtype = filled.dtype
            cumulative = xp.cumulative_sum(post.responsibilities(), axis=-1)
            uniform = source.uniform((m, 1), dtype=dtype)
            below = xp.astype(cumulative[:, :-1] <= uniform, xp.int64)
            labels = xp.sum(below, axis=-1)  # inverse CDF: (m,)
            picked = xp.astype(
                labels[:, None] == xp.arange(k, device=B.device_of(filled))[None, :], dtype
            )
            mean = xp.sum(picked[:, :, None] * post.latent_means, axis=1)  # (m, d)
            covariance = xp.sum(picked[:, :, None, None] * post.latent_covariances, axis=1)
            factor = B.cholesky(covariance, xp=xp)  # (m, d, d)
            noise = source.normal((m, mean.shape[-1], 1), dtype=dtype)
            latent = mean + (factor @ noise)[..., 0]
            scale = xp.sqrt(post.noise)
            draws = latent @ xp.matrix_transpose(post.loadings) + post.bias
            draws = draws + scale * source.normal(tuple(filled.shape), dtype=dtype)
            return xp.where(observed, filled, draws)

        return self._by_observed_rows(params, xs, _draw, _unchanged)
