"""Safe files: atomic replacement of outputs, and the error raised for a damaged model file.

Every file hmog_xp writes (saved models, the command line's CSV outputs and figures) goes
through :func:`atomic_write`: the content is written to a temporary file beside the target,
flushed to disk, and renamed over the target in one step. An interrupted or failed write
leaves the previous file as it was and no temporary behind. This module imports only the
standard library, so every layer (the backend layer included) may use it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

__all__ = ["ModelFileError", "atomic_write", "same_file"]

#: Mode given to a new file before the process umask applies (what ``open(path, "w")`` uses).
_NEW_FILE_MODE = 0o666


class ModelFileError(ValueError):
    """A file given to :meth:`hmog_xp.HMoG.load` is not a usable saved model.

    Raised for files that are not ``.npz`` archives, are truncated or corrupted, hold arrays
    or metadata that a saved model does not have, or whose parameters do not describe a
    valid distribution. The message names the file and the problem. A missing file raises
    :class:`FileNotFoundError` instead.
    """


def _temporary_beside(target: Path) -> tuple[Path, int]:
    """Create a new, empty temporary file in the target's directory (umask-default mode)."""
    for _ in range(100):
        candidate = target.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
        try:
            descriptor = os.open(
                candidate,
                os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                _NEW_FILE_MODE,
            )
        except FileExistsError:
            continue
        return candidate, descriptor
    msg = f"could not create a temporary file beside {target}"
    raise FileExistsError(msg)


def _sync_directory(directory: Path) -> None:
    """Flush a directory entry to disk where the platform allows it (POSIX)."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike[str]) -> Iterator[BinaryIO]:
    """Open a binary stream whose content replaces ``path`` only if the block completes.

    The stream writes a temporary file in the directory of ``path`` (symbolic links are
    followed, so the file they point to is replaced and the link kept). When the ``with``
    block ends normally the temporary is flushed, synced to disk and renamed over ``path``
    with :func:`os.replace`. When it raises (``KeyboardInterrupt`` included) the temporary
    is removed and ``path`` is left untouched. A new file gets the mode ``open`` would give
    it (``0o666`` less the umask); a replaced file keeps its mode.

    Parameters
    ----------
    path : str or path-like
        The destination. Its parent directory must exist.

    Yields
    ------
    BinaryIO
        The stream to write the content to.

    Raises
    ------
    IsADirectoryError
        If ``path`` is a directory.
    OSError
        If the directory cannot be written to.
    """
    target = Path(os.path.realpath(path))
    if target.is_dir():
        msg = f"{path} is a directory; cannot write a file there"
        raise IsADirectoryError(msg)
    temporary, descriptor = _temporary_beside(target)
    try:
        with os.fdopen(descriptor, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileNotFoundError):
            os.chmod(temporary, stat.S_IMODE(os.stat(target).st_mode))
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    _sync_directory(target.parent)


def same_file(first: str | os.PathLike[str], second: str | os.PathLike[str]) -> bool:
    """Whether two paths name the same file (after symbolic links, or as hard links).

    Parameters
    ----------
    first, second : str or path-like
        The paths; either may not exist yet.

    Returns
    -------
    bool
        True when both resolve to the same path, or both exist and are the same file.
    """
    if Path(first).resolve() == Path(second).resolve():
        return True
    try:
        return os.path.samefile(first, second)
    except OSError:
        return False
