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

import numpy as np

from hmog_xp._backend.transfer import to_numpy
from hmog_xp._files import atomic_write
from hmog_xp.cli._holes import check_values, is_missing

__all__ = [
    "Table",
    "format_exact",
    "format_table",
    "load_table",
    "read_labels",
    "read_table",
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
        The column names of the header line (CSV); None when there is none.
    lines : numpy.ndarray of int, shape (N,), optional
        The 1-based file line of each row (CSV); None for a ``.npy`` array.
    path : pathlib.Path
        The file.
    """

    values: np.ndarray
    header: list[str] | None
    lines: np.ndarray | None
    path: pathlib.Path

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


def _is_cell(field: str) -> bool:
    """Whether a field can be a data cell: a number or a missing-value marker."""
    return is_missing(field) or _is_number(field)


def _is_blank(row: list[str]) -> bool:
    """Whether a parsed CSV row is a blank line (no field, or one empty field)."""
    return len(row) <= 1 and not any(row)


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


def _fast_table(text: str) -> tuple[np.ndarray, np.ndarray, list[str] | None] | None:
    """Parse a clean numeric CSV with NumPy's reader; None when anything is unusual.

    Returns the table, the 1-based line of each row, and the header's fields (or None).

    The slow path (:func:`_table_from_rows`) then parses the file field by field and says
    where the problem is.
    """
    text_lines = text.split("\n")
    first = next((i for i, line in enumerate(text_lines) if line.strip()), None)
    if first is None:
        return None
    try:
        fields = [field.strip() for field in next(csv.reader([text_lines[first]]))]
    except csv.Error:
        return None
    header = None if all(_is_cell(field) for field in fields) else fields
    skip = first if header is None else first + 1
    lines = [i + 1 for i in range(skip, len(text_lines)) if text_lines[i].strip()]
    if not lines:
        return None
    try:
        table = np.loadtxt(
            io.StringIO(text), delimiter=",", skiprows=skip, ndmin=2, comments=None, quotechar='"'
        )
    except ValueError:
        return None
    if len(lines) != table.shape[0]:
        return None
    return np.asarray(table, dtype=np.float64), np.asarray(lines), header


def _check_path(path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.exists():
        msg = f"{path}: no such file"
        raise OSError(msg)
    if path.is_dir():
        msg = f"{path} is a directory, expected a file"
        raise OSError(msg)
    return path


def _table_from_rows(
    rows: list[list[str]], path: pathlib.Path
) -> tuple[np.ndarray, np.ndarray, list[str] | None]:
    """Parse CSV rows into a float table (NaN for missing cells), row lines and the header."""
    numbered = [(line, row) for line, row in enumerate(rows, start=1) if not _is_blank(row)]
    header = None
    if numbered and not all(_is_cell(field) for field in numbered[0][1]):
        header = numbered[0][1]  # a header row: some field of the first line is not a number
        numbered = numbered[1:]
    if not numbered:
        msg = f"{path} holds no data rows"
        raise ValueError(msg)
    n_columns = len(numbered[0][1])
    table = np.empty((len(numbered), n_columns), dtype=np.float64)
    for index, (line, row) in enumerate(numbered):
        if len(row) != n_columns:
            msg = (
                f"{path}, line {line}: {len(row)} columns where the first data row has {n_columns}"
            )
            raise ValueError(msg)
        for column, field in enumerate(row, start=1):
            if is_missing(field):
                table[index, column - 1] = np.nan
                continue
            try:
                table[index, column - 1] = float(field)
            except ValueError:
                msg = f"{path}, line {line}, column {column}: {field!r} is not a number"
                raise ValueError(msg) from None
    return table, np.asarray([line for line, _ in numbered]), header


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


def load_table(path: str | pathlib.Path, *, allow_missing: bool = False) -> Table:
    """Read a numeric data table, with its header, from a ``.npy`` or a CSV file.

    Parameters
    ----------
    path : str or path
        A ``.npy`` file holding a 2-D numeric array (NaN for missing values), or a CSV file
        (any other name): numbers separated by commas, one observation per line, an optional
        header line (detected: a first line with a field that is neither a number nor a
        missing value), blank lines ignored. Empty cells and ``NA`` / ``NaN`` (any case) are
        missing values.
    allow_missing : bool, default False
        Whether missing values are accepted (as NaN) or refused.

    Returns
    -------
    Table
        The observations (``float64``, shape ``(N, p)``), the header and the row lines.

    Raises
    ------
    OSError
        If the file is missing or unreadable.
    ValueError
        If the content is not a 2-D numeric table, holds an infinite value, a missing value
        without ``allow_missing``, or a row with no observed value; the message names the
        file and the first bad line (CSV) or row (``.npy``) and column.
    """
    path = _check_path(path)
    if path.suffix.lower() == ".npy":
        values, lines, header = _read_npy_table(path), None, None
    else:
        text = _read_text(path)
        parsed = _fast_table(text)
        if parsed is None:
            parsed = _table_from_rows(_parse_rows(text, path), path)
        values, lines, header = parsed
    check_values(values, path, lines, allow_missing=allow_missing)
    return Table(values, header, lines, path)


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


def format_table(values: np.ndarray, header: Sequence[str]) -> str:
    """Format a column or a table of numbers as CSV text with a header line.

    Parameters
    ----------
    values : numpy.ndarray, shape (N,) or (N, m)
        Integers (written as such) or floats (written with 6 significant digits).
    header : sequence of str
        The column names, one per column.

    Returns
    -------
    str
        The CSV text, ending with a newline.
    """
    table = values.reshape(values.shape[0], -1)
    out = io.StringIO()
    out.write(",".join(header) + "\n")
    if np.issubdtype(table.dtype, np.integer):
        np.savetxt(out, table, fmt="%d", delimiter=",")
    else:
        np.savetxt(out, table, fmt="%.6g", delimiter=",")
    return out.getvalue()


def format_exact(values: np.ndarray, header: Sequence[str] | None) -> str:
    """Format a table as CSV text that reads back to the same ``float64`` values.

    Every number is written with Python's shortest round-trip representation (``repr``), so
    reading the text gives back exactly the values written.

    Parameters
    ----------
    values : numpy.ndarray, shape (N, p)
        The table.
    header : sequence of str, optional
        The column names (quoted where CSV needs it); no header line when None.

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
    return out.getvalue()


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
