"""HMoG readable parameters and starting points (mixed into the HMoG base class)."""

from __future__ import annotations

from types import ModuleType
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from hmog_xp import _backend as B
from hmog_xp.families import Normal
from hmog_xp.harmoniums import (
    MixtureParameters,
    check_sample_size,
    check_start_options,
    dominating_in_rep,
    ppca_start,
    spread_start,
)
from hmog_xp.reps import PositiveDefinite

if TYPE_CHECKING:
    from hmog_xp.harmoniums import LinearGaussianModel, Mixture


class HMoGParameters(NamedTuple):
    """Generative form ``z ~ Cat(π)``, ``y | z=k ~ N(μ_k, Σ_k)``, ``x | y ~ N(A y + b, Ψ)``.

    Attributes
    ----------
    weights : array, shape (K,)
        ``π``.
    means : array, shape (K, d)
        ``μ_k``.
    covariances : array, shape (K, d, d)
        Dense ``Σ_k``.
    loadings : array, shape (p, d)
        ``A``.
    bias : array, shape (p,)
        ``b``.
    noise : array
        ``Ψ`` in the observable rep's form: ``(p, p)``, ``(p,)`` or a 0-d variance.
    """

    weights: Any
    means: Any
    covariances: Any
    loadings: Any
    bias: Any
    noise: Any


class _HMoGLike(Protocol):
    """What the mixin needs from the HMoG class."""

    @property
    def lower_harmonium(self) -> LinearGaussianModel: ...

    @property
    def posterior_upper(self) -> Mixture: ...

    @property
    def prior_upper(self) -> Mixture: ...

    @property
    def lkl_dim(self) -> int: ...

    def split_conjugated(self, params: Any) -> tuple[Any, Any]: ...

    def conjugation_parameters(self, lkl_params: Any) -> tuple[Any, Any]: ...

    def _check_sample(self, xs: Any, params: Any = None) -> ModuleType: ...

    def _upper_for_prior(self, lkl_params: Any, upper: Any) -> Any: ...

    def _join_exact_prior(self, lkl_params: Any, prior: Any) -> Any: ...


class ReadableHMoG:
    """Generative form, observable mixture and initialisation of an HMoG."""

    def to_generative(self: _HMoGLike, params: Any) -> HMoGParameters:
        """Return ``(weights, means, covariances, loadings, bias, noise)``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        HMoGParameters
            The prior mixture over ``y`` (dense covariances) and the LGM likelihood.
        """
        lkl_params, prior = self.split_conjugated(params)
        loadings, bias, noise = self.lower_harmonium.likelihood_generative(lkl_params)
        weights, means, covariances = self.prior_upper.to_generative(prior)
        return HMoGParameters(weights, means, covariances, loadings, bias, noise)

    def observable_mixture(self: _HMoGLike, params: Any) -> MixtureParameters:
        """The exact marginal ``p(x)``: a Gaussian mixture in ``R^p``.

        Parameters
        ----------
        params : array, shape (dim,)
            Natural parameters.

        Returns
        -------
        MixtureParameters
            Weights ``(K,)``, means ``A μ_k + b`` ``(K, p)``, covariances
            ``A Σ_k Aᵀ + Ψ`` ``(K, p, p)``.
        """
        generative = ReadableHMoG.to_generative(self, params)
        weights, means, covariances, loadings, bias, noise = generative
        xp = B.array_namespace(loadings)
        lower = self.lower_harmonium
        noise_dense = lower.obs_rep.unpack(
            lower.obs_rep.from_readable(noise, lower.obs_dim, "noise"), lower.obs_dim
        )
        observable_means = means @ xp.matrix_transpose(loadings) + bias
        observable_covariances = loadings @ covariances @ xp.matrix_transpose(loadings)
        return MixtureParameters(weights, observable_means, observable_covariances + noise_dense)

    def from_generative(
        self: _HMoGLike,
        weights: Any,
        means: Any,
        covariances: Any,
        loadings: Any,
        bias: Any,
        noise: Any,
    ) -> Any:
        """Natural parameters from the generative form (inverse of ``to_generative``).

        Every variant accepts the forms it can represent exactly: a Symmetric model needs
        components that differ only in its ``lat_rep``, a Differentiable model needs prior
        precisions ``Σ_k⁻¹ = Λ_k − AᵀΨ⁻¹A`` with ``Λ_k`` in its posterior rep; anything else
        is a ``ValidationError`` naming the mismatch.

        Parameters
        ----------
        weights : array, shape (K,)
            Mixture weights (positive, summing to one).
        means : array, shape (K, d)
            Component means.
        covariances : array, shape (K, d, d)
            Dense SPD component covariances.
        loadings : array, shape (p, d)
            ``A``.
        bias : array, shape (p,)
            ``b``.
        noise : array
            ``Ψ``: ``(p, p)``, ``(p,)`` or a 0-d variance by observable rep.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        lkl_params = self.lower_harmonium.likelihood_from_readable(loadings, bias, noise)
        prior = self.prior_upper.from_generative(weights, means, covariances)
        return self._join_exact_prior(lkl_params, prior)

    def initialize(
        self: _HMoGLike,
        rng: Any,
        shape: float = 0.1,
        *,
        xp: ModuleType | None = None,
        dtype: Any = None,
    ) -> Any:
        """Random valid parameters: random loadings, a mixture of random means.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness; picks the namespace when ``xp`` is None.
        shape : float, optional
            Scale of the random loadings.
        xp : module, optional
            Namespace.
        dtype : dtype, optional
            Floating dtype.

        Returns
        -------
        array, shape (dim,)
            Natural parameters.
        """
        source = B.random_source(rng, xp)
        lower = self.lower_harmonium.initialize(source, shape, xp=source.xp, dtype=dtype)
        upper = self.posterior_upper.initialize(source, xp=source.xp, dtype=lower.dtype)
        return self._upper_for_prior(lower[: self.lkl_dim], upper)

    def initialize_from_sample(
        self: _HMoGLike, rng: Any, xs: Any, shape: float = 0.1, min_var: float = 1e-6
    ) -> Any:
        """Fit starting parameters to data: PPCA loadings, then a mixture on the factor scores.

        Parameters
        ----------
        rng : int, generator or JAX key
            Randomness.
        xs : array, shape (N, p)
            Observations, ``N >= n_components``.
        shape : float, optional
            Jitter of the loadings (see ``LinearGaussianModel.initialize_from_sample``).
        min_var : float, optional
            Variance floor for the noise and the mixture components.

        Returns
        -------
        array, shape (dim,)
            Natural parameters in ``xs``'s namespace.
        """
        xp = self._check_sample(xs)
        check_start_options(shape, min_var)
        check_sample_size(self.posterior_upper, xs.shape[0])
        source = B.random_source(rng, xp, B.device_of(xs))
        jitter = source.normal((xs.shape[1], self.lower_harmonium.lat_dim), dtype=xs.dtype)
        order = source.uniform((xs.shape[0],), dtype=xs.dtype)
        return _compiled_sample_start(self, xs, jitter, order, float(shape), float(min_var))


def sample_start(
    model: _HMoGLike, xs: Any, jitter: Any, order: Any, shape: float, min_var: float
) -> Any:
    """PPCA loadings jittered by ``jitter``, then a mixture on the factor scores.

    The arrays part of :meth:`ReadableHMoG.initialize_from_sample`, after its checks and
    draws: :func:`~hmog_xp.harmoniums.ppca_start` of ``xs``, then
    :func:`~hmog_xp.harmoniums.spread_start` of the posterior latent means.

    Parameters
    ----------
    model : HierarchicalMixtureOfGaussians
        The model.
    xs : array, shape (N, p)
        Observations, ``N >= n_components``.
    jitter : array, shape (p, d)
        Standard normal draws moving the loadings.
    order : array, shape (N,)
        Uniform draws choosing the rows that become component means.
    shape : float
        Jitter of the loadings, in noise standard deviations.
    min_var : float
        Variance floor for the noise and the mixture components.

    Returns
    -------
    array, shape (dim,)
        Natural parameters in ``xs``'s namespace.
    """
    lower_model = model.lower_harmonium
    lower = ppca_start(lower_model, xs, jitter, shape, min_var)
    scores = lower_model.posterior_latent_mean(lower, xs)
    upper = spread_start(model.posterior_upper, scores, order, min_var)
    return model._upper_for_prior(lower[: model.lkl_dim], upper)


#: :func:`sample_start` compiled once per model, shape and options on JAX.
_compiled_sample_start = B.jit(sample_start, static_argnums=(0, 4, 5))


def conjugation_compensation(lower: LinearGaussianModel, lkl_params: Any) -> Any:
    """The closest undoing of the conjugation parameters ``ρ`` in the posterior rep.

    Conjugation adds ``ρ = (WᵀΛ_x⁻¹h_x, precision −G)``, ``G = WᵀΛ_x⁻¹W``, to every component.
    The compensation has linear term ``−WᵀΛ_x⁻¹h_x`` and precision
    ``S = dominating_in_rep(pst_rep, G)``, so adding it to the upper mixture's ``θ_y`` keeps
    the prior precisions ``Λ_k + S − G ⪰ Λ_k`` positive definite. When ``G`` has the rep's
    structure (e.g. diagonal after a PPCA start with diagonal posteriors), ``S = G`` and the
    prior is exactly the mixture given.

    Parameters
    ----------
    lower : LinearGaussianModel
        The lower harmonium.
    lkl_params : array, shape (lkl_dim,)
        Likelihood parameters.

    Returns
    -------
    array, shape (Normal(d, pst_rep).dim,)
        The compensation to add to the upper mixture's ``θ_y``.
    """
    d = lower.lat_dim
    rho = lower.conjugation_parameters(lkl_params)[1]
    full = Normal(d, PositiveDefinite())
    rho_location, rho_precision = full.split_location_precision(rho)
    gram = -PositiveDefinite().unpack(rho_precision, d)
    family = lower.pst_man
    return family.join_location_precision(-rho_location, dominating_in_rep(family.rep, gram))
