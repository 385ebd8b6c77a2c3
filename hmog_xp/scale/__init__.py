"""Beyond one in-memory array: EM on Dask arrays and streaming (online) mini-batch EM.

* :func:`fit_em_dask` — closed-form EM on a ``dask.array`` chunked along rows (NumPy or CuPy
  chunks, threads or a ``dask.distributed`` cluster); the data are never gathered.
* :func:`dask_predict`, :func:`dask_predict_proba`, :func:`dask_transform`,
  :func:`dask_score_samples` — lazy chunk-wise posteriors and densities.
* :func:`online_em_init`, :func:`online_em_update`, :func:`fit_online` — stochastic
  approximation EM (Cappé & Moulines, 2009) over mini-batches.

Dask and distributed are optional (``pip install 'hmog_xp[dask]'``) and imported only when a
Dask function is called.
"""

from hmog_xp.scale._dask import check_dask_sample, fit_em_dask
from hmog_xp.scale._dask_lazy import (
    dask_predict,
    dask_predict_proba,
    dask_score_samples,
    dask_transform,
)
from hmog_xp.scale._online import (
    OnlineEMFit,
    OnlineEMState,
    StepSize,
    fit_online,
    online_em_init,
    online_em_update,
)

__all__ = [
    "OnlineEMFit",
    "OnlineEMState",
    "StepSize",
    "check_dask_sample",
    "dask_predict",
    "dask_predict_proba",
    "dask_score_samples",
    "dask_transform",
    "fit_em_dask",
    "fit_online",
    "online_em_init",
    "online_em_update",
]
