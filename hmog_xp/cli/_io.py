"""Files in and out of the command line: numeric tables (CSV or ``.npy``) and label columns.

Everything here works on NumPy arrays on the host; ``to_numpy`` (from the backend layer)
brings any backend's array back. Problems with a user's file raise :class:`ValueError` or
:class:`OSError` with a message that names the file and the first bad row; the command turns
them into one ``hmog-xp: error:`` line. Empty, ``NA`` and ``NaN`` cells are missing values
(NaN in the table), accepted only when the caller allows them (:mod:`hmog_xp.cli._holes`).
"""

from __future__ import annotations

import csv
import io
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hmog_xp._backend.transfer import to_numpy
from hmog_xp._files import atomic_write
from hmog_xp.cli._columns import parse_column_list, select_columns
from hmog_xp.cli._holes import check_values
from hmog_xp.cli._tables import parse_delimiter, read_raw

__all__ = [
    "Table",
    "format_exact",
    "format_table",
    "load_table",
    "read_labels",
    "read_table",
    "table_from_args",
    "to_numpy",
    "write_npy",
    "write_text",
]


@dataclass(frozen=True)
class Table:  # numpydoc ignore=PR02
    """Hold a numeric table read from a file, with what is needed to write it back.

    Parameters
    ----------
    values : numpy.ndarray, shape (N, p)
        The observations, ``float64``, NaN where a value is missing.
    header : list of str, optional
        The names of the feature columns (from the header line); None when there is none.
    lines : numpy.ndarray of int, shape (N,), optional
        The 1-based file line of each row (CSV); None for a ``.npy`` array.
    path : pathlib.Path
        The file.
    ids : list of str, optional
        The ``--id-column`` cells, carried into the outputs; None without it.
    id_name : str, optional
        The id column's name.
    numbers : list of int, optional
        The 1-based place of each feature column in the file (None: 1 to p).
    """

    values: np.ndarray
    header: list[str] | None
    lines: np.ndarray | None
    path: pathlib.Path
    ids: list[str] | None = None
    id_name: str | None = None
    numbers: list[int] | None = None

    @property
    def id_pair(self) -> tuple[str, list[str]] | None:
        """The id column's name and cells, for the writers; None without an id column."""
        if self.ids is None or self.id_name is None:
            return None
        return self.id_name, self.ids

    @property
    def n_missing(self) -> int:
        """The number of missing values (NaN entries) in the table."""
        return int(np.isnan(self.values).sum())


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _read_text(path: pathlib.Path) -> str:
    try:
        return path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"{path} is not a text CSV file ({exc.reason} at byte {exc.start})"
        raise ValueError(msg) from None


def _parse_rows(text: str, path: pathlib.Path) -> list[list[str]]:
    try:
        return [[field.strip() for field in row] for row in csv.reader(io.StringIO(text))]
    except csv.Error as exc:
        msg = f"{path} is not a readable CSV file: {exc}"
        raise ValueError(msg) from None


def _load_npy(path: pathlib.Path) -> np.ndarray:
    """Load a ``.npy`` array without unpickling; any damage is a ``ValueError``."""
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, EOFError) as exc:
        msg = f"{path} is not a readable .npy array: {exc}"
        raise ValueError(msg) from None
    if not isinstance(array, np.ndarray):  # an .npz archive under an .npy name
        array.close()
        msg = f"{path} is an .npz archive, not a .npy array"
        raise ValueError(msg)
    return array


def _check_path(path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.exists():
        msg = f"{path}: no such file"
        raise OSError(msg)
    if path.is_dir():
        msg = f"{path} is a directory, expected a file"
        raise OSError(msg)
    return path


def _read_npy_table(path: pathlib.Path) -> np.ndarray:
    array = _load_npy(path)
    if array.ndim != 2:
        msg = f"{path} holds an array of shape {array.shape}; expected 2-D (N rows, p columns)"
        raise ValueError(msg)
    if not (np.issubdtype(array.dtype, np.number) or array.dtype == np.bool_):
        msg = f"{path} holds {array.dtype} values; expected numbers"
        raise ValueError(msg)
    if np.iscomplexobj(array):
        msg = f"{path} holds complex values; expected real numbers"
        raise ValueError(msg)
    table = np.asarray(array, dtype=np.float64)
    if table.shape[0] == 0 or table.shape[1] == 0:
        msg = f"{path} holds an empty array of shape {table.shape}"
        raise ValueError(msg)
    return table


def load_table(
    path: str | pathlib.Path,
    *,
    allow_missing: bool = False,
    delimiter: str | bool | None = True,
    header: bool | None = None,
    columns: Sequence[str] | None = None,
    drop: Sequence[str] | None = None,
    id_column: str | None = None,
) -> Table:
    """Read a numeric data table, with its header, from a text, ``.npy`` or ``.parquet`` file.

    Parameters
    ----------
    path : str or path
        A ``.npy`` file holding a 2-D numeric array (NaN for missing values), a ``.parquet``
        file (needs pandas and pyarrow), or a text table (any other name): fields separated
        by commas, semicolons, tabs or whitespace (detected; tabs for ``.tsv``), one
        observation per line, an optional header line (detected), blank lines ignored.
        Empty cells and ``NA`` / ``NaN`` (any case) are missing values.
    allow_missing : bool, default False
        Whether missing values are accepted (as NaN) or refused.
    delimiter : str, None or True, default True
        The delimiter of a text file; True detects it, None means runs of whitespace.
    header : bool, optional
        Whether the first row of a text file is a header; detected when None.
    columns, drop : sequence of str, optional
        The feature columns / the columns that are not features, by name or 0-based index.
    id_column : str, optional
        A column carried into the outputs instead of used as a feature.

    Returns
    -------
    Table
        The observations (``float64``, shape ``(N, p)``), their names and the row lines.

    Raises
    ------
    OSError
        If the file is missing or unreadable.
    ValueError
        If the content is not a table, a feature column is not numeric, or it holds an
        infinite value, a missing value without ``allow_missing``, or a row with no observed
        value; the message names the file and the first bad line (or row) and column.
    """
    path = _check_path(path)
    npy = _read_npy_table(path) if path.suffix.lower() == ".npy" else None
    raw = read_raw(path, delimiter=delimiter, header=header, npy=npy)
    chosen = select_columns(raw, columns=columns, drop=drop, id_column=id_column)
    numbers = chosen.numbers
    labels = None if numbers == list(range(1, len(numbers) + 1)) else [str(n) for n in numbers]
    if labels is not None and chosen.names is not None:
        labels = [f"{n} ({name!r})" for n, name in zip(labels, chosen.names, strict=True)]
    check_values(chosen.values, path, raw.lines, allow_missing=allow_missing, labels=labels)
    return Table(chosen.values, chosen.names, raw.lines, path, chosen.ids, chosen.id_name, numbers)


def table_from_args(args: Any, *, allow_missing: bool) -> Table:
    """Read ``args.data`` with the command's reading options (``--delimiter`` and the rest).

    Parameters
    ----------
    args : argparse.Namespace
        ``data``, ``delimiter``, ``header``, ``columns``, ``drop`` and ``id_column``.
    allow_missing : bool
        Whether missing values are accepted.

    Returns
    -------
    Table
        The table, as :func:`load_table` reads it.
    """
    delimiter = True if args.delimiter is None else parse_delimiter(args.delimiter)
    return load_table(
        args.data,
        allow_missing=allow_missing,
        delimiter=delimiter,
        header=args.header,
        columns=parse_column_list(args.columns),
        drop=parse_column_list(args.drop),
        id_column=args.id_column,
    )


def read_table(path: str | pathlib.Path, *, allow_missing: bool = False) -> np.ndarray:
    """Read a numeric data table from a ``.npy`` file or a comma-separated text file.

    Parameters
    ----------
    path : str or path
        A ``.npy`` file or a CSV file, as for :func:`load_table`.
    allow_missing : bool, default False
        Whether missing values (empty, ``NA``, ``NaN``) are accepted (as NaN) or refused.

    Returns
    -------
    numpy.ndarray, shape (N, p)
        The observations, ``float64``.

    Raises
    ------
    OSError
        If the file is missing or unreadable.
    ValueError
        As :func:`load_table`.
    """
    return load_table(path, allow_missing=allow_missing).values


def read_labels(path: str | pathlib.Path, n_rows: int) -> np.ndarray:
    """Read one label per observation from a one-column CSV (optional header) or ``.npy``.

    Parameters
    ----------
    path : str or path
        The label file. Labels may be any strings or numbers; only equality matters.
    n_rows : int
        The number of observations the labels must match.

    Returns
    -------
    numpy.ndarray, shape (n_rows,)
        The labels (strings from CSV, the stored dtype from ``.npy``).

    Raises
    ------
    OSError
        If the file is missing or unreadable.
    ValueError
        If the file does not hold exactly one label per observation.
    """
    path = _check_path(path)
    if path.suffix.lower() == ".npy":
        labels = _load_npy(path)
        labels = labels.reshape(-1) if labels.ndim == 2 and 1 in labels.shape else labels
    else:
        rows = [row for row in _parse_rows(_read_text(path), path) if any(row)]
        if any(len(row) != 1 for row in rows):
            msg = f"{path} must hold one label per line (a single column)"
            raise ValueError(msg)
        fields = [row[0] for row in rows]
        numeric_body = all(_is_number(field) for field in fields[1:])
        if fields and not _is_number(fields[0]) and (numeric_body or len(fields) == n_rows + 1):
            fields = fields[1:]  # a header line
        labels = np.asarray(fields)
    if labels.shape != (n_rows,):
        msg = f"{path} holds {labels.size} labels for {n_rows} observations"
        raise ValueError(msg)
    return labels


def _quote(field: str) -> str:
    """One CSV field, quoted where needed (a comma, a quote, a line break, edge spaces)."""
    out = io.StringIO()
    csv.writer(out, lineterminator="").writerow([field])
    text = out.getvalue()
    return f'"{field}"' if text == field and field != field.strip() else text


def _prefix(body: str, ids: tuple[str, Sequence[str]] | None, header: bool) -> str:
    """Put the id column in front of every line of CSV text (after the header, if any)."""
    if ids is None:
        return body
    name, cells = ids
    lines = body.splitlines()
    first = [f"{_quote(name)},{lines[0]}"] if header else []
    rest = lines[1:] if header else lines
    return (
        "\n".join(first + [f"{_quote(c)},{line}" for c, line in zip(cells, rest, strict=False)])
        + "\n"
    )


def format_table(
    values: np.ndarray, header: Sequence[str], ids: tuple[str, Sequence[str]] | None = None
) -> str:
    """Format a column or a table of numbers as CSV text with a header line.

    Parameters
    ----------
    values : numpy.ndarray, shape (N,) or (N, m)
        Integers (written as such) or floats (written with 6 significant digits).
    header : sequence of str
        Column names, one per column.
    ids : tuple of (str, sequence of str), optional
        An id column's name and its N cells, written as the first column.

    Returns
    -------
    str
        The CSV text, ending with a newline.
    """
    table = values.reshape(values.shape[0], -1)
    out = io.StringIO()
    out.write(",".join(_quote(name) for name in header) + "\n")
    if np.issubdtype(table.dtype, np.integer):
        np.savetxt(out, table, fmt="%d", delimiter=",")
    else:
        np.savetxt(out, table, fmt="%.6g", delimiter=",")
    return _prefix(out.getvalue(), ids, header=True)


def format_exact(
    values: np.ndarray,
    header: Sequence[str] | None,
    ids: tuple[str, Sequence[str]] | None = None,
) -> str:
    """Format a table as CSV text that reads back to the same ``float64`` values.

    Every number is written with Python's shortest round-trip representation (``repr``), so
    reading the text gives back exactly the values written.

    Parameters
    ----------
    values : numpy.ndarray, shape (N, p)
        The table.
    header : sequence of str, optional
        The column names (quoted where CSV needs it); no header line when None (nor for the
        id column).
    ids : tuple of (str, sequence of str), optional
        An id column's name and its N cells, written as the first column.

    Returns
    -------
    str
        The CSV text, ending with a newline.
    """
    out = io.StringIO()
    if header is not None:
        csv.writer(out, lineterminator="\n").writerow(header)
    for row in np.asarray(values, dtype=np.float64).tolist():
        out.write(",".join(map(repr, row)) + "\n")
    return _prefix(out.getvalue(), ids, header=header is not None)


def write_npy(path: str | pathlib.Path, values: np.ndarray) -> None:
    """Write an array to a ``.npy`` file atomically (no pickle), creating parent directories.

    Parameters
    ----------
    path : str or path
        The destination.
    values : numpy.ndarray
        The array.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        np.save(handle, values, allow_pickle=False)


def write_text(path: str | pathlib.Path, text: str) -> None:
    """Write text to a file atomically, creating its parent directories.

    The previous file (if any) is replaced only once the new content is on disk
    (:func:`hmog_xp._files.atomic_write`).

    Parameters
    ----------
    path : str or path
        The destination.
    text : str
        The content.
    """
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_write(path) as handle:
        handle.write(text.encode("utf-8"))
