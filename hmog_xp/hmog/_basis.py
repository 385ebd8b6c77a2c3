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

The convention is unique up to ties: equal eigenvalues (or equal ``G_jj``) leave the basis of
their span free, and a column with ``Σ_i B_ij³ = 0`` keeps its sign. It is idempotent, and
every array stays in the parameters' namespace and on their device; the only host-visible
step is ``eigh`` of a ``d × d`` matrix.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hmog_xp import _backend as B
from hmog_xp.harmoniums._lgm_init import column_signs
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
    lower = model.lower_harmonium
    lkl_params = params[..., : model.lkl_dim]
    upper_params = params[..., model.lkl_dim :]
    loadings, bias, noise = lower.likelihood_generative(lkl_params)
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
    basis = basis * column_signs(white @ basis)  # T = V S, orthogonal
    return _change_basis(model, lkl_params, upper_params, (loadings, bias, noise_storage), basis)


def _change_basis(
    model: HierarchicalMixtureOfGaussians,
    lkl_params: Any,
    upper_params: Any,
    likelihood: tuple[Any, Any, Any],
    basis: Any,
) -> Any:
    """Natural parameters after ``y = T y'`` for an orthogonal ``T`` (``basis``, (d, d))."""
    xp = B.array_namespace(lkl_params, upper_params, basis)
    loadings, bias, noise_storage = likelihood
    new_lkl = model.lower_harmonium.likelihood_parameters(loadings @ basis, bias, noise_storage)
    upper = model.posterior_upper
    weights, means, covariances = upper.to_generative(upper_params)
    transposed = xp.matrix_transpose(basis)
    new_means = means @ basis  # rows T⁻¹μ_k = Tᵀμ_k
    new_covariances = transposed @ covariances @ basis
    new_upper = upper.from_generative(weights, new_means, new_covariances)
    return xp.concat([new_lkl, new_upper], axis=-1)
