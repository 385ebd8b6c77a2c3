"""Reading the tables people have: text files of any common delimiter, ``.npy`` and ``.parquet``.

A file is read into a :class:`RawTable`: column names (when there is a header) and one array
per column, ``float64`` when every cell of the column is a number or a missing value, else the
cells' text (``object``). Which columns are features is decided afterwards
(:mod:`hmog_xp.cli._columns`), so a label or id column of strings can be dropped or carried.

Text files: the delimiter (comma, semicolon, tab or runs of whitespace) is detected from the
first lines unless given, ``.tsv`` files are tab-separated; a first row is a header when some
field of it is not a number (nor a missing-value marker) while the rows below hold numbers in
that column (``csv.Sniffer`` decides when no column is numeric). Everything stays on the host.
"""

from __future__ import annotations

import csv
import io
import pathlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from hmog_xp.cli._holes import MISSING_MARKERS, is_missing

__all__ = [
    "DELIMITERS",
    "RawTable",
    "detect_delimiter",
    "detect_header",
    "is_cell",
    "parse_delimiter",
    "read_raw",
]

#: Names accepted by ``--delimiter`` (any other single character is used as given); None
#: stands for runs of whitespace.
DELIMITERS: dict[str, str | None] = {
    "comma": ",",
    "semicolon": ";",
    "tab": "\t",
    "\\t": "\t",
    "whitespace": None,
    "space": None,
}

#: Candidates of the detection, in order of preference on a tie (None: whitespace).
_CANDIDATES: tuple[str | None, ...] = (",", "\t", ";", None)

#: How many non-blank lines the detection looks at.
_SAMPLE = 200

PARQUET_HINT = "pip install 'hmog-xp[parquet]' (pandas and pyarrow)"


@dataclass(frozen=True)
class RawTable:  # numpydoc ignore=PR02
    """Hold the columns of a file before the features are chosen.

    Parameters
    ----------
    path : pathlib.Path
        The file.
    names : list of str, optional
        The header's column names; None when the file has no header.
    columns : list of numpy.ndarray, each shape (N,)
        One array per column: ``float64`` (NaN where missing) when numeric, else ``object``
        holding each cell's text.
    lines : numpy.ndarray of int, shape (N,), optional
        The 1-based file line of each row (text files); None otherwise.
    """

    path: pathlib.Path
    names: list[str] | None
    columns: list[np.ndarray]
    lines: np.ndarray | None


def is_cell(field: str) -> bool:
    """Whether a field can be a data cell: a number or a missing-value marker.

    Parameters
    ----------
    field : str
        The stripped field.

    Returns
    -------
    bool
        True for a number or a missing-value marker.
    """
    if is_missing(field):
        return True
    try:
        float(field)
    except ValueError:
        return False
    return True


def parse_delimiter(text: str) -> str | None:
    """Turn a ``--delimiter`` argument into a delimiter character (None: whitespace).

    Parameters
    ----------
    text : str
        ``comma``, ``semicolon``, ``tab``, ``whitespace`` or a single character.

    Returns
    -------
    str or None
        The character, or None for runs of whitespace.

    Raises
    ------
    ValueError
        For anything else.
    """
    key = text.lower()
    if key in DELIMITERS:
        return DELIMITERS[key]
    if len(text) == 1 and text not in '"\r\n':
        return None if text == " " else text
    msg = f"--delimiter {text!r}: expected comma, semicolon, tab, whitespace or a single character"
    raise ValueError(msg)


def _split(lines: Sequence[str], delimiter: str | None, path: pathlib.Path) -> list[list[str]]:
    if delimiter is None:
        return [line.split() for line in lines]
    try:
        return [
            [field.strip() for field in row]
            for row in csv.reader(io.StringIO("\n".join(lines)), delimiter=delimiter)
        ]
    except csv.Error as exc:
        msg = f"{path} is not a readable CSV file: {exc}"
        raise ValueError(msg) from None


def detect_delimiter(lines: Sequence[str]) -> str | None:
    """Choose the delimiter of the non-blank lines of a text table.

    A candidate (comma, tab, semicolon, whitespace) counts when it splits some line in two;
    among those, one that gives every line the same number of fields wins, the one whose
    fields are most often numbers first (then the order above); when none is consistent,
    the one most lines agree with.

    Parameters
    ----------
    lines : sequence of str
        The first non-blank lines of the file.

    Returns
    -------
    str or None
        The delimiter (None: whitespace); a comma when no candidate splits any line.
    """
    best: tuple[float, ...] | None = None
    chosen: str | None = ","
    for rank, candidate in enumerate(_CANDIDATES):
        try:
            rows = _split(lines, candidate, pathlib.Path("sample"))
        except ValueError:
            continue
        counts = [len(row) for row in rows]
        if not counts or max(counts) <= 1:
            continue
        modal = max(set(counts), key=counts.count)
        agree = counts.count(modal) / len(counts)
        fields = [field for row in rows for field in row]
        numeric = sum(is_cell(field) for field in fields) / len(fields)
        score = (float(agree == 1.0), numeric if agree == 1.0 else agree, -rank)
        if best is None or score > best:
            best, chosen = score, candidate
    return chosen


def detect_header(rows: Sequence[Sequence[str]], sample: str = "") -> bool:
    """Decide whether the first of the (non-blank) rows is a header.

    It is one when some field is not a number nor a missing-value marker while every row
    below holds numbers (or holes) in that column. It is data when every field is a cell, or
    when a column is numeric in it and below. When no column is numeric (strings only),
    ``csv.Sniffer`` decides from the text.

    Parameters
    ----------
    rows : sequence of sequence of str
        The first rows, split into stripped fields.
    sample : str, default ''
        The same lines as text, for ``csv.Sniffer``.

    Returns
    -------
    bool
        True when the first row is a header.
    """
    if not rows:
        return False
    first, body = rows[0], rows[1:]
    if all(is_cell(field) for field in first):
        return False
    if not body:
        return True
    numeric_below = [
        all(is_cell(row[j]) for row in body if j < len(row)) for j in range(len(first))
    ]
    if any(
        below and not is_cell(field) for field, below in zip(first, numeric_below, strict=False)
    ):
        return True
    if any(numeric_below):
        return False
    try:
        return bool(csv.Sniffer().has_header(sample))
    except csv.Error:
        return False


def _text_rows(
    path: pathlib.Path, delimiter: str | bool | None, header: bool | None
) -> tuple[list[str] | None, list[list[str]] | np.ndarray, list[int]]:
    """The header, the rows (split, or a float table when the file is clean) and their lines."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        msg = f"{path} is not a text CSV file ({exc.reason} at byte {exc.start})"
        raise ValueError(msg) from None
    lines = text.splitlines()
    numbers = [i + 1 for i, line in enumerate(lines) if line.strip()]
    kept = [lines[i - 1] for i in numbers]
    if delimiter is True:  # not given: detect
        sep = "\t" if path.suffix.lower() == ".tsv" else detect_delimiter(kept[:_SAMPLE])
    else:
        sep = delimiter if isinstance(delimiter, str) else None
    has_header = header
    if has_header is None:
        has_header = detect_header(_split(kept[:_SAMPLE], sep, path), "\n".join(kept[:_SAMPLE]))
    fast = _fast_numbers(kept[1:] if has_header else kept, sep)
    if fast is not None:
        names = _split(kept[:1], sep, path)[0] if has_header and kept else None
        return names, fast, numbers[1:] if has_header else numbers
    rows = _split(kept, sep, path)
    if len(rows) != len(kept):  # a quoted field spanning lines: number rows by csv's count
        numbers = list(range(1, len(rows) + 1))
    rows_lines = [
        (n, row) for n, row in zip(numbers, rows, strict=False) if len(row) > 1 or any(row)
    ]
    names = None
    if has_header and rows_lines:
        names = rows_lines[0][1]
        rows_lines = rows_lines[1:]
    return names, [row for _, row in rows_lines], [n for n, _ in rows_lines]


def _fast_numbers(lines: list[str], sep: str | None) -> np.ndarray | None:
    """Parse clean numeric lines with NumPy's reader; None when anything is unusual."""
    if not lines:
        return None
    quote = None if sep is None else '"'
    try:
        table = np.loadtxt(
            io.StringIO("\n".join(lines)), delimiter=sep, ndmin=2, comments=None, quotechar=quote
        )
    except ValueError:
        return None
    if table.shape[0] != len(lines):
        return None
    return np.asarray(table, dtype=np.float64)


def _case_variants(word: str) -> list[str]:
    variants = [""]
    for char in word:
        variants = [v + c for v in variants for c in {char.lower(), char.upper()}]
    return variants


#: Every spelling of the missing-value markers (any case), for a vectorised look-up.
_MARKER_SPELLINGS = sorted({v for m in MISSING_MARKERS for v in _case_variants(m)})


def _numeric_column(cells: np.ndarray, holes: np.ndarray | None = None) -> np.ndarray:
    """The column as ``float64`` (NaN for holes), or its text when some cell is no number."""
    cells = cells.astype(str, copy=False)
    if holes is None:
        holes = np.isin(cells, _MARKER_SPELLINGS)
    try:
        return np.where(holes, "nan", cells).astype(np.float64)
    except ValueError:
        return cells.astype(object)


def _read_text_table(
    path: pathlib.Path, delimiter: str | bool | None, header: bool | None
) -> RawTable:
    names, rows, lines = _text_rows(path, delimiter, header)
    if isinstance(rows, np.ndarray):
        if names is not None and len(names) != rows.shape[1]:
            msg = f"{path}: the header has {len(names)} names but the rows {rows.shape[1]} columns"
            raise ValueError(msg)
        return RawTable(path, names, list(rows.T), np.asarray(lines))
    if not rows:
        msg = f"{path} holds no data rows"
        raise ValueError(msg)
    width = len(rows[0])
    for line, row in zip(lines, rows, strict=False):
        if len(row) != width:
            msg = f"{path}, line {line}: {len(row)} columns where the first data row has {width}"
            raise ValueError(msg)
    if names is not None and len(names) != width:
        msg = f"{path}: the header has {len(names)} names but the data rows have {width} columns"
        raise ValueError(msg)
    cells = np.asarray(rows, dtype=str).reshape(len(rows), width)
    holes = np.isin(cells, _MARKER_SPELLINGS)
    try:  # every column numeric: one conversion
        columns = list(np.where(holes, "nan", cells).astype(np.float64).T)
    except ValueError:
        columns = [_numeric_column(cells[:, j], holes[:, j]) for j in range(width)]
    return RawTable(path, names, columns, np.asarray(lines))


def _read_parquet(path: pathlib.Path) -> RawTable:
    try:
        import pandas as pd

        frame = pd.read_parquet(path)
    except ImportError as exc:
        msg = f"{path}: reading .parquet files needs pandas and pyarrow ({exc}); {PARQUET_HINT}"
        raise ValueError(msg) from None
    except Exception as exc:  # pyarrow's errors are of its own types
        msg = f"{path} is not a readable .parquet file: {' '.join(str(exc).split())}"
        raise ValueError(msg) from None
    if frame.shape[0] == 0:
        msg = f"{path} holds no data rows"
        raise ValueError(msg)
    columns = []
    for name in frame.columns:
        series = frame[name]
        if pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series):
            columns.append(series.to_numpy(dtype=np.float64, na_value=np.nan))
        else:
            text = ["" if pd.isna(v) else str(v) for v in series.tolist()]
            columns.append(_numeric_column(np.asarray(text, dtype=str)))
    return RawTable(path, [str(name) for name in frame.columns], columns, None)


def read_raw(
    path: pathlib.Path,
    *,
    delimiter: str | bool | None = True,
    header: bool | None = None,
    npy: np.ndarray | None = None,
) -> RawTable:
    """Read a text table or a ``.parquet`` file (or wrap a loaded ``.npy`` array) by columns.

    Parameters
    ----------
    path : pathlib.Path
        The file (checked to exist).
    delimiter : str, None or True, default True
        The delimiter of a text file: True detects it (tab for ``.tsv``), None is runs of
        whitespace.
    header : bool, optional
        Whether the first row of a text file is a header; detected when None.
    npy : numpy.ndarray, shape (N, p), optional
        A ``.npy`` array already loaded and checked (numeric columns, no names).

    Returns
    -------
    RawTable
        The columns, their names and the rows' lines.

    Raises
    ------
    ValueError
        If the file is not a readable table (the message names the file and the line).
    """
    if npy is not None:
        return RawTable(path, None, [npy[:, j] for j in range(npy.shape[1])], None)
    if path.suffix.lower() == ".parquet":
        return _read_parquet(path)
    return _read_text_table(path, delimiter, header)
