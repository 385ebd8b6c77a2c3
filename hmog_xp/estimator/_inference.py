"""Inference on a fitted :class:`HMoG`: labels, probabilities, scores, criteria, samples."""

from __future__ import annotations

import math
from typing import Any

from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from hmog_xp import _backend as B
from hmog_xp.estimator._inputs import check_data, to_caller
from hmog_xp.estimator._params import as_int, check_missing_settings
from hmog_xp.estimator._scale import is_dask_array, lazy_impute, lazy_method, n_rows
from hmog_xp.estimator._training import n_free_parameters
from hmog_xp.hmog import MarginalizedHMoG, Standardization


class FittedMethods:
    """Methods of a fitted estimator (mixed into :class:`HMoG`).

    They read ``model_``, ``params_`` and the names of the compute and caller backends set
    by ``fit`` or ``load``; every result comes back in the namespace of the ``X`` given (a
    lazy Dask array, computed chunk-wise, for a Dask ``X``).
    """

    model_: Any
    params_: Any
    _standard_params: Any
    _standardization: Standardization
    latent_rep: str
    missing: str
    random_state: Any
    _compute_name: str
    _caller_name: str

    @property
    def _xp(self) -> Any:
        """The compute namespace of the fitted parameters (modules do not pickle)."""
        return B.namespace_for(self._compute_name)

    def _data(self, X: Any, missing: bool | None = None) -> tuple[Any, Any]:
        check_is_fitted(self, "params_")
        return check_data(
            self, X, reset=False, xp=self._xp, dtype=self.params_.dtype, missing=missing
        )

    def _standardized(self, X: Any) -> tuple[Any, Any]:
        """``X`` validated and mapped to the coordinates the model was fitted in."""
        xs, caller_xp = self._data(X)
        return self._standardization.standardize(xs), caller_xp

    def _inference_model(self, missing: bool | None = None) -> Any:
        """The model the inference methods use: ``model_``, or its marginalising wrapper.

        With ``missing='marginalize'`` (or ``missing=True``) rows holding NaN entries get the
        exact marginal of their observed entries; complete inputs still go through
        ``model_`` itself, so they get exactly the complete-data results.
        """
        if missing is None:
            missing = self.missing == "marginalize"
        if not missing:
            return self.model_
        settings = self.get_params(deep=False)  # type: ignore[attr-defined]
        check_missing_settings({**settings, "missing": "marginalize"})
        return MarginalizedHMoG(self.model_)

    def _apply(self, method: str, model_method: str, X: Any) -> Any:
        """Run ``model_.<model_method>`` on ``X`` (chunk-wise and lazily for a Dask array).

        The result comes back in ``X``'s namespace; ``method`` names the estimator method
        (and the lazy Dask helper).
        """
        if is_dask_array(X):
            return lazy_method(self, X, method)  # type: ignore[arg-type]
        zs, caller_xp = self._standardized(X)
        result = _model_method(self._inference_model(), model_method, self._standard_params, zs)
        if method == "score_samples":
            result = result + self._log_density_shift(zs)
        return to_caller(result, caller_xp)

    def _log_density_shift(self, zs: Any) -> Any:
        """The log-Jacobian from the fitted coordinates back to ``X``'s (per row, if holed)."""
        xp = B.array_namespace(zs)
        if self.missing == "marginalize" and bool(xp.any(xp.isnan(zs))):
            return self._standardization.row_log_density_shift(zs)
        return self._standardization.log_density_shift()

    def predict(self, X: Any) -> Any:
        """Return the most probable component of every sample.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.

        Returns
        -------
        array of int, shape (n_samples,)
            Component labels.
        """
        return self._apply("predict", "posterior_hard_assignment", X)

    def predict_proba(self, X: Any) -> Any:
        """Return the posterior component probabilities ``p(z = k | x)``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.

        Returns
        -------
        array, shape (n_samples, n_components)
            Rows sum to one.
        """
        return self._apply("predict_proba", "posterior_soft_assignments", X)

    def transform(self, X: Any) -> Any:
        """Return the factor scores ``E[y | x]``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.

        Returns
        -------
        array, shape (n_samples, n_factors)
            Posterior latent means.
        """
        return self._apply("transform", "posterior_latent_mean", X)

    def score_samples(self, X: Any) -> Any:
        """Return the log-density ``log p(x)`` of every sample.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.

        Returns
        -------
        array, shape (n_samples,)
            Log-densities.
        """
        return self._apply("score_samples", "log_observable_density", X)

    def score(self, X: Any, y: Any = None) -> float:
        """Return the average log-likelihood per sample.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.
        y : None
            Ignored.

        Returns
        -------
        float
            ``mean_n log p(x_n)``.
        """
        if is_dask_array(X):
            lazy = lazy_method(self, X, "score_samples")  # type: ignore[arg-type]
            return float(lazy.mean().compute())
        zs, _ = self._standardized(X)
        model = self._inference_model()
        average = _model_method(model, "average_log_observable_density", self._standard_params, zs)
        shift = self._log_density_shift(zs)
        if not isinstance(shift, float):
            shift = float(B.array_namespace(zs).mean(shift))
        return float(average) + shift

    def impute(self, X: Any, *, sample: bool = False, random_state: Any = None) -> Any:
        """Return ``X`` with every NaN entry filled in under the fitted model.

        A NaN entry is read as missing at random whatever ``missing`` is: the model gives
        the conditional distribution of each row's missing entries given its observed ones,
        exactly (diagonal or isotropic noise). Observed entries are returned unchanged.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data with NaN entries (a Dask array gives a lazy Dask array); every row needs
            one observed entry, and infinities are refused.
        sample : bool, default=False
            False: the conditional mean ``E[x_M | x_O]``. True: a draw from ``p(x_M | x_O)``
            (a component, then the factors, then the noise).
        random_state : int, RandomState or None, default=None
            Seeds the draws (None: the estimator's ``random_state``, as :meth:`sample`).

        Returns
        -------
        array, shape (n_samples, n_features)
            The completed data, in ``X``'s namespace.
        """
        check_is_fitted(self, "params_")
        model = self._inference_model(missing=True)
        seed = None
        if sample:
            seeds = check_random_state(self.random_state if random_state is None else random_state)
            seed = int(seeds.randint(2**31 - 1))
        if is_dask_array(X):
            return lazy_impute(self, X, seed)  # type: ignore[arg-type]
        xs, caller_xp = self._data(X, missing=True)
        zs = self._standardization.standardize(xs)
        if seed is None:
            filled = model.impute(self._standard_params, zs)
        else:
            source = B.random_source(seed, self._xp, B.device_of(xs))
            filled = model.impute_sample(source, self._standard_params, zs)
        xp = B.array_namespace(xs)
        completed = xp.where(xp.isnan(xs), self._standardization.unstandardize(filled), xs)
        return to_caller(completed, caller_xp)

    def n_parameters(self) -> int:
        """Return the number of free parameters (used by :meth:`bic` and :meth:`aic`).

        Returns
        -------
        int
            Natural parameter count minus the latent re-parametrisations that leave ``p(x)``
            unchanged.
        """
        check_is_fitted(self, "params_")
        return n_free_parameters(self.model_, self.latent_rep)

    def bic(self, X: Any) -> float:
        """Return the Bayesian information criterion on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.

        Returns
        -------
        float
            ``−2 log L + n_parameters · log N``.
        """
        n_obs = n_rows(X)
        total = self.score(X) * n_obs
        return -2.0 * total + self.n_parameters() * math.log(n_obs)

    def icl(self, X: Any) -> float:
        """Return the integrated completed likelihood criterion on ``X`` (lower is better).

        BIC plus twice the entropy of the soft assignments (Biernacki, Celeux & Govaert
        2000): it also penalises components that overlap, so it prefers well-separated
        clusters where BIC may split one cluster into several components.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.

        Returns
        -------
        float
            ``bic(X) − 2 Σ_n Σ_k p(k | x_n) log p(k | x_n)``.
        """
        return self.bic(X) + 2.0 * self.assignment_entropy(X)

    def assignment_entropy(self, X: Any) -> float:
        """Return the total entropy of the posterior component probabilities of ``X``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.

        Returns
        -------
        float
            ``−Σ_n Σ_k p(k | x_n) log p(k | x_n)`` (0 when every sample is assigned with
            certainty, ``N log K`` at most).
        """
        proba = self.predict_proba(X)
        if is_dask_array(X):
            import dask.array as da

            terms = da.where(proba > 0, proba * da.log(da.where(proba > 0, proba, 1.0)), 0.0)
            return -float(terms.sum().compute())
        xp = B.array_namespace(proba)
        positive = proba > 0
        safe = xp.where(positive, proba, xp.ones_like(proba))
        return -float(xp.sum(xp.where(positive, proba * xp.log(safe), xp.zeros_like(proba))))

    def aic(self, X: Any) -> float:
        """Return the Akaike information criterion on ``X`` (lower is better).

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Data.

        Returns
        -------
        float
            ``−2 log L + 2 n_parameters``.
        """
        n_obs = n_rows(X)
        return -2.0 * self.score(X) * n_obs + 2.0 * self.n_parameters()

    def sample(self, n_samples: int = 1) -> tuple[Any, Any]:
        """Draw samples from the fitted model.

        Parameters
        ----------
        n_samples : int, default=1
            Number of samples.

        Returns
        -------
        X : array, shape (n_samples, n_features)
            Observations, in the namespace the model was fitted in.
        labels : array of int, shape (n_samples,)
            The component of every sample.
        """
        check_is_fitted(self, "params_")
        n_samples = as_int("n_samples", n_samples, 1)
        seed = int(check_random_state(self.random_state).randint(2**31 - 1))
        source = B.random_source(seed, self._xp, B.device_of(self.params_))
        zs, _, labels = self.model_.sample(source, self._standard_params, n_samples)
        xs = self._standardization.unstandardize(zs)
        caller_xp = B.namespace_for(self._caller_name)
        return to_caller(xs, caller_xp), to_caller(labels, caller_xp)


def _call(model: Any, name: str, params: Any, zs: Any) -> Any:
    return getattr(model, name)(params, zs)


_compiled_call = B.jit(_call, static_argnums=(0, 1))


def _model_method(model: Any, name: str, params: Any, zs: Any) -> Any:
    """``model.<name>(params, zs)``: one compiled function on JAX for a complete-data model.

    The marginalising wrapper looks at the data for NaN entries first (a host read), so it
    runs as is.
    """
    if isinstance(model, MarginalizedHMoG):
        return _call(model, name, params, zs)
    return _compiled_call(model, name, params, zs)
