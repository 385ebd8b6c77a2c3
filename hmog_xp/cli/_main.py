"""Argument parsing and the entry point of the ``hmog-xp`` command."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import NoReturn

from hmog_xp._errors import BackendError, ValidationError
from hmog_xp.cli._commands import (
    DEMO_COMPONENTS,
    DEMO_FACTORS,
    DEMO_MAX_ITER,
    DEMO_NOISE,
    DEMO_REG_COVAR,
    DEMO_SEED,
    run_demo,
    run_fit,
)
from hmog_xp.cli._predict import run_predict
from hmog_xp.cli._select import int_grid

PROG = "hmog-xp"

#: The values of ``--missing`` (the estimator's ``missing`` hyper-parameter).
_MISSING = ("error", "marginalize")

_DESCRIPTION = (
    "Hierarchical mixtures of Gaussians (factor analysis + Gaussian mixture) from the "
    "command line. Start with `hmog-xp demo`; run `hmog-xp COMMAND --help` for a command's "
    "options."
)


class _Parser(argparse.ArgumentParser):
    """An argument parser whose errors are one line: ``hmog-xp: error: ...``."""

    def error(self, message: str) -> NoReturn:
        """Print a one-line usage error to stderr and exit with status 2.

        Parameters
        ----------
        message : str
            What was wrong.
        """
        sys.stderr.write(f"{PROG}: error: {message} (see `{self.prog} --help`)\n")
        raise SystemExit(2)


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        msg = f"{text!r} is not an integer"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 1:
        msg = f"{value} is not a positive integer"
        raise argparse.ArgumentTypeError(msg)
    return value


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        msg = f"{text!r} is not a number"
        raise argparse.ArgumentTypeError(msg) from None
    if not value > 0.0 or value == float("inf"):
        msg = f"{text} is not a positive number"
        raise argparse.ArgumentTypeError(msg)
    return value


def _seed(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        msg = f"{text!r} is not an integer seed"
        raise argparse.ArgumentTypeError(msg) from None
    if value < 0:
        msg = f"{value} is negative; seeds are integers >= 0"
        raise argparse.ArgumentTypeError(msg)
    return value


def _add_backend(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--backend",
        metavar="NAME",
        help="array backend: numpy, array_api_strict, jax, torch or cupy (default: "
        "HMOG_XP_BACKEND, else numpy); the command works in float64 on every backend",
    )


def _add_demo(commands: argparse._SubParsersAction) -> None:
    demo = commands.add_parser(
        "demo",
        help="fit the embedded UCI handwritten digits, print a summary, write hmog_demo.png",
        description=f"Fit an HMoG ({DEMO_COMPONENTS} components, {DEMO_FACTORS} factors, "
        f"{DEMO_NOISE} noise, EM, latent covariance floor {DEMO_REG_COVAR}) to the 1797 UCI "
        "handwritten digits shipped with hmog_xp; print the fit, the agreement with the true "
        "digits (adjusted Rand index, normalised mutual information) and timings; write the "
        "figure hmog_demo.png.",
    )
    _add_backend(demo)
    demo.add_argument("--out-dir", default=".", metavar="DIR", help="where to write the figure")
    demo.add_argument(
        "--seed", type=_seed, default=DEMO_SEED, metavar="N", help=f"random seed ({DEMO_SEED})"
    )
    demo.add_argument("--quiet", action="store_true", help="no progress bar")
    demo.add_argument(
        "--max-iter", type=_positive_int, default=DEMO_MAX_ITER, help=argparse.SUPPRESS
    )
    demo.set_defaults(command="demo")


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "-k",
        "--components",
        type=int_grid,
        required=True,
        metavar="K",
        help=(
            "number of mixture components (clusters); a range 2:8 or a list 2,3,5 fits "
            "every candidate and keeps the best by --criterion"
        ),
    )
    parser.add_argument(
        "-d",
        "--factors",
        type=int_grid,
        required=True,
        metavar="D",
        help=(
            "number of latent factors, fewer than the number of feature columns; a range "
            "1:5 or a list is searched like -k"
        ),
    )
    parser.add_argument(
        "--criterion",
        choices=["bic", "icl", "aic"],
        default="bic",
        help=(
            "what chooses K and d when -k or -d has several values (lower is better): bic "
            "(default), icl (BIC + twice the assignment entropy: well-separated clusters), aic"
        ),
    )
    parser.add_argument(
        "--noise",
        choices=["diagonal", "full", "isotropic"],
        default="diagonal",
        help="observation noise: diagonal (factor analysis, default), full, isotropic (PPCA)",
    )
    parser.add_argument(
        "--variant",
        choices=["analytic", "differentiable", "symmetric"],
        default="analytic",
        help="analytic: closed-form EM (default); differentiable, symmetric: gradient training",
    )
    parser.add_argument(
        "--max-iter", type=_positive_int, default=200, metavar="N", help="iteration limit (200)"
    )
    parser.add_argument(
        "--tol",
        type=_positive_float,
        default=1e-6,
        metavar="TOL",
        help="stop when the relative change of the average log-likelihood is below this (1e-6)",
    )
    parser.add_argument(
        "--n-init", type=_positive_int, default=1, metavar="N", help="restarts; the best is kept"
    )
    parser.add_argument(
        "--reg-covar",
        type=_positive_float,
        default=1e-6,
        metavar="EPS",
        help=(
            "floor on the eigenvalues of the latent component covariances, relative to unit "
            "latent variance (1e-6; the demo uses 0.05)"
        ),
    )
    parser.add_argument("--seed", type=_seed, default=None, metavar="N", help="random seed")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    _add_backend(parser)


def _add_table_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group(
        "reading DATA",
        "Text files: the delimiter and a header line are detected (.tsv files are "
        "tab-separated). Columns are named by header name or by 0-based index (a header "
        "name wins). A column that is not numeric must be dropped or be the id column.",
    )
    group.add_argument(
        "--delimiter",
        metavar="SEP",
        help="field separator of a text file: comma, semicolon, tab, whitespace or one "
        "character (default: detected)",
    )
    header = group.add_mutually_exclusive_group()
    header.add_argument(
        "--header",
        dest="header",
        action="store_const",
        const=True,
        default=None,
        help="the first row is a header (default: detected)",
    )
    header.add_argument(
        "--no-header",
        dest="header",
        action="store_const",
        const=False,
        help="the first row is data",
    )
    group.add_argument(
        "--columns",
        metavar="A,B,3",
        help="use only these feature columns, in this order (names or 0-based indices)",
    )
    group.add_argument(
        "--drop", metavar="A,3", help="columns that are not features (names or 0-based indices)"
    )
    group.add_argument(
        "--id-column",
        metavar="NAME|INDEX",
        help="a column that is not a feature but is written as the first column of every "
        "output (labels, probabilities, scores, completed tables)",
    )


def _add_json(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--json",
        nargs="?",
        const="-",
        default=None,
        metavar="FILE.json",
        help="write a machine-readable summary (settings, sizes, log-likelihood, BIC, "
        "convergence, output files) to FILE.json, or to stdout without a name",
    )


def _add_fit(commands: argparse._SubParsersAction) -> None:
    fit = commands.add_parser(
        "fit",
        help="fit a model to a CSV or .npy table; save it, its labels and a figure",
        description="Fit an HMoG to DATA: a text table (comma, semicolon, tab or "
        "whitespace separated; one observation per line; a header line is detected), a .npy "
        "array or a .parquet file (with the extra hmog-xp[parquet]). The header's column "
        "names are saved with the model. Empty, NA and NaN "
        "cells (NaN in a .npy array) are missing values: refused unless --missing "
        "marginalize. Infinite values are always refused.",
    )
    fit.add_argument(
        "data", metavar="DATA", help="the observations (.csv, .tsv, .txt, .npy, .parquet)"
    )
    _add_model_options(fit)
    _add_table_options(fit)
    _add_json(fit)
    fit.add_argument(
        "--missing",
        choices=list(_MISSING),
        default="error",
        help="missing values: error (default) refuses them, naming the first; marginalize "
        "fits the model to the observed entries of each row (exact EM, values missing at "
        "random) and saves the setting with the model",
    )
    fit.add_argument("--out", metavar="MODEL.npz", help="save the fitted model here")
    fit.add_argument(
        "--labels",
        metavar="FILE.csv",
        help="write each row's cluster here (after the id column, with --id-column)",
    )
    fit.add_argument("--plot", metavar="FIG.png", help="write the summary figure here")
    fit.add_argument(
        "--image-shape", metavar="RxC", help="draw component means as R×C images (e.g. 8x8)"
    )
    fit.add_argument(
        "--true-labels", metavar="FILE", help="known labels (one column) to report ARI and NMI"
    )
    fit.set_defaults(command="fit")


def _add_predict(commands: argparse._SubParsersAction) -> None:
    predict = commands.add_parser(
        "predict",
        help="predict the clusters (or probabilities, factor scores, missing values) of rows "
        "with a saved model",
        description="Print (or write) the most probable cluster of every row of DATA, with "
        "--proba the probability of every cluster, with --transform its factor scores, or "
        "with --impute DATA completed, using a model saved by `fit --out`. When the model "
        "and DATA both have column names, columns are matched by name (reordered if needed; "
        "a different set of names is refused); otherwise by position. Output is comma-"
        "separated. Empty, NA and NaN cells (NaN in a .npy array) are "
        "missing values; with --missing marginalize a row is judged by its observed entries "
        "(the exact marginal under the model).",
    )
    predict.add_argument("model", metavar="MODEL", help="a model saved by `hmog-xp fit --out`")
    predict.add_argument(
        "data", metavar="DATA", help="the observations (.csv, .tsv, .txt, .npy, .parquet)"
    )
    output = predict.add_mutually_exclusive_group()
    output.add_argument("--proba", action="store_true", help="output cluster probabilities")
    output.add_argument(
        "--transform",
        action="store_true",
        help="output factor scores E[y | x] (columns factor_1 .. factor_d)",
    )
    output.add_argument(
        "--impute",
        action="store_true",
        help="output DATA with every missing value replaced by its conditional mean given "
        "the row's observed entries (the feature columns and their header line; observed "
        "values written back exactly); implies --missing marginalize unless --missing is given",
    )
    predict.add_argument(
        "--missing",
        choices=list(_MISSING),
        default=None,
        help="missing values: error refuses them, marginalize uses the observed entries of "
        "each row (default: the model's setting, saved by `fit --missing`)",
    )
    predict.add_argument(
        "--out",
        metavar="FILE.csv",
        help="write here instead of stdout (with --impute, a name ending in .npy writes a "
        ".npy array of the feature columns)",
    )
    _add_table_options(predict)
    _add_json(predict)
    _add_backend(predict)
    predict.set_defaults(command="predict")


def build_parser() -> argparse.ArgumentParser:
    """Build the ``hmog-xp`` argument parser with its three commands.

    Returns
    -------
    argparse.ArgumentParser
        The parser; ``command`` in the parsed namespace names the command.
    """
    from hmog_xp import __version__

    parser = _Parser(prog=PROG, description=_DESCRIPTION)
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    commands.required = True
    _add_demo(commands)
    _add_fit(commands)
    _add_predict(commands)
    return parser


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split())
    return text or type(exc).__name__


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``hmog-xp`` command.

    Parameters
    ----------
    argv : sequence of str, optional
        The arguments after the program name; ``sys.argv[1:]`` when None.

    Returns
    -------
    int
        The exit status: 0 on success, 2 for bad arguments or input (one ``hmog-xp: error:``
        line on stderr), 130 when interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error already printed
        return exc.code if isinstance(exc.code, int) else 2
    run = {"demo": run_demo, "fit": run_fit, "predict": run_predict}
    try:
        return run[args.command](args)
    except (ValidationError, BackendError, ValueError, OSError) as exc:
        sys.stdout.flush()
        sys.stderr.write(f"{PROG}: error: {_one_line(exc)}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write(f"\n{PROG}: interrupted\n")
        return 130
