"""The three HMoG variants and their factories.

=====================  ==========================  ==========================  ==============
variant                lower LGM                   posterior / prior mixture   training
=====================  ==========================  ==========================  ==============
``DifferentiableHMoG`` latent rep ``pst_rep``      complete mixture of         gradient
                       (e.g. diagonal posteriors)  ``Normal(d, pst_rep)`` /
                                                   full Normals differing in
                                                   ``pst_rep``
``SymmetricHMoG``      full latent                 full Normals differing in   gradient;
                                                   ``lat_rep`` (both)          join_conjugated
``AnalyticHMoG``       full latent                 complete mixture of full    closed-form EM
                                                   Normals (both)
=====================  ==========================  ==========================  ==============
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp._validation import check_small
from hmog_xp.families import Normal
from hmog_xp.harmoniums import (
    AnalyticLinearGaussianModel,
    AnalyticMixture,
    LinearGaussianModel,
    Mixture,
)
from hmog_xp.harmoniums.closed_form import ClosedFormEM
from hmog_xp.hmog._analytic import AnalyticConversions, WhitenableHMoG
from hmog_xp.hmog.base import HierarchicalMixtureOfGaussians
from hmog_xp.reps import CovarianceRep, PositiveDefinite


def _check_compatible(lower: LinearGaussianModel, *uppers: Mixture) -> None:
    if not isinstance(lower, LinearGaussianModel):
        msg = f"lwr_hrm must be a LinearGaussianModel; got {lower!r}"
        raise ValidationError(msg)
    for upper in uppers:
        if not isinstance(upper, Mixture):
            msg = f"the upper harmoniums must be Mixture instances; got {upper!r}"
            raise ValidationError(msg)
        if upper.component_man.n != lower.lat_dim:
            msg = (
                f"upper mixture {upper!r} is over dimension {upper.component_man.n}, but the "
                f"lower harmonium has lat_dim={lower.lat_dim}"
            )
            raise ValidationError(msg)
    if len({upper.n_components for upper in uppers}) != 1:
        msg = f"the upper mixtures disagree on n_components: {uppers!r}"
        raise ValidationError(msg)


@dataclass(frozen=True, repr=False)
class DifferentiableHMoG(WhitenableHMoG, HierarchicalMixtureOfGaussians):  # numpydoc ignore=PR02
    """HMoG with restricted (e.g. diagonal) posteriors, trained by gradient ascent.

    Parameters
    ----------
    lwr_hrm : LinearGaussianModel
        ``LinearGaussianModel(p, obs_rep, d, pst_rep)``.
    pst_upr_hrm : AnalyticMixture
        ``AnalyticMixture(Normal(d, pst_rep), K)``: the posterior upper mixture.
    prr_upr_hrm : Mixture
        ``Mixture(Normal(d, PositiveDefinite()), K, sub_rep=pst_rep)``: the prior.
    """

    lwr_hrm: LinearGaussianModel
    pst_upr_hrm: Mixture
    prr_upr_hrm: Mixture

    def __post_init__(self) -> None:
        _check_compatible(self.lwr_hrm, self.pst_upr_hrm, self.prr_upr_hrm)
        pst_rep = self.lwr_hrm.pst_rep
        if self.pst_upr_hrm != AnalyticMixture(Normal(self.lat_dim, pst_rep), self.n_components):
            msg = (
                f"pst_upr_hrm must be AnalyticMixture(Normal({self.lat_dim}, {pst_rep!r}), "
                f"{self.n_components}) to match lwr_hrm; got {self.pst_upr_hrm!r}"
            )
            raise ValidationError(msg)
        expected = Mixture(Normal(self.lat_dim, PositiveDefinite()), self.n_components, pst_rep)
        if self.prr_upr_hrm != expected:
            msg = f"prr_upr_hrm must be {expected!r}; got {self.prr_upr_hrm!r}"
            raise ValidationError(msg)

    @property
    def lower_harmonium(self) -> LinearGaussianModel:
        """``lwr_hrm``."""
        return self.lwr_hrm

    @property
    def posterior_upper(self) -> Mixture:
        """``pst_upr_hrm``."""
        return self.pst_upr_hrm

    @property
    def prior_upper(self) -> Mixture:
        """``prr_upr_hrm``."""
        return self.prr_upr_hrm

    def _embed_prior(self, lat_params: Any) -> Any:
        latent, interaction, weights = self.pst_upr_hrm.split_coords(lat_params)
        embedded = self.pst_upr_hrm.component_man.embed_rep(latent, PositiveDefinite())
        return self.prr_upr_hrm.join_coords(embedded, interaction, weights)

    def _join_exact_prior(self, lkl_params: Any, prior: Any) -> Any:
        xp = B.array_namespace(lkl_params, prior)
        rho = self.conjugation_parameters(lkl_params)[1]
        latent, interaction, weights = self.prr_upr_hrm.split_coords(prior - rho)
        full = self.prr_upr_hrm.component_man
        location, precision = full.split_location_precision(latent)
        pst_rep = self.lwr_hrm.pst_rep
        restricted = full.rep.convert(precision, self.lat_dim, pst_rep)
        check_small(
            xp.abs(pst_rep.convert(restricted, self.lat_dim, full.rep) - precision)
            - 1e-9 * (1.0 + xp.abs(precision)),
            f"{self!r} cannot represent this generative form: the component precisions "
            f"plus AᵀΨ⁻¹A must have the {pst_rep!r} structure of the posteriors",
            xp=xp,
        )
        latent = self.pst_upr_hrm.component_man.join_location_precision(location, restricted)
        upper = self.pst_upr_hrm.join_coords(latent, interaction, weights)
        return xp.concat([lkl_params, upper], axis=-1)


@dataclass(frozen=True, repr=False)
class _SymmetricStructure(
    AnalyticConversions, WhitenableHMoG, HierarchicalMixtureOfGaussians, ClosedFormEM
):  # numpydoc ignore=PR02
    """Fields and structure shared by the variants whose prior and posterior coincide.

    Parameters
    ----------
    lwr_hrm : LinearGaussianModel
        Full-latent linear Gaussian model.
    upr_hrm : Mixture
        The upper mixture (posterior and prior).
    """

    lwr_hrm: LinearGaussianModel
    upr_hrm: Mixture

    @property
    def lower_harmonium(self) -> LinearGaussianModel:
        """``lwr_hrm``."""
        return self.lwr_hrm

    @property
    def posterior_upper(self) -> Mixture:
        """``upr_hrm``."""
        return self.upr_hrm

    @property
    def prior_upper(self) -> Mixture:
        """``upr_hrm``."""
        return self.upr_hrm


@dataclass(frozen=True, repr=False)
class SymmetricHMoG(_SymmetricStructure):  # numpydoc ignore=PR02
    """HMoG whose posterior and prior share one mixture manifold (``join_conjugated``).

    Parameters
    ----------
    lwr_hrm : AnalyticLinearGaussianModel
        ``AnalyticLinearGaussianModel(p, obs_rep, d)`` (full latent).
    upr_hrm : Mixture
        ``Mixture(Normal(d, PositiveDefinite()), K, sub_rep=lat_rep)``.
    """

    def __post_init__(self) -> None:
        _check_compatible(self.lwr_hrm, self.upr_hrm)
        if self.lwr_hrm.pst_rep != PositiveDefinite():
            msg = f"SymmetricHMoG needs a full-latent lwr_hrm; got {self.lwr_hrm!r}"
            raise ValidationError(msg)
        if self.upr_hrm.component_man.rep != PositiveDefinite():
            msg = f"SymmetricHMoG needs full-covariance upper components; got {self.upr_hrm!r}"
            raise ValidationError(msg)

    def _rep_description(self) -> str:
        return f"lat_rep={self.upr_hrm.varying_rep!r}"


@dataclass(frozen=True, repr=False)
class AnalyticHMoG(_SymmetricStructure):  # numpydoc ignore=PR02
    """Fully analytic HMoG: closed-form EM and exact mean ↔ natural conversions.

    Parameters
    ----------
    lwr_hrm : AnalyticLinearGaussianModel
        ``AnalyticLinearGaussianModel(p, obs_rep, d)`` (full latent).
    upr_hrm : AnalyticMixture
        ``AnalyticMixture(Normal(d, PositiveDefinite()), K)``.
    """

    def __post_init__(self) -> None:
        _check_compatible(self.lwr_hrm, self.upr_hrm)
        if not isinstance(self.lwr_hrm, AnalyticLinearGaussianModel):
            msg = f"AnalyticHMoG needs an AnalyticLinearGaussianModel; got {self.lwr_hrm!r}"
            raise ValidationError(msg)
        expected = AnalyticMixture(Normal(self.lat_dim, PositiveDefinite()), self.n_components)
        if self.upr_hrm != expected:
            msg = f"AnalyticHMoG needs upr_hrm={expected!r}; got {self.upr_hrm!r}"
            raise ValidationError(msg)

    def _rep_description(self) -> str:
        return "lat_rep=PositiveDefinite()"


def _rep(value: Any, name: str) -> CovarianceRep:
    """Accept a rep instance or class (``Diagonal()`` or ``Diagonal``)."""
    if isinstance(value, type) and issubclass(value, CovarianceRep):
        return value()
    if isinstance(value, CovarianceRep):
        return value
    msg = f"{name} must be PositiveDefinite, Diagonal or Scale; got {value!r}"
    raise ValidationError(msg)


def differentiable_hmog(
    obs_dim: int, obs_rep: Any, lat_dim: int, pst_rep: Any, n_components: int
) -> DifferentiableHMoG:
    """Build a :class:`DifferentiableHMoG` (gradient training, restricted posteriors).

    Parameters
    ----------
    obs_dim : int
        Observation dimension ``p``.
    obs_rep : CovarianceRep or its class
        Noise structure: ``PositiveDefinite``, ``Diagonal`` (factor analysis) or ``Scale``
        (probabilistic PCA).
    lat_dim : int
        Latent dimension ``d``.
    pst_rep : CovarianceRep or its class
        Posterior covariance structure (``Diagonal`` makes posteriors cheap).
    n_components : int
        Number of mixture components ``K``.

    Returns
    -------
    DifferentiableHMoG
        The model.
    """
    pst = _rep(pst_rep, "pst_rep")
    lower = LinearGaussianModel(obs_dim, _rep(obs_rep, "obs_rep"), lat_dim, pst)
    posterior = AnalyticMixture(Normal(lat_dim, pst), n_components)
    prior = Mixture(Normal(lat_dim, PositiveDefinite()), n_components, pst)
    return DifferentiableHMoG(lower, posterior, prior)


def symmetric_hmog(
    obs_dim: int, obs_rep: Any, lat_dim: int, lat_rep: Any, n_components: int
) -> SymmetricHMoG:
    """Build a :class:`SymmetricHMoG` (components differ in ``lat_rep``).

    Parameters
    ----------
    obs_dim : int
        Observation dimension ``p``.
    obs_rep : CovarianceRep or its class
        Noise structure.
    lat_dim : int
        Latent dimension ``d``.
    lat_rep : CovarianceRep or its class
        What varies across mixture components (``PositiveDefinite``: a complete mixture).
    n_components : int
        Number of mixture components ``K``.

    Returns
    -------
    SymmetricHMoG
        The model.
    """
    lower = AnalyticLinearGaussianModel(obs_dim, _rep(obs_rep, "obs_rep"), lat_dim)
    upper = Mixture(Normal(lat_dim, PositiveDefinite()), n_components, _rep(lat_rep, "lat_rep"))
    return SymmetricHMoG(lower, upper)


def analytic_hmog(obs_dim: int, obs_rep: Any, lat_dim: int, n_components: int) -> AnalyticHMoG:
    """Build an :class:`AnalyticHMoG` (closed-form EM).

    Parameters
    ----------
    obs_dim : int
        Observation dimension ``p``.
    obs_rep : CovarianceRep or its class
        Noise structure.
    lat_dim : int
        Latent dimension ``d``.
    n_components : int
        Number of mixture components ``K``.

    Returns
    -------
    AnalyticHMoG
        The model.
    """
    lower = AnalyticLinearGaussianModel(obs_dim, _rep(obs_rep, "obs_rep"), lat_dim)
    upper = AnalyticMixture(Normal(lat_dim, PositiveDefinite()), n_components)
    return AnalyticHMoG(lower, upper)
