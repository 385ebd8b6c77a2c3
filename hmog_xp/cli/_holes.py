"""Missing values in the command line's tables: which cells are holes, and what is refused.

A cell is missing when, once stripped, it is empty or reads ``NA`` or ``NaN`` (any case); a
``.npy`` array marks missing entries with NaN. Missing values are used only with
``--missing marginalize``; otherwise the command refuses them, naming the first one. Infinite
values are never missing values: they are always refused. Everything here works on NumPy
arrays on the host.
"""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np

__all__ = ["MISSING_MARKERS", "check_columns_observed", "check_values", "is_missing"]

#: Cell texts (stripped, lower-cased) that are missing values.
MISSING_MARKERS = frozenset({"", "na", "nan"})

#: How the refusal messages name the option that accepts missing values.
MISSING_OPTION = "--missing marginalize"


def is_missing(field: str) -> bool:
    """Whether a CSV cell is a missing value: empty, blank, ``NA`` or ``NaN`` (any case).

    Parameters
    ----------
    field : str
        The cell's text.

    Returns
    -------
    bool
        True for a missing-value marker.
    """
    return field.strip().lower() in MISSING_MARKERS


def _where(
    path: pathlib.Path,
    lines: np.ndarray | None,
    row: int,
    column: int | None,
    labels: Sequence[str] | None = None,
) -> str:
    place = f"line {int(lines[row])} (row index {row})" if lines is not None else f"row index {row}"
    if column is None:
        return f"{path}, {place}"
    return f"{path}, {place}, column {column + 1 if labels is None else labels[column]}"


def _first(mask: np.ndarray) -> tuple[int, int]:
    row, column = np.argwhere(mask)[0]
    return int(row), int(column)


def check_values(
    values: np.ndarray,
    path: pathlib.Path,
    lines: np.ndarray | None,
    *,
    allow_missing: bool,
    labels: Sequence[str] | None = None,
) -> None:
    """Refuse infinite values, and missing ones unless allowed; refuse rows with no value.

    Parameters
    ----------
    values : numpy.ndarray, shape (N, p)
        The table, NaN where a value is missing.
    path : path
        The file it was read from (named in the messages).
    lines : numpy.ndarray of int, shape (N,), optional
        The 1-based file line of each row (CSV); None for a ``.npy`` array.
    allow_missing : bool
        Whether missing values are accepted (``--missing marginalize``).
    labels : sequence of str, optional
        How the messages name each column (its place in the file, when columns were
        chosen); its 1-based position in ``values`` when None.

    Raises
    ------
    ValueError
        For the first infinite value; without ``allow_missing``, for the first missing value
        (the message names ``--missing marginalize``); with it, for the first row that has no
        observed value. Each message names the file, the line (or row) and the column.
    """
    finite = np.isfinite(values)
    if finite.all():
        return
    infinite = np.isinf(values)
    if infinite.any():
        row, column = _first(infinite)
        msg = (
            f"{_where(path, lines, row, column, labels)}: {values[row, column]} is not a finite "
            "number; infinite values are refused (only empty, NA and NaN cells are missing "
            "values)"
        )
        raise ValueError(msg)
    holes = ~finite
    if not allow_missing:
        row, column = _first(holes)
        count = int(holes.sum())
        msg = (
            f"{_where(path, lines, row, column, labels)}: missing value (an empty, NA or NaN cell; "
            f"{count} of {values.size} entries are missing); pass {MISSING_OPTION} to use "
            "the observed entries of each row"
        )
        raise ValueError(msg)
    empty_rows = holes.all(axis=1)
    if empty_rows.any():
        row = int(np.flatnonzero(empty_rows)[0])
        msg = f"{_where(path, lines, row, None)}: every value of this row is missing; remove it"
        raise ValueError(msg)


def check_columns_observed(
    values: np.ndarray,
    path: pathlib.Path,
    header: Sequence[str] | None,
    numbers: Sequence[int] | None = None,
) -> None:
    """Refuse a table with a column whose every value is missing (nothing to fit it to).

    Parameters
    ----------
    values : numpy.ndarray, shape (N, p)
        The table, NaN where a value is missing.
    path : path
        The file it was read from.
    header : sequence of str, optional
        The column names, when the file has a header line.
    numbers : sequence of int, optional
        The 1-based place of each column in the file (when columns were chosen); its place
        in ``values`` when None.

    Raises
    ------
    ValueError
        Naming the first such column (its number, and its name when there is a header).
    """
    empty = np.isnan(values).all(axis=0)
    if empty.any():
        column = int(np.flatnonzero(empty)[0])
        name = "" if header is None else f" ({header[column]!r})"
        number = column + 1 if numbers is None else numbers[column]
        msg = f"{path}, column {number}{name}: every value is missing; remove the column"
        raise ValueError(msg)
