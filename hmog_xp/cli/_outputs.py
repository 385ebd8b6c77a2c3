"""Which files a command writes: checked against its inputs and each other before any work.

A command refuses to write an output over one of its inputs (``fit data.csv --labels
data.csv``) or two outputs to one file, comparing resolved paths and, when both exist, the
files themselves (so symbolic and hard links are caught). The outputs are then written
atomically (:func:`hmog_xp._files.atomic_write`), so an interrupted command leaves every
previous file intact.
"""

from __future__ import annotations

import pathlib
from collections.abc import Mapping

from hmog_xp._files import same_file

__all__ = ["check_outputs", "model_path"]

PathLike = str | pathlib.Path


def model_path(path: str | pathlib.Path) -> pathlib.Path:
    """Return the file ``HMoG.save(path)`` writes (``.npz`` appended when missing).

    Parameters
    ----------
    path : str or path
        The ``--out`` argument.

    Returns
    -------
    pathlib.Path
        The model file.
    """
    path = pathlib.Path(path)
    return path if path.suffix == ".npz" else path.with_name(path.name + ".npz")


def check_outputs(
    inputs: Mapping[str, PathLike | None],
    outputs: Mapping[str, PathLike | tuple[PathLike, ...] | None],
    *,
    figures: tuple[str, ...] = (),
) -> None:
    """Refuse outputs that would overwrite an input, each other, or a directory.

    Parameters
    ----------
    inputs : mapping of str to path or None
        Each input file by the name the user knows it by (``'DATA'``, ``'--true-labels'``);
        None entries (options not given) are ignored.
    outputs : mapping of str to path, tuple of paths, or None
        Each output by its option name: the file, or every file the option may name (the
        ``--out`` argument as given and with ``.npz`` appended); None entries are ignored.
    figures : tuple of str
        The names in ``outputs`` that are figures: their suffix must be an image format.

    Raises
    ------
    ValueError
        If an output is the same file as an input or as another output, is a directory, or
        is a figure of an unknown format; the message names both files.
    """
    given_inputs = [(name, path) for name, path in inputs.items() if path is not None]
    given_outputs = [
        (name, path)
        for name, paths in outputs.items()
        if paths is not None
        for path in dict.fromkeys(paths if isinstance(paths, tuple) else (paths,))
    ]
    for index, (name, path) in enumerate(given_outputs):
        for input_name, input_path in given_inputs:
            if same_file(path, input_path):
                msg = f"{name} {path} would overwrite the input {input_name} {input_path}"
                raise ValueError(msg)
        for other_name, other_path in given_outputs[:index]:
            if other_name != name and same_file(path, other_path):
                msg = f"{other_name} {other_path} and {name} {path} name the same file"
                raise ValueError(msg)
        if pathlib.Path(path).is_dir():
            msg = f"{name} {path} is a directory, expected a file name"
            raise ValueError(msg)
        if name in figures:
            _check_figure_format(name, path)


def _check_figure_format(name: str, path: PathLike) -> None:
    from matplotlib.backend_bases import FigureCanvasBase

    formats = set(FigureCanvasBase.get_supported_filetypes())
    suffix = pathlib.Path(path).suffix.lower().lstrip(".")
    if suffix not in formats:
        known = ", ".join(sorted(formats))
        msg = f"{name} {path}: unknown image format {suffix!r}; use one of {known}"
        raise ValueError(msg)
