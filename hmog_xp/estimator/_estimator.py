"""The scikit-learn style estimator :class:`HMoG`."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sklearn.base import BaseEstimator, DensityMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import TransformerTags, check_random_state
from sklearn.utils.validation import check_is_fitted

from hmog_xp import _backend as B
from hmog_xp.estimator import _persist
from hmog_xp.estimator._fitted import fitted_state
from hmog_xp.estimator._inference import FittedMethods
from hmog_xp.estimator._inputs import check_fit_data, to_caller
from hmog_xp.estimator._missing import (
    average_log_density_shift,
    check_observed_columns,
    has_missing_entries,
    marginalized_model,
)
from hmog_xp.estimator._params import check_hyperparameters, model_for
from hmog_xp.estimator._scale import is_dask_array, known_chunks, partial_fit, prepare_dask
from hmog_xp.estimator._training import (
    RunResult,
    run_once,
    standardization_for,
)
from hmog_xp.hmog import Standardization


class HMoG(FittedMethods, DensityMixin, BaseEstimator):
    """Hierarchical mixture of Gaussians: factor analysis and a Gaussian mixture, fit jointly.

    ``z ~ Cat(π)``, ``y | z=k ~ N(μ_k, Σ_k)`` in ``R^d``, ``x | y ~ N(A y + b, Ψ)`` in
    ``R^p``. Clusters are the mixture components, factor scores are ``E[y | x]``. Works on
    any supported backend: arrays of a backend go in, results come out in the same namespace.

    Parameters
    ----------
    n_components : int, default=1
        Number of mixture components ``K``.
    n_factors : int or None, default=None
        Latent dimension ``d < n_features`` (None: ``min(n_features - 1, 10)``).
    noise : {'diagonal', 'full', 'isotropic'}, default='diagonal'
        Structure of ``Ψ``: factor analysis, full covariance, or probabilistic PCA.
    variant : {'analytic', 'differentiable', 'symmetric'}, default='analytic'
        ``'analytic'`` trains by closed-form EM; the other two by ``solver`` on the exact
        log-likelihood gradient (see the user guide for the trade-offs).
    latent_rep : {'diagonal', 'full', 'isotropic'}, default='diagonal'
        Posterior covariance structure (differentiable) or what varies across components
        (symmetric); the analytic variant always has full latent components.
    missing : {'error', 'marginalize'}, default='error'
        What a NaN entry means. ``'error'``: NaN is refused (impute first).
        ``'marginalize'``: NaN entries are missing at random, and every method uses the
        exact marginal distribution of each row's observed entries: ``fit`` runs EM on
        them (the E-step conditions on a row's observed coordinates, the M-step uses the
        expected statistics of the missing ones; Ghahramani & Jordan 1994), ``score_samples``
        gives ``log p(x_O)``, ``predict``/``predict_proba``/``transform`` condition on
        ``x_O``, and :meth:`impute` fills the holes. Needs ``variant='analytic'`` and
        diagonal or isotropic noise. Every row needs one observed entry, and the training
        data every column; infinities are never missing values. The starts (and a callable
        ``init``) see the data with each NaN at its column's mean. Data without NaN give
        the same results as with ``'error'``.
    max_iter : int, default=200
        Maximum number of EM or optimiser steps per initialisation.
    tol : float, default=1e-6
        Stop when the relative change of the average log-likelihood is at most ``tol`` per
        step. EM measures it over the last 10 steps and also stops once the change is within
        the log-likelihood's rounding noise (see :func:`hmog_xp.fit_em`), so float32 data
        neither stop on a rounding plateau nor run on at the optimum; and it keeps going while
        the climb still to come, extrapolated from how fast the gains shrink, exceeds the
        tolerance, so a slow crawl is not taken for convergence.
    accelerate : bool, default=True
        Run EM with SQUAREM (Varadhan & Roland 2008; :func:`hmog_xp.fit_em`): each iteration
        of three EM steps extrapolates along the EM path and keeps the extrapolation only if
        it is valid and at least as likely as the plain path. It reaches the same maxima in
        several times fewer EM steps on real data (``max_iter`` counts EM steps). False:
        plain EM, whose log-likelihood never decreases from one step to the next. Fits of
        Dask arrays use it too; :meth:`partial_fit` (online EM) does not.
    n_init : int, default=1
        Number of initialisations; the best final log-likelihood is kept.
    init : {'kmeans++', 'random'}, callable or parameters, default='kmeans++'
        ``'kmeans++'``: the more likely of two starts drawn from the restart's seed: k-means
        in ``x`` space, factor analysis of the within-group covariance (PPCA for isotropic
        or full noise) and the groups' factor scores as components; or PPCA loadings and
        k-means on their factor scores. ``'random'``: the first kind from a random
        partition of the rows.
        A callable ``init(model, X, seed)`` may return either of the following: an
        ``HMoGParameters`` (or dict with its fields) or natural parameters of the model.
    reg_covar : float, default=1e-6
        Floor on the eigenvalues of every latent component covariance at each M-step (only
        eigenvalues below it are raised, so optima whose eigenvalues clear it do not move). The
        latent space is whitened at every step (its marginal covariance is the identity), so
        this is unit-free, a floor relative to unit variance: values around 0.01-0.05 keep
        components from collapsing onto groups of near-duplicate points (the digits demo uses
        0.05).
    noise_floor : float, default=1e-6
        Floor (``> 0``) on every noise variance of the standardised data at each M-step:
        only a variance the M-step would put below it is raised to it (keeps constant columns
        finite; optima above the floor do not move). Unit-free: in the data's units the floor
        of column ``j`` is ``noise_floor · scale_[j]²``, relative to the column's variance.
    learning_rate : float, default=0.01
        Adam step size (gradient-trained variants with ``solver='adam'`` or mini-batches).
    batch_size : int or None, default=None
        Mini-batch size for gradient training (None: full batch).
    solver : {'natural', 'lbfgs', 'adam'}, default='natural'
        Optimiser of the gradient-trained variants; both natural-gradient methods reach the
        maximum likelihood without tuning (measured in the user guide). ``'natural'``:
        where the upper mixture is complete (``variant='symmetric', latent_rep='full'``)
        the mirror map ``η ↦ θ`` is closed form and its unit natural-gradient step is an
        EM step, so it runs EM (with ``accelerate``, ``reg_covar`` and ``noise_floor``);
        otherwise as ``'lbfgs'``. ``'lbfgs'``: L-BFGS whose initial inverse Hessian is the
        inverse Fisher matrix, with a line search that rejects invalid points and the
        ``noise_floor`` as a bound (``max_iter`` steps, ``tol`` twice in a row). With the
        named ``init`` strategies, L-BFGS starts from closed-form EM on the analytic model
        of the same shapes, projected into the variant's family, when that is more likely
        than the usual start (see the user guide's gradient page). ``'adam'``: Adam with
        ``learning_rate``. Mini-batches (``batch_size``) always use Adam.
    learning_offset : float, default=1.0
        ``t₀`` of the online-EM step sizes ``γ_t = (t + t₀)^(−κ)`` (:meth:`partial_fit`).
    learning_decay : float, default=0.6
        ``κ ∈ (0.5, 1]`` of the online-EM step sizes.
    backend : str or None, default=None
        Compute backend (``'numpy'``, ``'jax'``, ``'torch'``, ``'cupy'``,
        ``'array_api_strict'``); None: the input's backend (NumPy for lists and frames).
    random_state : int, RandomState or None, default=None
        Seeds the initialisations and :meth:`sample`.
    verbose : int, default=0
        Print the log-likelihood every ``verbose_interval`` steps when positive.
    verbose_interval : int, default=10
        Steps between progress lines.
    callback : callable or None, default=None
        ``callback(iteration, log_likelihood)`` after every step (e.g. a progress bar); with
        ``accelerate``, after every SQUAREM iteration (``iteration`` counts EM steps, three
        per iteration).

    Attributes
    ----------
    weights_ : array, shape (n_components,)
        Mixture weights ``π``.
    means_ : array, shape (n_components, n_factors)
        Latent component means ``μ_k`` (in the whitened latent space). The latent basis is
        the canonical one of :func:`~hmog_xp.canonical_latent_basis` (factor 1 the
        direction the data resolve best, signs by a fixed rule), so factor scores agree
        across backends and runs that reach the same fit.
    covariances_ : array, shape (n_components, n_factors, n_factors)
        Latent component covariances ``Σ_k``.
    loadings_ : array, shape (n_features, n_factors)
        ``A``.
    bias_ : array, shape (n_features,)
        ``b``.
    noise_ : array
        ``Ψ``: shape ``(n_features,)`` (diagonal), ``(n_features, n_features)`` (full) or
        ``()`` (isotropic).
    params_ : array, shape (model_.dim,)
        Natural parameters in the data's units (``model_.log_observable_density(params_, X)``
        is ``score_samples(X)``). For data with large offsets they are poorly conditioned,
        so the estimator's own methods use the same model in standardised coordinates,
        ``Standardization(location_, scale_).params_from_data(model_, params_)``.
    location_ : array, shape (n_features,)
        Column centres of the standardisation (the training means).
    scale_ : array, shape (n_features,)
        Column scales of the standardisation: the training standard deviations (one common
        value for isotropic noise); a constant column is scaled by its absolute value (1 when
        it is zero).
    model_ : HierarchicalMixtureOfGaussians
        The model object (use it for everything the low-level API offers).
    converged_ : bool
        Whether the best initialisation reached ``tol``.
    n_iter_ : int
        Steps taken by the best initialisation.
    log_likelihood_ : list of float
        Average log-likelihood history of the best initialisation.
    lower_bound_ : float
        Average log-likelihood of the returned parameters: the last EM step's, or the best
        one gradient training saw (it never returns worse than its start).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Feature names, when ``fit`` saw a frame with string column names.

    Notes
    -----
    Small fits run single-threaded. When one EM step's work ``N · (p · d + K · d²)`` is
    below ``1e7`` (about 20 ms on one core), :meth:`fit`, :meth:`partial_fit` and
    :func:`~hmog_xp.select_model` limit PyTorch's intra-op threads and NumPy's BLAS threads
    to one for the fit and restore them afterwards: on such sizes thread start-up and
    spinning cost more than they save (a wine fit on PyTorch with two threads: 8.7 s before,
    1.2 s now; see the user guide's backends page). Larger fits use your settings, which
    are never raised. JAX (whose XLA thread pool is fixed at start-up), CuPy and Dask
    arrays are not affected.
    """

    def __init__(
        self,
        n_components: int = 1,
        n_factors: int | None = None,
        *,
        noise: str = "diagonal",
        variant: str = "analytic",
        latent_rep: str = "diagonal",
        missing: str = "error",
        max_iter: int = 200,
        tol: float = 1e-6,
        accelerate: bool = True,
        n_init: int = 1,
        init: Any = "kmeans++",
        reg_covar: float = 1e-6,
        noise_floor: float = 1e-6,
        learning_rate: float = 0.01,
        batch_size: int | None = None,
        solver: str = "natural",
        learning_offset: float = 1.0,
        learning_decay: float = 0.6,
        backend: str | None = None,
        random_state: Any = None,
        verbose: int = 0,
        verbose_interval: int = 10,
        callback: Callable[[int, float], object] | None = None,
    ) -> None:
        self.n_components = n_components
        self.n_factors = n_factors
        self.noise = noise
        self.variant = variant
        self.latent_rep = latent_rep
        self.missing = missing
        self.max_iter = max_iter
        self.tol = tol
        self.accelerate = accelerate
        self.n_init = n_init
        self.init = init
        self.reg_covar = reg_covar
        self.noise_floor = noise_floor
        self.learning_rate = learning_rate
        self.batch_size = batch_size
        self.solver = solver
        self.learning_offset = learning_offset
        self.learning_decay = learning_decay
        self.backend = backend
        self.random_state = random_state
        self.verbose = verbose
        self.verbose_interval = verbose_interval
        self.callback = callback

    def __sklearn_tags__(self) -> Any:
        """Return scikit-learn's tags: a density estimator that also transforms.

        Returns
        -------
        sklearn.utils.Tags
            Tags with ``transformer_tags`` set (``transform`` keeps float32 and float64).
        """
        tags = super().__sklearn_tags__()
        tags.transformer_tags = TransformerTags(preserves_dtype=["float64", "float32"])
        return tags

    # -- fitting -----------------------------------------------------------------------------

    def fit(self, X: Any, y: Any = None) -> HMoG:
        """Fit the model (``n_init`` initialisations, the best log-likelihood kept).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data (any supported backend, a list, a frame).
        y : None
            Ignored.

        Returns
        -------
        HMoG
            The fitted estimator.
        """
        hyper = check_hyperparameters(self)  # NumPy scalars as Python numbers
        self.__dict__.pop("_online_state", None)
        seeds = check_random_state(self.random_state).randint(2**31 - 1, size=self.n_init)
        if is_dask_array(X):
            X = known_chunks(X)  # one pass if the chunk sizes are unknown
            model, run, caller_xp, standardization, shift = prepare_dask(self, X, hyper)
            n_obs = int(X.shape[0])
            compute_xp, work = None, 0.0  # Dask's scheduler decides its threads
        else:
            xs, caller_xp = check_fit_data(self, X)
            n_obs = int(xs.shape[0])
            model = model_for(hyper, xs.shape[0], xs.shape[1])
            compute_xp = B.array_namespace(xs)
            work = B.threads.step_work(xs, model.n_components, model.lat_dim)
            missing = hyper.missing == "marginalize" and has_missing_entries(xs)
            if missing:
                check_observed_columns(xs)
            standardization = standardization_for(self, xs, missing)
            zs = standardization.standardize(xs)
            shift = average_log_density_shift(standardization, xs, missing)

            finished: list[tuple[Any, RunResult]] = []  # identical starts are fitted once
            marginalized = marginalized_model(model, zs) if missing else None

            def run(seed: int, callback: Callable[[int, float], object] | None) -> RunResult:
                return run_once(
                    hyper, model, zs, seed, callback, standardization, finished, marginalized
                )

        with B.compute_threads(compute_xp, work):  # small work: one thread (class Notes)
            runs = [
                run(int(seed), self._progress(restart, shift)) for restart, seed in enumerate(seeds)
            ]
            best = max(runs, key=lambda result: result.log_likelihood)
            self._set_fitted(model, best.params, caller_xp, standardization)
        self.converged_ = bool(best.converged)
        self.n_iter_ = int(best.n_iter)
        self.log_likelihood_ = [float(value) + shift for value in best.log_likelihoods]
        self.lower_bound_ = best.log_likelihood + shift
        if not self.converged_ and self.max_iter > 0:
            msg = (
                f"{type(self).__name__} did not converge in max_iter={self.max_iter} steps "
                f"(tol={self.tol}); increase max_iter or tol"
            )
            warnings.warn(msg, ConvergenceWarning, stacklevel=2)
        self._warn_empty_components(n_obs)
        return self

    def partial_fit(self, X: Any, y: Any = None) -> HMoG:
        """Update the model with one mini-batch by online EM (analytic variant).

        The first call initialises on its batch (as ``fit`` would, one restart) and takes
        one EM step; every call then blends the batch's posterior statistics into running
        averages with weight ``γ_t = (t + learning_offset)^(−learning_decay)`` and
        re-estimates the parameters in closed form (Cappé & Moulines, 2009).
        ``log_likelihood_`` records each batch's average log-likelihood before its update.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            A mini-batch (a Dask array is computed first).
        y : None
            Ignored.

        Returns
        -------
        HMoG
            The updated estimator.
        """
        if getattr(self, "_online_state", None) is None:
            check_hyperparameters(self)
            name = self.backend or B.transfer.backend_of_array(X) or "numpy"
            n_factors = self.n_factors or 10  # at least the default's d: never underestimates
        else:
            name, n_factors = self._compute_name, self.model_.lat_dim
        work = B.threads.step_work(X, self.n_components, n_factors)
        with B.compute_threads(name, work):  # small batches: one thread (class Notes)
            partial_fit(self, X)
        return self

    def _progress(self, restart: int, shift: float) -> Callable[[int, float], None] | None:
        """Report a restart's steps; ``shift`` turns standardised log-likelihoods into data's."""
        if not self.verbose and self.callback is None:
            return None

        interval = max(1, self.verbose_interval)
        last = [0]  # the step last reported (accelerated EM reports every third step)

        def report(iteration: int, standardized: float) -> None:
            log_likelihood = standardized + shift
            if self.verbose and iteration // interval > last[0] // interval:
                print(f"init {restart + 1}, step {iteration}: log-likelihood {log_likelihood:.6f}")
            last[0] = iteration
            if self.callback is not None:
                self.callback(iteration, log_likelihood)

        return report

    def _set_fitted(
        self,
        model: Any,
        params: Any,
        caller_xp: Any,
        standardization: Standardization | None = None,
    ) -> None:
        """Store the model, its standardised parameters, the map and the readable form.

        ``params`` are the natural parameters of the standardised data
        ``standardization.standardize(X)`` (None: the identity map); every inference
        method works there, and the readable attributes and ``params_`` are the exact
        transforms to the data's units.
        """
        if standardization is None:
            standardization = Standardization.identity(model.obs_man.n, params)
        params, self.params_, generative = fitted_state(model, params, standardization)
        self.model_ = model
        self._standard_params = params
        self._standardization = standardization
        self.location_ = standardization.location
        self.scale_ = standardization.scale
        self._compute_name = B.backend_name_of(B.array_namespace(params))
        self.weights_ = generative.weights
        self.means_ = generative.means
        self.covariances_ = generative.covariances
        self.loadings_ = generative.loadings
        self.bias_ = generative.bias
        self.noise_ = generative.noise
        self._caller_name = B.backend_name_of(caller_xp)

    def _warn_empty_components(self, n_obs: int) -> None:
        weights = [float(w) for w in to_caller(self.weights_, B.namespace_for("numpy"))]
        empty = [k for k, weight in enumerate(weights) if weight * n_obs < 1.0]
        if empty:
            msg = (
                f"components {empty} hold less than one sample's weight (they collapsed onto "
                f"the pooled latent distribution); consider fewer components"
            )
            warnings.warn(msg, ConvergenceWarning, stacklevel=3)

    def fit_predict(self, X: Any, y: Any = None) -> Any:
        """Fit and return the most probable component of every sample.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.
        y : None
            Ignored.

        Returns
        -------
        array, shape (n_samples,)
            Component labels.
        """
        return self.fit(X).predict(X)

    def fit_transform(self, X: Any, y: Any = None) -> Any:
        """Fit and return the factor scores of ``X``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.
        y : None
            Ignored.

        Returns
        -------
        array, shape (n_samples, n_factors)
            ``E[y | x]``.
        """
        return self.fit(X).transform(X)

    # -- persistence -------------------------------------------------------------------------

    def save(self, path: str | Path) -> Path:
        """Save the fitted model to a backend-neutral ``.npz`` file.

        Parameters
        ----------
        path : str or Path
            Destination (``.npz`` appended when missing), replaced atomically.

        Returns
        -------
        Path
            The file written.
        """
        check_is_fitted(self, "params_")
        return _persist.save(self, path)

    @classmethod
    def load(cls, path: str | Path, *, backend: str | None = None) -> HMoG:
        """Load a model saved by :meth:`save`, on any backend.

        Parameters
        ----------
        path : str or Path
            The saved file; any damage raises :class:`~hmog_xp.ModelFileError`.
        backend : str, optional
            Backend to load into (default: the one it was fitted on).

        Returns
        -------
        HMoG
            A fitted estimator.
        """
        return _persist.load(cls, path, backend=backend)
