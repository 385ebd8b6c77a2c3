"""The fitted state of the estimator from its best natural parameters, in one compiled call."""

from __future__ import annotations

from typing import Any

from hmog_xp import _backend as B
from hmog_xp.hmog import (
    HierarchicalMixtureOfGaussians,
    HMoGParameters,
    Standardization,
    canonical_latent_basis,
)

__all__ = ["fitted_state"]


def _fitted_state(
    model: HierarchicalMixtureOfGaussians, params: Any, standardization: Standardization
) -> tuple[Any, Any, HMoGParameters]:
    # One latent basis whatever the backend or the path: p(x) and labels are unchanged.
    params = canonical_latent_basis(model, params)
    generative = standardization.generative_to_data(model, model.to_generative(params))
    return params, standardization.params_to_data(model, params), generative


#: One compiled function on JAX (its few hundred small operations would otherwise each be
#: compiled on first use); the plain function elsewhere.
_compiled_fitted_state = B.jit(_fitted_state, static_argnums=(0,))


def fitted_state(
    model: HierarchicalMixtureOfGaussians, params: Any, standardization: Standardization
) -> tuple[Any, Any, HMoGParameters]:
    """Return the canonical standardised parameters, those in data units and the readable form.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The fitted model.
    params : array, shape (model.dim,)
        Natural parameters of the standardised data.
    standardization : Standardization
        The map from the data's units to the standardised ones.

    Returns
    -------
    params : array, shape (model.dim,)
        ``params`` in the canonical latent basis (same distribution; see
        :func:`~hmog_xp.hmog.canonical_latent_basis`).
    data_params : array, shape (model.dim,)
        The same distribution's natural parameters in the data's units.
    generative : HMoGParameters
        Its weights, latent means and covariances, loadings, bias and noise, in data units.
    """
    return _compiled_fitted_state(model, params, standardization)
