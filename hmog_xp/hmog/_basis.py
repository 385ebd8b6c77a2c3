"""One latent basis for every backend: a canonical orientation of an HMoG's factors.

An invertible change of latent coordinates ``y = T y'`` maps the loadings to ``A T``, every
component to ``(T⁻¹μ_k, T⁻¹Σ_k T⁻ᵀ)`` (posterior and prior alike) and leaves ``p(x)``, the
labels and the probabilities unchanged; only the factor scores ``E[y | x]`` move. Fits and
eigendecompositions fix ``T`` only up to such a change, and backends resolve it differently
(an eigenvector's sign). :func:`canonical_latent_basis` picks one representative:

* **Full latent components** (``AnalyticHMoG``, ``SymmetricHMoG`` with a full ``lat_rep``,
  ``DifferentiableHMoG`` with a full posterior rep): every orthogonal ``T = Q`` preserves the
  structure (and a whitened prior). The canonical basis is the eigenbasis of the
  signal-to-noise matrix ``G = AᵀΨ⁻¹A``, by decreasing eigenvalue, so factor 1 is the
  direction the data resolve best. ``G`` is invariant under ``x ↦ D x + m``.
* **Restricted latent components** (diagonal or isotropic posteriors or ``lat_rep``): only
  signed permutations keep the structure. The factors are ordered by decreasing ``G_jj``.

Then the sign rule: with ``B = L⁻¹A`` (``Ψ = L Lᵀ``; the loadings in noise units, also
invariant under ``x ↦ D x + m``), each column ``j`` gets the sign that makes
``Σ_i B_ij³ >= 0``. The cube weights the largest loadings, so the sign follows the factor's
dominant features; unlike "the largest entry is positive" it is a continuous function of the
loadings, so two nearly equal largest entries cannot flip it between backends.

A column whose ``Σ_i B_ij³`` is at rounding level (a factor in the null space of ``A``, when
there are more factors than the data resolve) takes its sign from the posterior component
centres ``c_k`` instead (the same cube rule on ``C_kj``). The convention is unique up to
ties: equal eigenvalues (or equal ``G_jj``), e.g. several null directions, leave the basis
of their span free. It is idempotent, and
every array stays in the parameters' namespace and on their device; the only host-visible
step is ``eigh`` of a ``d × d`` matrix. float32 parameters are re-expressed in float64 where
the backend has it (the per-component inversions would otherwise lose float32 precision) and
cast back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hmog_xp import _backend as B
from hmog_xp.harmoniums import column_signs
from hmog_xp.reps import PositiveDefinite

if TYPE_CHECKING:
    from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians

__all__ = ["canonical_latent_basis", "has_full_latent_basis"]


def has_full_latent_basis(model: HierarchicalMixtureOfGaussians) -> bool:
    """Whether every orthogonal change of latent basis keeps ``model``'s structure.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.

    Returns
    -------
    bool
        True when the posterior components are full Normals that may differ in full
        covariances (rotations allowed), False when only signed permutations are.
    """
    upper = model.posterior_upper
    full = PositiveDefinite()
    return upper.component_man.rep == full and upper.varying_rep == full


def canonical_latent_basis(model: HierarchicalMixtureOfGaussians, params: Any) -> Any:
    """Re-express ``params`` in the canonical latent basis (see the module docstring).

    ``p(x)``, ``p(z | x)`` and the log-likelihood are unchanged; the factor scores
    ``E[y | x]`` become the same on every backend. Applying it twice gives the same result.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        Any HMoG variant.
    params : array, shape (dim,)
        Natural parameters.

    Returns
    -------
    array, shape (dim,)
        Natural parameters of the same distribution in the canonical basis.
    """
    xp = model._check_params(params)
    dtype = params.dtype
    wide = B.default_float_dtype(xp)  # float64 where the backend has it
    if xp.finfo(wide).eps < xp.finfo(dtype).eps:  # float32: re-express in float64
        widened = xp.astype(params, wide)
        return xp.astype(canonical_latent_basis(model, widened), dtype)
    lower = model.lower_harmonium
    lkl_params = params[..., : model.lkl_dim]
    upper_params = params[..., model.lkl_dim :]
    loadings, _, noise = lower.likelihood_generative(lkl_params)
    noise_storage = lower.obs_rep.from_readable(noise, lower.obs_dim, "noise")
    factor = lower.obs_man.cholesky_factor(noise_storage, "noise covariance")
    white = lower.obs_rep.factor_solve_matrix(factor, loadings)  # B = L⁻¹A, (p, d)
    gram = xp.matrix_transpose(white) @ white  # G = AᵀΨ⁻¹A
    if has_full_latent_basis(model):
        _, vectors = xp.linalg.eigh(gram)  # ascending eigenvalues
        basis = xp.flip(vectors, axis=-1)
    else:
        d = model.lat_dim
        order = xp.argsort(xp.linalg.diagonal(gram), descending=True, stable=True)
        identity = xp.eye(d, dtype=params.dtype, device=B.device_of(params))
        basis = xp.take(identity, order, axis=-1)  # a permutation matrix
    upper = model.posterior_upper
    components, weights = upper.split_natural_mixture(upper_params)  # posterior at u = 0
    centres, _ = upper.component_man.to_moments(components)
    basis = basis * _signs(white @ basis, centres @ basis)  # T = V S, orthogonal
    return _change_basis(model, params, (components, weights), basis)


def _signs(white: Any, centres: Any) -> Any:
    """:func:`column_signs` of ``white``; columns at rounding level use the centres instead.

    A column of ``B`` is zero when its factor is in the null space of ``A`` (more factors than
    the data resolve); the component centres ``c_k`` still tell its direction.
    """
    xp = B.array_namespace(white, centres)
    eps = xp.finfo(white.dtype).eps
    cubes = xp.sum(white**3, axis=-2)
    scale = xp.max(xp.sum(xp.abs(white) ** 3, axis=-2))  # of the strongest column
    resolved = xp.abs(cubes) > 64.0 * eps * scale
    return xp.where(resolved, column_signs(white), column_signs(centres))


def _change_basis(
    model: HierarchicalMixtureOfGaussians,
    params: Any,
    mixture: tuple[Any, Any],
    basis: Any,
) -> Any:
    """Natural parameters after ``y = T y'`` for an orthogonal ``T`` (``basis``, (d, d)).

    Done in natural coordinates, so weights that underflowed to zero survive: ``θ_x`` is
    unchanged, ``W ↦ W T``, every component ``(h_k, Λ_k) ↦ (Tᵀh_k, TᵀΛ_k T)``, and the
    weights' natural parameters are unchanged (``|det T| = 1`` leaves every component's
    log-partition function as it was).
    """
    xp = B.array_namespace(params, basis)
    obs, interaction, _ = model.split_coords(params)
    components, weights = mixture
    family = model.posterior_upper.component_man
    location, precision = family.split_location_precision(components)
    dense = family.rep.unpack(precision, family.n)
    turned = xp.matrix_transpose(basis) @ dense @ basis
    turned = 0.5 * (turned + xp.matrix_transpose(turned))  # symmetric to rounding
    new_components = family.join_location_precision(location @ basis, family.rep.pack(turned))
    new_upper = model.posterior_upper.join_natural_mixture(new_components, weights)
    return model.join_coords(obs, interaction @ basis, new_upper)
