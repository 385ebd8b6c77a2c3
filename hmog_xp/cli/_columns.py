"""Which columns of a table are features: ``--columns``, ``--drop`` and ``--id-column``.

A column is named by its header name or by its 0-based index (a name wins when a header
holds a name that reads like an index). The id column is no feature: its text is carried
into every output as the first column. A feature column that is not numeric (a label column
of strings) is refused with a message that names it and the options that set it aside; it is
never used silently.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hmog_xp.cli._tables import RawTable, is_cell

__all__ = ["Selection", "parse_column_list", "resolve_column", "select_columns"]


@dataclass(frozen=True)
class Selection:  # numpydoc ignore=PR02
    """Hold the chosen feature columns of a table and its id column.

    Parameters
    ----------
    values : numpy.ndarray, shape (N, p)
        The feature columns, ``float64``, NaN where a value is missing.
    names : list of str, optional
        Their header names; None when the file has no header.
    ids : list of str, optional
        The id column's cells (as text); None without ``--id-column``.
    id_name : str, optional
        The id column's header name (``'id'`` when the file has no header).
    numbers : list of int
        The 1-based place in the file of each feature column.
    """

    values: np.ndarray
    names: list[str] | None
    ids: list[str] | None
    id_name: str | None
    numbers: list[int]


def parse_column_list(text: str | None) -> list[str] | None:
    """Split a ``--columns`` / ``--drop`` argument at commas (None stays None).

    Parameters
    ----------
    text : str, optional
        For example ``'a,b,3'``.

    Returns
    -------
    list of str, optional
        The stripped names or indices.
    """
    if text is None:
        return None
    return [part.strip() for part in text.split(",")]


def resolve_column(raw: RawTable, token: str, option: str) -> int:
    """Find a column by header name, else by 0-based index.

    Parameters
    ----------
    raw : RawTable
        The table.
    token : str
        A header name or an index.
    option : str
        The option being resolved (named in the messages).

    Returns
    -------
    int
        The column's 0-based index.

    Raises
    ------
    ValueError
        If no column has that name or index, or the name is on several columns.
    """
    n_columns = len(raw.columns)
    if raw.names is not None and token in raw.names:
        if raw.names.count(token) > 1:
            msg = f"{option} {token!r}: {raw.path} has several columns of that name; use an index"
            raise ValueError(msg)
        return raw.names.index(token)
    try:
        index = int(token)
    except ValueError:
        known = "it has no header" if raw.names is None else f"its columns: {raw.names}"
        msg = f"{option} {token!r}: {raw.path} has no column of that name ({known})"
        raise ValueError(msg) from None
    if not 0 <= index < n_columns:
        msg = f"{option} {token}: {raw.path} has columns 0 to {n_columns - 1} (indices from 0)"
        raise ValueError(msg)
    return index


def _id_text(column: np.ndarray) -> list[str]:
    if column.dtype == object:
        return [str(cell) for cell in column]
    return [
        "" if np.isnan(v) else str(int(v)) if float(v).is_integer() else repr(float(v))
        for v in column
    ]


def _refuse_text(raw: RawTable, index: int) -> None:
    column = raw.columns[index]
    bad = next(row for row, cell in enumerate(column) if not is_cell(str(cell)))
    where = f"row index {bad}" if raw.lines is None else f"line {int(raw.lines[bad])}"
    name = str(index) if raw.names is None else raw.names[index]
    column_number = f"column {index + 1}" + ("" if raw.names is None else f" ({name!r})")
    msg = (
        f"{raw.path}, {where}, {column_number}: {column[bad]!r} is not a number; a column "
        f"that is not a feature (labels, names, ids) must be set aside with --drop {name} "
        f"or --id-column {name}"
    )
    raise ValueError(msg)


def select_columns(
    raw: RawTable,
    *,
    columns: Sequence[str] | None = None,
    drop: Sequence[str] | None = None,
    id_column: str | None = None,
) -> Selection:
    """Choose the feature columns and the id column of a table.

    Parameters
    ----------
    raw : RawTable
        The table.
    columns : sequence of str, optional
        The feature columns, in this order, by name or 0-based index (``--columns``);
        every column but the id column when None.
    drop : sequence of str, optional
        Columns that are not features (``--drop``).
    id_column : str, optional
        The id column (``--id-column``), by name or index.

    Returns
    -------
    Selection
        The features as ``float64`` with their names, and the id column's text.

    Raises
    ------
    ValueError
        For an unknown or repeated column, no feature column left, or a feature column
        that is not numeric (named, with ``--drop`` / ``--id-column`` suggested).
    """
    id_index = None if id_column is None else resolve_column(raw, id_column, "--id-column")
    if columns is not None:
        chosen = [resolve_column(raw, token, "--columns") for token in columns]
        if len(set(chosen)) != len(chosen):
            msg = f"--columns {','.join(columns)} names a column twice"
            raise ValueError(msg)
        if id_index is not None and id_index in chosen:
            msg = f"--id-column {id_column} is also in --columns; the id column is no feature"
            raise ValueError(msg)
    else:
        chosen = [j for j in range(len(raw.columns)) if j != id_index]
    if drop is not None:
        dropped = {resolve_column(raw, token, "--drop") for token in drop}
        chosen = [j for j in chosen if j not in dropped]
    if not chosen:
        msg = f"{raw.path}: no feature column is left (check --columns, --drop, --id-column)"
        raise ValueError(msg)
    for j in chosen:
        if raw.columns[j].dtype == object:
            _refuse_text(raw, j)
    values = np.stack([raw.columns[j] for j in chosen], axis=1).astype(np.float64)
    names = None if raw.names is None else [raw.names[j] for j in chosen]
    numbers = [j + 1 for j in chosen]
    if id_index is None:
        return Selection(values, names, None, None, numbers)
    id_name = "id" if raw.names is None else raw.names[id_index]
    return Selection(values, names, _id_text(raw.columns[id_index]), id_name, numbers)
