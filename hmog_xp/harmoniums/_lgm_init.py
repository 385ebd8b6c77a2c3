"""Starting points for linear Gaussian models: random, and from data by probabilistic PCA."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hmog_xp import _backend as B
from hmog_xp._errors import ValidationError
from hmog_xp.reps import CovarianceRep

if TYPE_CHECKING:
    from types import ModuleType

    from hmog_xp.harmoniums.lgm import LinearGaussianModel


def params_from_loadings(
    model: LinearGaussianModel, loadings: Any, bias: Any, noise: Any, *, xp: ModuleType
) -> Any:
    """Natural parameters with likelihood ``x | y ~ N(A y + b, Ψ)`` and a valid latent part.

    The posterior precision is :func:`dominating_in_rep` of ``I + AᵀΨ⁻¹A``: exactly that
    matrix when ``pst_rep`` can hold it (the prior is then ``N(0, I)``), otherwise the
    nearest rep matrix raised just enough to keep the prior precision positive definite.

    Parameters
    ----------
    model : LinearGaussianModel
        The model.
    loadings : array, shape (p, d)
        ``A``.
    bias : array, shape (p,)
        ``b``.
    noise : array, shape (obs_rep.size(p),)
        ``Ψ`` in the observable rep's plain storage.
    xp : module
        Namespace.

    Returns
    -------
    array, shape (model.dim,)
        Natural parameters.
    """
    lat_dim = model.lat_dim
    lkl_params = model.likelihood_parameters(loadings, bias, noise)
    interaction = xp.reshape(
        lkl_params[model.obs_man.dim :], (model.obs_dim, lat_dim)
    )  # W = Ψ⁻¹A, so AᵀΨ⁻¹A = Aᵀ W
    gram = xp.matrix_transpose(loadings) @ interaction
    eye = xp.eye(lat_dim, dtype=loadings.dtype, device=B.device_of(loadings))
    precision = dominating_in_rep(model.pst_rep, eye + gram)
    # h_y = −Wᵀb cancels the conjugation term Wᵀb, so the prior mean is 0.
    location = -(bias @ interaction)
    lat = model.pst_man.join_location_precision(location, precision)
    return xp.concat([lkl_params, lat], axis=-1)


def column_signs(columns: Any) -> Any:
    """The sign convention of a latent basis: ``+1`` or ``-1`` per column.

    Column ``j`` gets ``sign(Σ_i C_ij³)`` (``+1`` for a zero sum), so that multiplying the
    columns by it makes ``Σ_i C_ij³ >= 0``: the factor points towards its dominant entries.
    Unlike "largest entry positive" this is continuous in ``C``, so backends that differ by
    rounding cannot disagree unless the sum is at rounding level. Pass loadings in noise
    units (``Ψ^{-1/2} A``) so the rule is invariant under ``x ↦ D x + m``.

    Parameters
    ----------
    columns : array, shape (p, d)
        Loadings (or loadings in noise units).

    Returns
    -------
    array, shape (d,)
        Signs in ``columns``' dtype.
    """
    xp = B.array_namespace(columns)
    cubes = xp.sum(columns**3, axis=-2)
    one = xp.asarray(1.0, dtype=columns.dtype, device=B.device_of(columns))
    return xp.where(cubes < 0.0, -one, one)


def dominating_in_rep(rep: CovarianceRep, matrix: Any) -> Any:
    """A matrix ``S`` of ``rep`` with ``S ⪰ M``, equal to ``M`` when ``rep`` holds ``M``.

    With ``P`` the projection of ``M`` onto ``rep`` and ``R = M − P``, ``S = P + r I`` where
    ``r = max_i Σ_j |R_ij|`` bounds the eigenvalues of ``R`` (Gershgorin), so ``S − M ⪰ 0``.

    Parameters
    ----------
    rep : CovarianceRep
        The target representation.
    matrix : array, shape (n, n)
        Symmetric matrix ``M``.

    Returns
    -------
    array, shape (rep.size(n),)
        Plain storage of ``S``.
    """
    xp = B.array_namespace(matrix)
    n = matrix.shape[-1]
    projected = rep.pack(matrix)
    residual = matrix - rep.unpack(projected, n)
    bound = xp.max(xp.sum(xp.abs(residual), axis=-1))
    identity = rep.identity(n, xp=xp, dtype=matrix.dtype, device=B.device_of(matrix))
    return projected + bound * identity


def random_params(
    model: LinearGaussianModel, rng: Any, shape: float, xp: ModuleType | None, dtype: Any
) -> Any:
    """Random loadings ``shape · ε``, zero bias, unit noise (see :func:`params_from_loadings`).

    Parameters
    ----------
    model : LinearGaussianModel
        The model.
    rng : int, generator or JAX key
        Randomness; picks the namespace when ``xp`` is None.
    shape : float
        Scale of the random loadings.
    xp : module or None
        Namespace.
    dtype : dtype or None
        Floating dtype.

    Returns
    -------
    array, shape (model.dim,)
        Natural parameters.
    """
    source = B.random_source(rng, xp)
    namespace = source.xp
    dtype = B.default_float_dtype(namespace) if dtype is None else dtype
    loadings = shape * source.normal((model.obs_dim, model.lat_dim), dtype=dtype)
    device = B.device_of(loadings)
    bias = namespace.zeros((model.obs_dim,), dtype=dtype, device=device)
    noise = model.obs_rep.identity(model.obs_dim, xp=namespace, dtype=dtype, device=device)
    return params_from_loadings(model, loadings, bias, noise, xp=namespace)


def check_start_options(shape: float, min_var: float) -> None:
    """Refuse a negative loading jitter or a non-positive variance floor.

    Parameters
    ----------
    shape : float
        Jitter of the loadings, in noise standard deviations.
    min_var : float
        Floor of the noise variance.

    Raises
    ------
    ValidationError
        If ``shape < 0`` or ``min_var <= 0``.
    """
    if shape < 0 or min_var <= 0:
        msg = f"shape must be >= 0 and min_var > 0; got shape={shape}, min_var={min_var}"
        raise ValidationError(msg)


def sample_params(
    model: LinearGaussianModel, rng: Any, xs: Any, shape: float, min_var: float
) -> Any:
    """Probabilistic-PCA fit of the sample, loadings jittered by ``shape`` noise deviations.

    Draws the jitter (a standard normal ``(p, d)`` array in ``xs``'s dtype) and hands it to
    :func:`ppca_start`, compiled once per shape on JAX.

    Parameters
    ----------
    model : LinearGaussianModel
        The model.
    rng : int, generator or JAX key
        Randomness.
    xs : array, shape (N, p)
        Observations.
    shape : float
        Size of the random perturbation of the loadings, in noise standard deviations.
    min_var : float
        Floor of the noise variance.

    Returns
    -------
    array, shape (model.dim,)
        Natural parameters in ``xs``'s namespace.
    """
    check_start_options(shape, min_var)
    xp = B.array_namespace(xs)
    source = B.random_source(rng, xp, B.device_of(xs))
    jitter = source.normal((xs.shape[1], model.lat_dim), dtype=xs.dtype)
    return compiled_ppca_start(model, xs, jitter, float(shape), float(min_var))


def ppca_start(
    model: LinearGaussianModel, xs: Any, jitter: Any, shape: float, min_var: float
) -> Any:
    """Probabilistic-PCA fit of the sample, loadings moved by ``shape`` noise deviations.

    With the sample covariance's eigenvalues ``λ_1 ≥ … ≥ λ_p`` and eigenvectors ``U``:
    ``σ² = mean(λ_{d+1..p})`` (floored at ``min_var``), ``A = U_d (λ_d − σ²)^{1/2}`` (the
    maximum-likelihood PPCA loadings, Tipping & Bishop 1999), ``b`` the sample mean and
    ``Ψ = σ² I``; then ``A + shape · σ · jitter``. Each loading column's sign is fixed by
    :func:`column_signs`, so every backend starts from the same point; float32 data are
    fitted in float64 where the backend has it (the result is cast back), so they start where
    float64 data would. A function of arrays only (no checks, no randomness).

    Parameters
    ----------
    model : LinearGaussianModel
        The model.
    xs : array, shape (N, p)
        Observations.
    jitter : array, shape (p, d)
        Standard normal draws.
    shape : float
        Size of the perturbation of the loadings, in noise standard deviations.
    min_var : float
        Floor of the noise variance, ``> 0``.

    Returns
    -------
    array, shape (model.dim,)
        Natural parameters in ``xs``'s namespace and dtype.
    """
    xp = B.array_namespace(xs, jitter)
    n_obs, obs_dim = xs.shape
    lat_dim = model.lat_dim
    dtype, device = xs.dtype, B.device_of(xs)
    wide = B.default_float_dtype(xp)  # the fit in float64 where it exists: float32 data
    if xp.finfo(wide).eps >= xp.finfo(dtype).eps:  # start where float64 data would
        wide = dtype
    data = xp.astype(xs, wide, copy=False)
    bias = xp.mean(data, axis=0)
    centred = data - bias
    covariance = xp.matrix_transpose(centred) @ centred / n_obs
    eigenvalues, eigenvectors = xp.linalg.eigh(covariance)  # ascending
    top = min(lat_dim, obs_dim)
    leading_values = xp.flip(eigenvalues[obs_dim - top :], axis=0)
    leading_vectors = xp.flip(eigenvectors[:, obs_dim - top :], axis=1)
    rest = eigenvalues[: obs_dim - top]
    floor = xp.asarray(min_var, dtype=wide, device=device)
    variance = xp.maximum(xp.mean(rest), floor) if obs_dim > top else floor
    loadings = leading_vectors * xp.sqrt(xp.maximum(leading_values - variance, floor))
    # eigh's signs are backend-dependent: fix them (noise is isotropic, so A's own cubes
    # give the same signs as the loadings in noise units).
    loadings = loadings * column_signs(loadings)
    if top < lat_dim:  # more factors than dimensions: pad with zero columns
        padding = xp.zeros((obs_dim, lat_dim - top), dtype=wide, device=device)
        loadings = xp.concat([loadings, padding], axis=1)
    loadings = loadings + shape * xp.sqrt(variance) * xp.astype(jitter, wide, copy=False)
    noise = variance * model.obs_rep.identity(obs_dim, xp=xp, dtype=wide, device=device)
    params = params_from_loadings(model, loadings, bias, noise, xp=xp)
    return xp.astype(params, dtype, copy=False)


#: :func:`ppca_start` compiled once per model, shape and options on JAX.
compiled_ppca_start = B.jit(ppca_start, static_argnums=(0, 3, 4))
