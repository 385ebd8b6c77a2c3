"""The ``hmog-xp`` command and files: outputs never overwrite inputs, damaged models, interrupts.

Like tests/test_cli.py, these drive :func:`hmog_xp.cli.main` in-process and run once, when
NumPy is among the selected test backends.
"""

from __future__ import annotations

import os
import pathlib
import sys

import numpy as np
import pytest

from hmog_xp.cli import main
from tests.test_cli import PNG_SIGNATURE, _assert_one_line_error, _clusters, _write_csv, pytestmark

__all__ = ["pytestmark"]


@pytest.fixture
def data_csv(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "data.csv"
    _write_csv(path, _clusters()[0])
    return path


# -- outputs never overwrite inputs; damaged model files; interrupted writes ---------------------


@pytest.fixture
def fitted_model(tmp_path: pathlib.Path, data_csv: pathlib.Path) -> pathlib.Path:
    model = tmp_path / "model.npz"
    assert main(["fit", str(data_csv), "-k", "2", "-d", "1", "--quiet", "--out", str(model)]) == 0
    return model


def _snapshot(directory: pathlib.Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(directory.iterdir()) if p.is_file()}


#: Arguments (with ``{data}``, ``{model}``, ``{dir}`` placeholders) and the error's fragments.
CLASHES = [
    (["fit", "{data}", "--labels", "{data}"], ["--labels", "the input DATA", "data.csv"]),
    (["fit", "{data}", "--out", "{data}"], ["--out", "the input DATA"]),
    (["fit", "{data}", "--plot", "{data}"], ["--plot", "the input DATA"]),
    (
        ["fit", "{data}", "--true-labels", "{dir}/t.csv", "--labels", "{dir}/t.csv"],
        ["--true-labels"],
    ),
    (
        ["fit", "{data}", "--out", "{dir}/m", "--labels", "{dir}/m.npz"],
        ["--out", "--labels", "the same file"],
    ),
    (["fit", "{data}", "--labels", "{dir}/o.png", "--plot", "{dir}/o.png"], ["the same file"]),
    (["fit", "{data}", "--labels", "{dir}/./sub/../data.csv"], ["would overwrite the input DATA"]),
    (["fit", "{data}", "--plot", "{dir}/fig.weird"], ["unknown image format 'weird'"]),
    (["fit", "{data}", "--labels", "{dir}"], ["is a directory"]),
    (
        ["predict", "{model}", "{data}", "--out", "{model}"],
        ["--out", "the input MODEL", "model.npz"],
    ),
    (["predict", "{model}", "{data}", "--out", "{data}"], ["--out", "the input DATA", "data.csv"]),
]


@pytest.mark.parametrize(("args", "fragments"), CLASHES)
def test_outputs_never_overwrite_inputs(
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
    data_csv: pathlib.Path,
    fitted_model: pathlib.Path,
    args: list[str],
    fragments: list[str],
) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "t.csv").write_text("label\n" + "0\n" * 150)
    capsys.readouterr()
    before = _snapshot(tmp_path)
    names = {"data": data_csv, "model": fitted_model, "dir": tmp_path}
    argv = [arg.format(**names) for arg in args]
    if argv[0] == "fit":
        argv += ["-k", "2", "-d", "1", "--quiet"]
    _assert_one_line_error(main(argv), capsys, *fragments)
    assert _snapshot(tmp_path) == before


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX links")
@pytest.mark.parametrize("link", ["symlink", "hardlink"])
def test_links_to_an_input_are_refused(
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
    data_csv: pathlib.Path,
    fitted_model: pathlib.Path,
    link: str,
) -> None:
    alias = tmp_path / "alias.csv"
    os.symlink(data_csv, alias) if link == "symlink" else os.link(data_csv, alias)
    before = data_csv.read_bytes()
    code = main(["fit", str(data_csv), "-k", "2", "-d", "1", "--quiet", "--labels", str(alias)])
    _assert_one_line_error(code, capsys, "alias.csv would overwrite the input DATA")
    code = main(["predict", str(fitted_model), str(alias), "--out", str(data_csv)])
    _assert_one_line_error(code, capsys, "data.csv would overwrite the input DATA")
    assert data_csv.read_bytes() == before


def test_damaged_model_files_are_one_line_errors(
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
    data_csv: pathlib.Path,
    fitted_model: pathlib.Path,
) -> None:
    content = fitted_model.read_bytes()
    damaged = tmp_path / "damaged.npz"
    for offset in range(0, len(content), len(content) // 10):
        damaged.write_bytes(content[:offset])
        code = main(["predict", str(damaged), str(data_csv)])
        _assert_one_line_error(code, capsys, "damaged.npz: not a saved hmog_xp model")
    npy = tmp_path / "array.npy"
    np.save(npy, np.ones(3))
    _assert_one_line_error(main(["predict", str(npy), str(data_csv)]), capsys, "array.npy")
    with np.load(fitted_model) as archive:
        arrays = {name: archive[name] for name in archive.files}
    arrays["__metadata__"] = np.asarray(
        str(arrays["__metadata__"]).replace('"noise": "diagonal"', '"noise": 7')
    )
    np.savez(damaged, **arrays)
    _assert_one_line_error(
        main(["predict", str(damaged), str(data_csv)]), capsys, "noise must be one of"
    )


def test_interrupted_fit_keeps_previous_outputs(
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: pathlib.Path,
    data_csv: pathlib.Path,
    fitted_model: pathlib.Path,
) -> None:
    before = _snapshot(tmp_path)

    def interrupted(*args: object, **kwargs: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(np.lib.format, "write_array", interrupted)
    code = main(["fit", str(data_csv), "-k", "3", "-d", "2", "--quiet", "--out", str(fitted_model)])
    assert code == 130
    assert "interrupted" in capsys.readouterr().err
    assert _snapshot(tmp_path) == before  # the old model, byte for byte, and no temporary


def test_outputs_are_written_atomically(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path, data_csv: pathlib.Path
) -> None:
    labels, plot = tmp_path / "labels.csv", tmp_path / "fig.png"
    labels.write_text("old labels\n")
    plot.write_bytes(b"old figure")
    before = _snapshot(tmp_path)
    import matplotlib.figure

    def broken_savefig(self: object, fname: object, **kwargs: object) -> None:
        fname.write(b"half a figure")  # type: ignore[attr-defined]
        raise KeyboardInterrupt

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", broken_savefig)
    argv = ["fit", str(data_csv), "-k", "2", "-d", "1", "--quiet", "--plot", str(plot)]
    assert main(argv) == 130
    assert _snapshot(tmp_path) == before
    monkeypatch.undo()
    assert main([*argv, "--labels", str(labels)]) == 0
    assert labels.read_text().startswith("cluster\n")
    assert plot.read_bytes()[:8] == PNG_SIGNATURE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data.csv", "fig.png", "labels.csv"]
