"""Posteriors of rows far from the data, where the plain logits overflow.

A logit is a quadratic in ``x``; for ``|x| ~ 1e154`` its terms overflow (``θ_x·s_x(x) → −∞``,
``ψ_k(x) → +∞``) although ``log p(x)`` is finite, and ``∞ − ∞`` is NaN. So each row is divided
by its scale ``s = max(1, max_j |x_j|)`` (capped, see :func:`row_scale`) and every logit is
evaluated as ``L_k = s (s G_k + H_k) + C_k``, with ``G_k`` (degree 2) and ``H_k`` (degree 1)
computed from ``x / s`` (of order one) and ``C_k`` the constant: ``L_k`` overflows only when
its value does.
With ``θ_x·s_x(x)`` included, ``L_k`` is ``log p(x, z = k)`` up to a constant, finite
wherever that is representable. Rows whose largest ``L_k`` is not finite take the one-hot
posterior of the largest ``G_k``, ties broken by ``H_k`` (the ranking of ``L_k`` when ``s``
is that large; remaining ties share the mass), so responsibilities always sum to one and
nothing is NaN.

The public density and posterior methods of the HMoG go through :func:`chunk_posteriors`:
the plain :func:`hmog_xp.hmog._posterior.posteriors_at`, and this path only for a chunk in
which some logit is not finite (one check per chunk), so ordinary data pay nothing more.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from hmog_xp import _backend as B
from hmog_xp.hmog._posterior import ComponentPosteriors, ComponentTerms, RowLogits, posteriors_at

if TYPE_CHECKING:
    from hmog_xp.families import Normal
    from hmog_xp.harmoniums import Mixture


def observable_terms(obs_man: Normal, obs: Any) -> Callable[[Any], tuple[Any, Any]]:
    """Return ``rows -> (θ₂·q(rows), h_x·rows)``, the degree-2 and 1 parts of ``θ_x·s_x``.

    Parameters
    ----------
    obs_man : Normal
        The observable family.
    obs : array, shape (obs_man.dim,)
        Its natural parameters ``θ_x = (h_x, θ₂)``.

    Returns
    -------
    callable
        Maps rows (N, p) to two arrays of shape (N,).
    """
    p = obs_man.data_dim

    def terms(rows: Any) -> tuple[Any, Any]:
        return obs_man.sufficient_statistic(rows)[:, p:] @ obs[p:], rows @ obs[:p]

    return terms


def plain_observable(obs_man: Normal, obs: Any, rows: Any) -> Any:
    """Return ``θ_x·s_x(x)`` of every row, computed plainly (not finite far from the data).

    Parameters
    ----------
    obs_man : Normal
        The observable family.
    obs : array, shape (obs_man.dim,)
        Its natural parameters.
    rows : array, shape (N, p)
        Observations.

    Returns
    -------
    array, shape (N,)
        One GEMV with the sufficient statistics.
    """
    xp = B.array_namespace(obs, rows)
    with B.ignoring_overflow(xp, invalid=True):  # chunk_posteriors detects what overflowed
        return obs_man.sufficient_statistic(rows) @ obs


def chunk_posteriors(
    upper: Mixture,
    terms: ComponentTerms,
    rows: Any,
    interaction: Any,
    observable: Callable[[Any], tuple[Any, Any]] | None = None,
    plain_observable: Any = None,
) -> ComponentPosteriors:
    """Compute a chunk's posteriors: :func:`posteriors_at`, or :func:`row_posteriors` if needed.

    The plain computation is used unless some logit is not finite (a row far from the data,
    where its terms overflow); then the chunk is recomputed at scale. The check needs the
    values, so under tracing (``jax.jit``, ``torch.func``) the plain computation is kept.

    Parameters
    ----------
    upper : Mixture
        The posterior upper mixture.
    terms : ComponentTerms
        Output of :func:`component_terms`.
    rows : array, shape (N, p)
        Observations.
    interaction : array, shape (p, d)
        ``W``.
    observable : callable, optional
        ``observable(rows) -> (degree-2 part, degree-1 part)`` of ``θ_x·s_x(rows)``, each of
        shape (N,); when given it is added to every logit (joint logits ``log p(x, z = k)``
        up to a constant).
    plain_observable : array, shape (N,), optional
        ``θ_x·s_x(rows)`` computed plainly (for the plain path; default: from
        ``observable``).

    Returns
    -------
    ComponentPosteriors
        From :func:`posteriors_at` (``rows`` None) or :func:`row_posteriors`.
    """
    xp = B.array_namespace(rows, interaction)
    with B.ignoring_overflow(xp, invalid=True):  # non-finite logits are detected below
        posteriors = posteriors_at(upper, terms, rows @ interaction)
        if observable is not None:
            if plain_observable is None:
                quadratic, linear = observable(rows)
                plain_observable = quadratic + linear
            logits = posteriors.logits + plain_observable[:, None]
            posteriors = posteriors._replace(logits=logits)
    if not B.is_concrete(posteriors.logits) or bool(xp.all(xp.isfinite(posteriors.logits))):
        return posteriors
    scale = row_scale(rows)
    scaled = rows / scale
    extra = None if observable is None else observable(scaled)
    with B.ignoring_overflow(xp):  # L_k = -inf where log p(x, k) is below the float range
        return row_posteriors(upper, terms, scaled @ interaction, scale, extra)


def row_scale(rows: Any) -> Any:
    """Scale ``s = max(1, max_j |x_j|)`` of every row, at most ``2**1000``, shape (N, 1).

    The cap keeps ``1 / s`` a normal number: XLA divides by multiplying with the reciprocal
    and flushes subnormals to zero, which would turn ``x / s`` into 0 for ``|x| ~ 1e308``.

    Parameters
    ----------
    rows : array, shape (N, p)
        Observations.

    Returns
    -------
    array, shape (N, 1)
        Row scales.
    """
    xp = B.array_namespace(rows)
    return xp.clip(xp.max(xp.abs(rows), axis=-1, keepdims=True), min=1.0, max=2.0**1000)


def row_posteriors(
    upper: Mixture, terms: ComponentTerms, shift: Any, scale: Any, observable: Any = None
) -> ComponentPosteriors:
    """Compute posteriors of rows given at scale ``s``: ``shift = Wᵀ(x / s)`` (see the module).

    Parameters
    ----------
    upper : Mixture
        The posterior upper mixture.
    terms : ComponentTerms
        Output of :func:`component_terms`.
    shift : array, shape (N, d)
        ``Wᵀ (x / s)``.
    scale : array, shape (N, 1)
        Row scales ``s`` (:func:`row_scale`).
    observable : tuple of two arrays of shape (N,), optional
        Degree-2 and degree-1 parts of ``θ_x·s_x(x / s)``, added to every component (the
        logits are then those of ``p(x, z = k)`` up to a constant).

    Returns
    -------
    ComponentPosteriors
        ``logits`` are ``L_k − max_j L_j`` (0 for the leading component, never NaN);
        ``spreads`` and ``shift`` are at scale (times ``rows.scale`` at the data's).
    """
    xp = B.array_namespace(terms.centers, shift)
    spreads = upper.component_man.rep.matvec_all(terms.covariances, shift)  # (N, K, d)
    quadratic = 0.5 * B.vecdot(shift[:, None, :], spreads, xp=xp)
    linear = shift @ xp.matrix_transpose(terms.centers)
    if observable is not None:
        quadratic = quadratic + observable[0][:, None]
        linear = linear + observable[1][:, None]
    constant = (
        0.5 * B.vecdot(terms.location, terms.centers, xp=xp)
        - 0.5 * terms.logdets
        + terms.log_weights
    )
    full = scale * (scale * quadratic + linear) + constant  # L_k, ±inf where too large
    peak = xp.max(full, axis=-1, keepdims=True)
    # Where max_k L_k overflows, s is so large that G ranks the components, then H.
    ties = quadratic == xp.max(quadratic, axis=-1, keepdims=True)
    tied_linear = xp.where(ties, linear, -math.inf)
    ties = ties & (tied_linear == xp.max(tied_linear, axis=-1, keepdims=True))
    finite = xp.isfinite(peak)
    centred = full - xp.where(finite, peak, xp.zeros_like(peak))
    fallback = xp.where(ties, xp.zeros_like(full), xp.full_like(full, -math.inf))
    logits = xp.where(finite, centred, fallback)
    rows = RowLogits(quadratic, linear, constant, scale, peak[:, 0])
    return ComponentPosteriors(logits, terms.centers, spreads, shift, terms.covariances, rows)


def logit_differences(rows: RowLogits, reference: Any) -> Any:
    """``L_k − L_r`` for a reference component ``r`` of each row, never NaN, shape (N, K).

    Parameters
    ----------
    rows : RowLogits
        The decomposed logits.
    reference : array of int, shape (N,)
        Reference component of each row.

    Returns
    -------
    array, shape (N, K)
        Differences (finite, or infinite where they are not representable).
    """
    xp = B.array_namespace(rows.quadratic)
    index = reference[:, None]
    quadratic = rows.quadratic - xp.take_along_axis(rows.quadratic, index, axis=-1)
    linear = rows.linear - xp.take_along_axis(rows.linear, index, axis=-1)
    constant = rows.constant - xp.take(rows.constant, reference)[:, None]
    s = rows.scale
    return s * (s * quadratic + linear) + constant


def categorical_logits(posteriors: ComponentPosteriors) -> Any:
    """Natural parameters ``L_k − L_0`` (``k >= 1``) of ``p(z | x)``, never NaN, shape (N, K − 1).

    Parameters
    ----------
    posteriors : ComponentPosteriors
        Output of :func:`chunk_posteriors`.

    Returns
    -------
    array, shape (N, K − 1)
        Logit differences from component 0.
    """
    rows = posteriors.rows
    if rows is None:
        return posteriors.logits[:, 1:] - posteriors.logits[:, :1]
    xp = B.array_namespace(rows.quadratic)
    first = xp.zeros(rows.quadratic.shape[:1], dtype=xp.int64, device=B.device_of(rows.scale))
    return logit_differences(rows, first)[:, 1:]


def leading_logit(posteriors: ComponentPosteriors) -> Any:
    """``log Σ_k exp(L_k)`` of every row, shape (N,).

    Parameters
    ----------
    posteriors : ComponentPosteriors
        Output of :func:`chunk_posteriors`.

    Returns
    -------
    array, shape (N,)
        ``max_k L_k + log Σ_k exp(logits_k)``: finite, or ``±inf`` only when the value
        is not representable.
    """
    xp = B.array_namespace(posteriors.logits)
    total = B.logsumexp(posteriors.logits, axis=-1, xp=xp)
    return total if posteriors.rows is None else posteriors.rows.peak + total
