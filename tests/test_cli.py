"""The ``hmog-xp`` command: demo, fit/predict round trip, one-line errors, metrics, progress bar.

These tests drive :func:`hmog_xp.cli.main` in-process (one subprocess test checks
``python -m hmog_xp``). They do not depend on the backend under test, so they run once: only
when NumPy is among the selected test backends (``HMOG_XP_TEST_BACKENDS``).
"""

from __future__ import annotations

import io
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

import hmog_xp
from hmog_xp.cli import main
from hmog_xp.cli._io import format_table, read_labels, read_table, to_numpy
from hmog_xp.cli._plots import project_2d
from hmog_xp.cli._progress import ProgressBar


def _numpy_selected() -> bool:
    wanted = os.environ.get("HMOG_XP_TEST_BACKENDS", "").strip()
    return not wanted or "numpy" in {w.strip() for w in wanted.split(",")}


pytestmark = pytest.mark.skipif(
    not _numpy_selected(), reason="CLI tests run once, with the numpy backend selection"
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def _clusters(seed: int = 0, n: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """Three well separated clusters in 5-D, with their labels."""
    rng = np.random.default_rng(seed)
    centres = np.array([[0.0] * 5, [6.0, 0, 0, 6.0, 0], [0, 6.0, -6.0, 0, 0]])
    labels = np.repeat(np.arange(3), n // 3)
    return centres[labels] + rng.normal(size=(labels.size, 5)), labels


def _write_csv(path: pathlib.Path, table: np.ndarray, header: str | None = "a,b,c,d,e") -> None:
    lines = [] if header is None else [header]
    lines += [",".join(repr(float(v)) for v in row) for row in table]
    path.write_text("\n".join(lines) + "\n")


def load_unnamed(path: pathlib.Path, **kwargs: object) -> hmog_xp.HMoG:
    """Load a model the command saved, without the column names (to score plain arrays)."""
    est = hmog_xp.HMoG.load(path, **kwargs)
    if hasattr(est, "feature_names_in_"):
        del est.feature_names_in_
    return est


def _assert_one_line_error(code: int, capsys: pytest.CaptureFixture[str], *fragments: str) -> None:
    err = capsys.readouterr().err
    assert code == 2, err
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines, "no error message"
    assert lines[-1].startswith("hmog-xp: error: "), err
    assert "Traceback" not in err
    assert sum(line.startswith("hmog-xp: error") for line in lines) == 1
    for fragment in fragments:
        assert fragment in lines[-1], (fragment, lines[-1])


# -- progress bar --------------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bar_draws_on_a_terminal_only() -> None:
    terminal, log = _Terminal(), io.StringIO()
    bars = [ProgressBar(10, label="EM", stream=s) for s in (terminal, log)]
    quiet = ProgressBar(10, stream=_Terminal(), enabled=False)
    for bar in [*bars, quiet]:
        for iteration in range(1, 6):
            bar(iteration, -100.0 + iteration)
        bar.close("converged")
    drawn = terminal.getvalue()
    assert "EM" in drawn
    assert "5/10" in drawn
    assert "log-lik -95.0000 converged" in drawn
    assert log.getvalue() == ""  # a log file gets no bar, hence no carriage return
    assert quiet.stream.getvalue() == ""


# -- reading files -------------------------------------------------------------------------------


def test_read_table_csv_header_blank_lines_and_npy(tmp_path: pathlib.Path) -> None:
    table = np.arange(12.0).reshape(4, 3)
    with_header = tmp_path / "h.csv"
    with_header.write_text("x, y ,z\n0,1,2\n\n3,4,5\n6,7,8\n9,10,11\n")
    np.testing.assert_array_equal(read_table(with_header), table)
    plain = tmp_path / "plain.txt"
    plain.write_text("0,1,2\n3,4,5\n6,7,8\n9,10,1.1e1\n")
    np.testing.assert_array_equal(read_table(plain), table)
    npy = tmp_path / "t.npy"
    np.save(npy, table.astype(np.int32))
    np.testing.assert_array_equal(read_table(npy), table)


@pytest.mark.parametrize(
    "content",
    [
        "0,1\n   \n2,3\n",  # a blank-looking line (NumPy's reader refuses; the slow path reads it)
        '"0","1"\n2,3\n',  # quoted numbers
        "x,y\r\n0,1\r\n2,3\r\n",  # Windows line ends and a header
        "0, 1\n2 ,3\n",  # spaces around fields
    ],
)
def test_read_table_csv_variants(tmp_path: pathlib.Path, content: str) -> None:
    path = tmp_path / "v.csv"
    path.write_bytes(content.encode())
    np.testing.assert_array_equal(read_table(path), [[0.0, 1.0], [2.0, 3.0]])


def test_read_labels_and_format_table(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(format_table(np.array([2, 0, 1]), ["cluster"]))
    assert path.read_text() == "cluster\n2\n0\n1\n"
    np.testing.assert_array_equal(read_labels(path, 3), ["2", "0", "1"])
    with pytest.raises(ValueError, match="3 labels for 4 observations"):
        read_labels(path, 4)
    probs = format_table(np.array([[0.25, 0.75]]), ["p0", "p1"])
    assert probs == "p0,p1\n0.25,0.75\n"


def test_to_numpy_and_projection() -> None:
    assert isinstance(to_numpy([1.0, 2.0]), np.ndarray)
    rng = np.random.default_rng(0)
    points = rng.normal(size=(50, 3))
    assert project_2d(points).shape == (50, 2)
    assert project_2d(points[:, :1]).shape == (50, 2)
    centres = rng.normal(size=(4, 3))
    assert project_2d(points, centres, np.full(4, 0.25)).shape == (50, 2)


# -- one-line errors, exit status 2 --------------------------------------------------------------


@pytest.fixture
def data_csv(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "data.csv"
    _write_csv(path, _clusters()[0])
    return path


def test_usage_errors(capsys: pytest.CaptureFixture[str], data_csv: pathlib.Path) -> None:
    _assert_one_line_error(main([]), capsys, "COMMAND")
    _assert_one_line_error(main(["nonsense"]), capsys, "invalid choice")
    _assert_one_line_error(main(["fit", str(data_csv)]), capsys, "-k/--components")
    _assert_one_line_error(main(["fit", str(data_csv), "-k", "0", "-d", "2"]), capsys, "positive")
    _assert_one_line_error(main(["fit", str(data_csv), "-k", "x", "-d", "2"]), capsys, "'x'")
    _assert_one_line_error(
        main(["fit", str(data_csv), "-k", "2", "-d", "2", "--noise", "round"]), capsys, "round"
    )
    _assert_one_line_error(main(["demo", "--seed", "-1"]), capsys, "negative")


def test_help_and_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    assert "demo" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert hmog_xp.__version__ in capsys.readouterr().out


def test_missing_file_and_directory(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    missing = tmp_path / "nope.csv"
    _assert_one_line_error(main(["fit", str(missing), "-k", "2", "-d", "1"]), capsys, "no such")
    _assert_one_line_error(main(["fit", str(tmp_path), "-k", "2", "-d", "1"]), capsys, "directory")
    code = main(["predict", str(tmp_path / "model.npz"), str(missing)])
    _assert_one_line_error(code, capsys, "model.npz: no such file")
    code = main(["predict", str(tmp_path), str(missing)])
    _assert_one_line_error(code, capsys, "is a directory")


@pytest.mark.parametrize(
    ("content", "fragments"),
    [
        ("a,b\n1,2\n3,x\n", ("line 3, column 2", "'x' is not a number")),
        ("1,2\n3,4,5\n", ("line 2", "3 columns", "has 2")),
        ("a,b\n1,2\n3,4\n5,nan\n", ("line 4 (row index 2), column 2", "--missing marginalize")),
        ("a,b\n1,2\n5,nan\n7,inf\n", ("line 4 (row index 2), column 2", "inf", "infinite")),
        ("a,b\n", ("no data rows",)),
        ("", ("no data rows",)),
    ],
)
def test_bad_csv(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, content: str, fragments: tuple
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    _assert_one_line_error(main(["fit", str(path), "-k", "1", "-d", "1"]), capsys, *fragments)


def test_binary_file_as_csv(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    path = tmp_path / "image.csv"
    path.write_bytes(PNG_SIGNATURE + bytes(range(256)))
    _assert_one_line_error(main(["fit", str(path), "-k", "1", "-d", "1"]), capsys, "not a text")


def test_bad_npy(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x.npy"
    table = np.ones((5, 3))
    table[3, 1] = np.inf
    np.save(path, table)
    code = main(["fit", str(path), "-k", "1", "-d", "1"])
    _assert_one_line_error(code, capsys, "row index 3", "inf")
    np.save(path, np.ones(5))
    _assert_one_line_error(main(["fit", str(path), "-k", "1", "-d", "1"]), capsys, "2-D")
    np.save(path, np.array([["a", "b"]]))
    _assert_one_line_error(main(["fit", str(path), "-k", "1", "-d", "1"]), capsys, "numbers")
    path.write_text("not numpy")
    _assert_one_line_error(main(["fit", str(path), "-k", "1", "-d", "1"]), capsys, ".npy")
    with path.open("wb") as handle:  # an .npz archive under an .npy name
        np.savez(handle, data=table)
    _assert_one_line_error(
        main(["fit", str(path), "-k", "1", "-d", "1"]), capsys, "an .npz archive"
    )
    np.save(path, np.ones((5, 3)))
    path.write_bytes(path.read_bytes()[:-7])
    _assert_one_line_error(main(["fit", str(path), "-k", "1", "-d", "1"]), capsys, "x.npy")


def test_csv_the_csv_module_refuses(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "wide.csv"
    path.write_text('"' + "1" * 200_000 + '",2\n3,4\n')  # a field over csv's size limit
    code = main(["fit", str(path), "-k", "1", "-d", "1"])
    _assert_one_line_error(code, capsys, "wide.csv is not a readable CSV file")


def test_sizes_and_backend(capsys: pytest.CaptureFixture[str], data_csv: pathlib.Path) -> None:
    data = str(data_csv)
    _assert_one_line_error(main(["fit", data, "-k", "151", "-d", "1"]), capsys, "151", "150")
    code = main(["fit", data, "-k", "2", "-d", "5"])
    _assert_one_line_error(code, capsys, "smaller than the number of columns p (5)")
    code = main(["fit", data, "-k", "2", "-d", "1", "--backend", "numpie"])
    _assert_one_line_error(code, capsys, "unknown backend 'numpie'", "numpy")
    code = main(["fit", data, "-k", "2", "-d", "1", "--image-shape", "2x2"])
    _assert_one_line_error(code, capsys, "4 pixels", "5 columns")
    code = main(["fit", data, "-k", "2", "-d", "1", "--true-labels", data])
    _assert_one_line_error(code, capsys, "one label per line")


# -- the commands with the estimator -------------------------------------------------------------


def test_demo_writes_png_and_reports_agreement(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    code = main(["demo", "--out-dir", str(tmp_path), "--max-iter", "3", "--seed", "1"])
    out, err = capsys.readouterr()
    assert code == 0, err
    figure = tmp_path / "hmog_demo.png"
    assert figure.read_bytes()[:8] == PNG_SIGNATURE
    assert "N = 1797 observations, p = 64 features" in out
    assert "K = 10 components" in out
    ari = float(out.split("ARI ")[1].split(",")[0])
    nmi = float(out.split("NMI ")[1].split(" ")[0])
    assert -1.0 <= ari <= 1.0
    assert 0.0 <= nmi <= 1.0
    assert "\r" not in err  # stderr is not a terminal here: no progress bar


def test_fit_save_predict_round_trip(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, data_csv: pathlib.Path
) -> None:
    table, truth = _clusters()
    true_path = tmp_path / "truth.csv"
    true_path.write_text(format_table(truth, ["digit"]))
    model, labels, plot = tmp_path / "model.npz", tmp_path / "labels.csv", tmp_path / "fig.png"
    args = ["fit", str(data_csv), "-k", "3", "-d", "2", "--seed", "0", "--quiet"]
    args += ["--out", str(model), "--labels", str(labels), "--plot", str(plot)]
    assert main([*args, "--true-labels", str(true_path)]) == 0
    out = capsys.readouterr().out
    assert "K = 3 components, d = 2 factors" in out
    assert float(out.split("ARI ")[1].split(",")[0]) > 0.9  # three well separated clusters
    assert plot.read_bytes()[:8] == PNG_SIGNATURE
    fitted = read_labels(labels, table.shape[0]).astype(np.int64)
    ari, nmi = adjusted_rand_score(truth, fitted), normalized_mutual_info_score(truth, fitted)
    assert f"ARI {ari:.3f}, NMI {nmi:.3f}" in out

    assert main(["predict", str(model), str(data_csv)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "cluster"
    np.testing.assert_array_equal(np.array(printed[1:], dtype=np.int64), fitted)

    estimator = hmog_xp.HMoG.load(model)
    assert estimator.feature_names_in_.tolist() == ["a", "b", "c", "d", "e"]
    del estimator.feature_names_in_  # an unnamed array would draw scikit-learn's warning
    np.testing.assert_array_equal(to_numpy(estimator.predict(table)), fitted)

    npy = tmp_path / "data.npy"
    np.save(npy, table)
    out_path = tmp_path / "proba.csv"
    assert main(["predict", str(model), str(npy), "--proba", "--out", str(out_path)]) == 0
    proba = np.loadtxt(out_path, delimiter=",", skiprows=1)
    assert proba.shape == (table.shape[0], 3)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(np.argmax(proba, axis=1), fitted)


def test_predict_bad_inputs(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    table, _ = _clusters()
    data = tmp_path / "data.npy"
    np.save(data, table)
    model = tmp_path / "model.npz"
    assert main(["fit", str(data), "-k", "2", "-d", "1", "--quiet", "--out", str(model)]) == 0
    capsys.readouterr()
    narrow = tmp_path / "narrow.csv"
    _write_csv(narrow, table[:, :4], header=None)
    code = main(["predict", str(model), str(narrow)])
    _assert_one_line_error(code, capsys, "4 columns", "fitted to 5")
    not_a_model = tmp_path / "junk.npz"
    not_a_model.write_text("junk")
    _assert_one_line_error(main(["predict", str(not_a_model), str(data)]), capsys, "junk.npz")


def test_python_dash_m_help() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "hmog_xp", "--help"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: hmog-xp")
    for command in ("demo", "fit", "predict"):
        assert command in result.stdout
