"""The ``predict`` command: clusters, cluster probabilities or completed rows from a saved model.

With missing values accepted (``--missing marginalize``, or a model fitted with it), rows
with empty, ``NA`` or ``NaN`` cells are clustered by the exact marginal of their observed
entries, and ``--impute`` writes the table back with every missing cell replaced by its
conditional mean given the row's observed entries.
"""

from __future__ import annotations

import argparse
import pathlib
import sys
from typing import Any, TextIO

import numpy as np

from hmog_xp.cli._commands import namespace, to_backend
from hmog_xp.cli._io import (
    Table,
    format_exact,
    format_table,
    table_from_args,
    to_numpy,
    write_npy,
    write_text,
)
from hmog_xp.cli._outputs import check_outputs
from hmog_xp.cli._summary import model_summary, write_json


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


def missing_policy(args: argparse.Namespace, estimator: Any) -> str:
    """Decide how ``predict`` treats missing values: ``'error'`` or ``'marginalize'``.

    Parameters
    ----------
    args : argparse.Namespace
        ``missing`` (None when not given) and ``impute``.
    estimator : HMoG
        The loaded model; its saved ``missing`` setting is the default.

    Returns
    -------
    str
        ``args.missing`` when given; else ``'marginalize'`` with ``--impute``; else the
        model's setting.
    """
    if args.missing is not None:
        return str(args.missing)
    if args.impute:
        return "marginalize"
    return str(getattr(estimator, "missing", "error"))


def _completed(estimator: Any, table: Table, data: Any) -> np.ndarray:
    """The table with every missing value replaced by the model's conditional mean."""
    values = table.values
    if table.n_missing == 0:
        return values
    imputed = to_numpy(estimator.impute(data)).astype(np.float64)
    return np.where(np.isnan(values), imputed, values)  # observed entries exactly as read


def match_columns(estimator: Any, table: Table, args: argparse.Namespace) -> Table:
    """Put DATA's columns in the model's order by name; by position when either has no names.

    Parameters
    ----------
    estimator : HMoG
        The loaded model (``feature_names_in_`` when it was fitted to named columns).
    table : Table
        The selected feature columns of DATA.
    args : argparse.Namespace
        ``data`` and ``model`` (named in the messages).

    Returns
    -------
    Table
        ``table`` with its columns reordered to the model's.

    Raises
    ------
    ValueError
        When the names differ (listing the missing and unexpected ones) or, by position,
        the column counts differ.
    """
    names = getattr(estimator, "feature_names_in_", None)
    expected = int(estimator.n_features_in_)
    if names is not None and table.header is not None:
        wanted = [str(name) for name in names]
        if table.header == wanted:
            return table
        missing = [name for name in wanted if name not in table.header]
        unexpected = [name for name in table.header if name not in wanted]
        if missing or unexpected or len(set(table.header)) != len(table.header):
            msg = (
                f"{args.data} does not have the columns the model {args.model} was fitted to: "
                f"missing {missing}, unexpected {unexpected} (set columns aside with --drop "
                "or --id-column)"
            )
            raise ValueError(msg)
        order = [table.header.index(name) for name in wanted]
        numbers = None if table.numbers is None else [table.numbers[j] for j in order]
        return Table(
            table.values[:, order],
            wanted,
            table.lines,
            table.path,
            table.ids,
            table.id_name,
            numbers,
        )
    if table.values.shape[1] != expected:
        msg = (
            f"{args.data} has {table.values.shape[1]} columns but the model {args.model} was "
            f"fitted to {expected}"
        )
        raise ValueError(msg)
    return table


def run_predict(args: argparse.Namespace, stream: TextIO | None = None) -> int:
    """Predict clusters (or probabilities, or missing values) of a data file with a saved model.

    Parameters
    ----------
    args : argparse.Namespace
        ``model``, ``data``, ``proba``, ``impute``, ``missing``, ``out``, ``backend``.
    stream : text stream, optional
        Where the output goes when ``out`` is None (``sys.stdout`` when None).

    Returns
    -------
    int
        The exit status, 0.
    """
    stream = sys.stdout if stream is None else stream
    json_target = getattr(args, "json", None)
    if json_target == "-" and args.out is None:
        msg = "--json without a file name writes to stdout: give --out for the predictions"
        raise ValueError(msg)
    check_outputs(
        {"MODEL": args.model, "DATA": args.data},
        {"--out": args.out, "--json": None if json_target in (None, "-") else json_target},
    )
    estimator = load_model(args.model, args.backend)
    missing = missing_policy(args, estimator)
    table = match_columns(
        estimator, table_from_args(args, allow_missing=missing == "marginalize"), args
    )
    if hasattr(estimator, "feature_names_in_"):  # matched: the arrays below carry no names
        del estimator.feature_names_in_
    estimator.missing = missing
    _, xp = namespace(args.backend)
    data = to_backend(table.values, xp)
    n_rows = table.values.shape[0]
    if args.impute:
        completed = _completed(estimator, table, data)
        what = f"the completed table ({table.n_missing} missing values filled in)"
        if args.out is not None and pathlib.Path(args.out).suffix.lower() == ".npy":
            write_npy(args.out, completed)
            sys.stderr.write(f"hmog-xp: wrote {what} of {n_rows} rows to {args.out}\n")
            return 0
        text = format_exact(completed, table.header, table.id_pair)
    elif args.proba:
        values = to_numpy(estimator.predict_proba(data)).astype(np.float64)
        text = format_table(values, [f"p{k}" for k in range(values.shape[1])], table.id_pair)
        what = "probabilities"
    elif getattr(args, "transform", False):
        values = to_numpy(estimator.transform(data)).astype(np.float64)
        names = [f"factor_{j + 1}" for j in range(values.shape[1])]
        text = format_table(values, names, table.id_pair)
        what = "factor scores"
    else:
        values = to_numpy(estimator.predict(data)).astype(np.int64)
        text = format_table(values, ["cluster"], table.id_pair)
        what = "labels"
    if args.out is None:
        stream.write(text)
    else:
        write_text(args.out, text)
        sys.stderr.write(f"hmog-xp: wrote {what} of {n_rows} rows to {args.out}\n")
    if json_target is not None:
        payload = {
            "command": "predict",
            "model": str(args.model),
            "data": str(args.data),
            "output": what,
            **model_summary(estimator, data),
            "n_missing": table.n_missing,
            "feature_names": table.header,
            "id_column": table.id_name,
            "outputs": {"out": args.out},
        }
        write_json(json_target, payload)
    return 0
