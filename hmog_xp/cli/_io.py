"""Files in and out of the command line: numeric tables (CSV or ``.npy``) and label columns.

Everything here works on NumPy arrays on the host; ``to_numpy`` (from the backend layer)
brings any backend's array back. Problems with a user's file raise :class:`ValueError` or
:class:`OSError` with a message that names the file and the first bad row; the command turns
them into one ``hmog-xp: error:`` line.
"""

from __future__ import annotations

import csv
import io
import pathlib
from collections.abc import Sequence

import numpy as np

from hmog_xp._backend.transfer import to_numpy
from hmog_xp._files import atomic_write

__all__ = ["format_table", "read_labels", "read_table", "to_numpy", "write_text"]


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


def _fast_table(text: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Parse a clean numeric CSV with NumPy's reader; None when anything is unusual.

    The slow path (:func:`_table_from_rows`) then parses the file field by field and says
    where the problem is.
    """
    text_lines = text.split("\n")
    first = next((i for i, line in enumerate(text_lines) if line.strip()), None)
    if first is None:
        return None
    try:
        header = not all(_is_number(field) for field in next(csv.reader([text_lines[first]])))
    except csv.Error:
        return None
    skip = first + 1 if header else first
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
    return np.asarray(table, dtype=np.float64), np.asarray(lines)


def _check_path(path: str | pathlib.Path) -> pathlib.Path:
    path = pathlib.Path(path)
    if not path.exists():
        msg = f"{path}: no such file"
        raise OSError(msg)
    if path.is_dir():
        msg = f"{path} is a directory, expected a file"
        raise OSError(msg)
    return path


def _table_from_rows(rows: list[list[str]], path: pathlib.Path) -> tuple[np.ndarray, np.ndarray]:
    """Parse CSV rows into a float table and the 1-based file line of every table row."""
    numbered = [(line, row) for line, row in enumerate(rows, start=1) if any(row)]
    if numbered and not all(_is_number(field) for field in numbered[0][1]):
        numbered = numbered[1:]  # a header row: some field of the first line is not a number
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
            try:
                table[index, column - 1] = float(field)
            except ValueError:
                msg = f"{path}, line {line}, column {column}: {field!r} is not a number"
                raise ValueError(msg) from None
    return table, np.asarray([line for line, _ in numbered])


def _check_finite(table: np.ndarray, path: pathlib.Path, lines: np.ndarray | None) -> None:
    finite = np.isfinite(table).all(axis=1)
    if finite.all():
        return
    first = int(np.flatnonzero(~finite)[0])
    where = f"line {int(lines[first])} (row index {first})" if lines is not None else ""
    where = where or f"row index {first}"
    values = ", ".join(str(v) for v in table[first][~np.isfinite(table[first])][:3])
    msg = (
        f"{path}, {where}: non-finite value(s) {values}; remove or impute rows with NaN or infinity"
    )
    raise ValueError(msg)


def read_table(path: str | pathlib.Path) -> np.ndarray:
    """Read a numeric data table from a ``.npy`` file or a comma-separated text file.

    Parameters
    ----------
    path : str or path
        A ``.npy`` file holding a 2-D numeric array, or a CSV file (any other name): numbers
        separated by commas, one observation per line, an optional header line (detected:
        a first line with any non-numeric field), blank lines ignored.

    Returns
    -------
    numpy.ndarray, shape (N, p)
        The observations, ``float64``.

    Raises
    ------
    OSError
        If the file is missing or unreadable.
    ValueError
        If the content is not a finite 2-D numeric table; the message names the first bad
        line (CSV) or row (``.npy``).
    """
    path = _check_path(path)
    if path.suffix.lower() == ".npy":
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
        _check_finite(table, path, None)
        return table
    text = _read_text(path)
    parsed = _fast_table(text)
    table, lines = parsed if parsed is not None else _table_from_rows(_parse_rows(text, path), path)
    _check_finite(table, path, lines)
    return table


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
