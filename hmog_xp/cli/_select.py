"""``hmog-xp fit -k 2:8 -d 1:5``: choosing K and d on the command line.

``-k`` and ``-d`` take one number, a range ``A:B`` (both ends included) or a list ``A,B,C``.
With more than one candidate, :func:`hmog_xp.select_model` fits the grid, the table of every
fit's criteria is printed with the best one marked, and the best model is the one the
command saves, labels and draws.
"""

from __future__ import annotations

import argparse
import time
import warnings
from typing import Any, TextIO

import numpy as np

from hmog_xp.cli._commands import FitResult, namespace, to_backend

__all__ = ["int_grid", "is_grid", "select_for_command", "selection_table"]


def int_grid(text: str) -> tuple[int, ...]:
    """Parse ``N``, ``A:B`` (inclusive) or ``A,B,C`` into sorted distinct positive integers.

    Parameters
    ----------
    text : str
        The argument.

    Returns
    -------
    tuple of int
        The candidates, increasing.

    Raises
    ------
    argparse.ArgumentTypeError
        For anything else (naming what was wrong).
    """
    parts = [part.strip() for part in text.split(",")] if "," in text else [text.strip()]
    values: set[int] = set()
    for part in parts:
        bounds = part.split(":")
        if len(bounds) > 2 or not all(bound.strip().lstrip("-").isdigit() for bound in bounds):
            msg = f"{text!r} is not a positive integer, a range A:B or a list A,B,C"
            raise argparse.ArgumentTypeError(msg)
        low, high = int(bounds[0]), int(bounds[-1])
        if low < 1 or high < 1:
            msg = f"{text!r}: every value must be a positive integer"
            raise argparse.ArgumentTypeError(msg)
        if high < low:
            msg = f"{text!r}: the range {low}:{high} is empty (write the smaller end first)"
            raise argparse.ArgumentTypeError(msg)
        values.update(range(low, high + 1))
    return tuple(sorted(values))


def is_grid(args: argparse.Namespace) -> bool:
    """Whether ``-k`` or ``-d`` gave more than one candidate.

    Parameters
    ----------
    args : argparse.Namespace
        ``components`` and ``factors`` (tuples from :func:`int_grid`, or ints).

    Returns
    -------
    bool
        True for a model-selection run.
    """
    return any(
        isinstance(value, tuple) and len(value) > 1 for value in (args.components, args.factors)
    )


def _check_grid(table: np.ndarray, ks: tuple[int, ...], ds: tuple[int, ...]) -> None:
    n, p = table.shape
    if ks[-1] > n:
        msg = f"-k/--components {ks[-1]} exceeds the number of observations ({n})"
        raise ValueError(msg)
    if ds[-1] >= p:
        msg = f"-d/--factors {ds[-1]} must be smaller than the number of feature columns ({p})"
        raise ValueError(msg)


def select_for_command(table: np.ndarray, args: argparse.Namespace) -> tuple[FitResult, Any]:
    """Fit the grid of ``-k`` × ``-d`` and return the best fit and the selection.

    Parameters
    ----------
    table : numpy.ndarray, shape (N, p)
        The observations (NaN where missing, with ``--missing marginalize``).
    args : argparse.Namespace
        The fit command's options (``components``, ``factors``, ``criterion``, ...).

    Returns
    -------
    result : FitResult
        The best estimator, the data in its backend, and the time of the whole grid.
    selection : ModelSelection
        Every fit's criteria.
    """
    from hmog_xp import select_model

    ks, ds = tuple(args.components), tuple(args.factors)
    _check_grid(table, ks, ds)
    name, xp = namespace(args.backend)
    data = to_backend(table, xp)
    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        selection = select_model(
            data,
            n_components=ks,
            n_factors=ds,
            criterion=args.criterion,
            progress=not args.quiet,
            noise=args.noise,
            variant=args.variant,
            max_iter=args.max_iter,
            tol=args.tol,
            n_init=args.n_init,
            reg_covar=args.reg_covar,
            backend=name,
            random_state=args.seed,
            missing=getattr(args, "missing", "error"),
        )
    seconds = time.perf_counter() - start
    messages = list(dict.fromkeys(" ".join(str(w.message).split()) for w in caught))
    return FitResult(selection.best_estimator_, data, name, seconds, messages), selection


def selection_table(selection: Any, stream: TextIO) -> None:
    """Print every fit's criteria, the best row marked with ``*``.

    Parameters
    ----------
    selection : ModelSelection
        From :func:`select_for_command`.
    stream : text stream
        Where to print.
    """
    results = selection.results_
    header = (
        f"  {'':1} {'K':>3} {'d':>3} {'BIC':>12} {'ICL':>12} {'AIC':>12} "
        f"{'loglik/obs':>11} {'iter':>5} {'conv':>5} {'time':>7}"
    )
    stream.write(f"model selection by {selection.criterion.upper()} (lower is better)\n")
    stream.write(header + "\n")
    for i in range(len(results["bic"])):
        mark = "*" if i == selection.best_index_ else " "
        stream.write(
            f"  {mark} {results['n_components'][i]:>3} {results['n_factors'][i]:>3} "
            f"{results['bic'][i]:>12.2f} {results['icl'][i]:>12.2f} {results['aic'][i]:>12.2f} "
            f"{results['log_likelihood'][i]:>11.4f} {results['n_iter'][i]:>5} "
            f"{'yes' if results['converged'][i] else 'no':>5} {results['fit_time'][i]:>6.1f}s\n"
        )
