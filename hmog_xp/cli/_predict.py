"""The ``predict`` command: cluster labels or probabilities of new rows from a saved model."""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, TextIO

import numpy as np

from hmog_xp.cli._commands import namespace, to_backend
from hmog_xp.cli._io import format_table, read_table, to_numpy, write_text
from hmog_xp.cli._outputs import check_outputs


def load_model(path: str | pathlib.Path, backend: str | None) -> Any:
    """Load a model saved by ``hmog-xp fit --out`` (or ``HMoG.save``).

    Parameters
    ----------
    path : str or path
        The saved model file.
    backend : str, optional
        Backend of the loaded model's arrays; the default backend when None.

    Returns
    -------
    HMoG
        The fitted estimator.

    Raises
    ------
    FileNotFoundError
        If the file is missing.
    ModelFileError
        (a ``ValueError``) If the file is not a saved model, or a damaged one.
    """
    from hmog_xp import HMoG

    name, _ = namespace(backend)
    return HMoG.load(path, backend=name)


def run_predict(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Predict clusters (or cluster probabilities) of a data file with a saved model.

    Parameters
    ----------
    args : argparse.Namespace
        ``model``, ``data``, ``proba``, ``out``, ``backend``.
    stream : text stream, optional
        Where the predictions go when ``out`` is None (``sys.stdout`` when None).

    Returns
    -------
    int
        The exit status, 0.
    """
    stream = sys.stdout if stream is None else stream
    check_outputs({"MODEL": args.model, "DATA": args.data}, {"--out": args.out})
    estimator = load_model(args.model, args.backend)
    table = read_table(args.data)
    expected = int(estimator.n_features_in_)
    if table.shape[1] != expected:
        msg = (
            f"{args.data} has {table.shape[1]} columns but the model {args.model} was fitted "
            f"to {expected}"
        )
        raise ValueError(msg)
    _, xp = namespace(args.backend)
    data = to_backend(table, xp)
    if args.proba:
        values = to_numpy(estimator.predict_proba(data)).astype(np.float64)
        header = [f"p{k}" for k in range(values.shape[1])]
    else:
        values = to_numpy(estimator.predict(data)).astype(np.int64)
        header = ["cluster"]
    text = format_table(values, header)
    if args.out is None:
        stream.write(text)
    else:
        write_text(args.out, text)
        what = "probabilities" if args.proba else "labels"
        sys.stderr.write(f"hmog-xp: wrote {what} of {table.shape[0]} rows to {args.out}\n")
    return 0
