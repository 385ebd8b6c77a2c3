"""The ``hmog-xp`` command with missing values: reading holes, ``--missing``, ``--impute``.

Like tests/test_cli.py, these drive :func:`hmog_xp.cli.main` in-process and run once, when
NumPy is among the selected test backends. The oracle for the command's results is the
estimator driven from Python with the same settings.
"""

from __future__ import annotations

import pathlib
import warnings

import numpy as np
import pytest
from sklearn.exceptions import ConvergenceWarning

import hmog_xp
from hmog_xp.cli import main
from hmog_xp.cli._io import format_exact, load_table, read_table, to_numpy
from tests.test_cli import (
    _assert_one_line_error,
    _clusters,
    _write_csv,
    load_unnamed,
    pytestmark,
)

__all__ = ["pytestmark"]

#: The settings of the command's fits here, as ``hmog-xp fit`` options and as HMoG arguments.
FIT_ARGS = ["-k", "3", "-d", "2", "--max-iter", "15", "--seed", "0", "--quiet"]
FIT_PARAMS = {
    "n_components": 3,
    "n_factors": 2,
    "noise": "diagonal",
    "variant": "analytic",
    "max_iter": 15,
    "tol": 1e-6,
    "n_init": 1,
    "reg_covar": 1e-6,
    "random_state": 0,
    "backend": "numpy",
}

MARKERS = ["", "NA", "NaN", "nan", " ", "na", "NAN"]


def _holed(seed: int = 1, fraction: float = 0.1) -> np.ndarray:
    """The three-cluster table with ``fraction`` of its entries missing (no empty row)."""
    table, _ = _clusters()
    rng = np.random.default_rng(seed)
    holes = rng.random(table.shape) < fraction
    holes[holes.all(axis=1), 0] = False
    return np.where(holes, np.nan, table)


def _write_holed_csv(path: pathlib.Path, table: np.ndarray, header: str | None = "a,b,c,d,e"):
    """Write a table whose NaN entries are every kind of missing-value marker in turn."""
    lines = [] if header is None else [header]
    count = 0
    for row in table:
        fields = []
        for value in row.tolist():
            if np.isnan(value):
                fields.append(MARKERS[count % len(MARKERS)])
                count += 1
            else:
                fields.append(repr(value))
        lines.append(",".join(fields))
    path.write_text("\n".join(lines) + "\n")


def _fit_oracle(table: np.ndarray) -> hmog_xp.HMoG:
    """The estimator fitted from Python with the command's settings (``max_iter`` is short)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        return hmog_xp.HMoG(missing="marginalize", **FIT_PARAMS).fit(table)


@pytest.fixture
def holed_csv(tmp_path: pathlib.Path) -> pathlib.Path:
    path = tmp_path / "holed.csv"
    _write_holed_csv(path, _holed())
    return path


# -- reading missing values ----------------------------------------------------------------------


def test_missing_markers_read_as_nan(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "m.csv"
    path.write_text("x,y,z\n1,,3\nNA,2, \n4,NaN,na\n-nan,5,NAN\n\n7,8,9\n")
    table = load_table(path, allow_missing=True)
    nan = np.nan
    expected = [[1, nan, 3], [nan, 2, nan], [4, nan, nan], [nan, 5, nan], [7, 8, 9]]
    np.testing.assert_array_equal(table.values, expected)
    assert table.header == ["x", "y", "z"]
    assert table.lines.tolist() == [2, 3, 4, 5, 7]
    assert table.n_missing == 7
    no_header = tmp_path / "n.csv"  # a first line with an empty cell is data, not a header
    no_header.write_text("1,,3\n4,5,6\n")
    table = load_table(no_header, allow_missing=True)
    assert table.header is None
    np.testing.assert_array_equal(table.values, [[1, nan, 3], [4, 5, 6]])
    npy = tmp_path / "m.npy"
    np.save(npy, np.asarray(expected))
    np.testing.assert_array_equal(read_table(npy, allow_missing=True), expected)


def test_holed_file_round_trip(tmp_path: pathlib.Path, holed_csv: pathlib.Path) -> None:
    np.testing.assert_array_equal(read_table(holed_csv, allow_missing=True), _holed())
    copy = tmp_path / "copy.csv"
    table = _holed(seed=3)
    copy.write_text(format_exact(table, ["a", "b,c", "d", "e", "f"]))
    again = load_table(copy, allow_missing=True)
    np.testing.assert_array_equal(again.values, table)  # repr precision: bit for bit
    assert again.header == ["a", "b,c", "d", "e", "f"]


@pytest.mark.parametrize(
    ("content", "allow", "match"),
    [
        ("a,b\n1,2\n3,\n", False, r"line 3 \(row index 1\), column 2: missing value"),
        ("a,b\n1,2\n3,NA\n5,\n", False, r"2 of 6 entries are missing.*--missing marginalize"),
        ("1,2\n3,nan\n", False, r"line 2 \(row index 1\), column 2.*--missing marginalize"),
        ("1,2\n3,inf\n", True, r"line 2 \(row index 1\), column 2: inf is not a finite"),
        ("1,NA\n3,-inf\n", True, r"line 2 \(row index 1\), column 2: -inf .*infinite values"),
        ("1,NA\n-Infinity,\n", False, r"line 2 \(row index 1\), column 1: -inf"),
        ("a,b\n1,2\nNA,\n", True, r"line 3 \(row index 1\): every value of this row is missing"),
        ("a,b\n1,2\n,\n", True, r"line 3 \(row index 1\): every value"),
    ],
)
def test_refused_values(tmp_path: pathlib.Path, content: str, allow: bool, match: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        read_table(path, allow_missing=allow)


def test_refused_values_npy(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "x.npy"
    table = np.ones((4, 3))
    np.save(path, np.where(np.eye(4, 3, k=1) > 0, np.nan, table))
    with pytest.raises(ValueError, match=r"x.npy, row index 0, column 2: missing value"):
        read_table(path)
    np.save(path, np.where(np.eye(4, 3) > 0, np.inf, table))
    with pytest.raises(ValueError, match=r"row index 0, column 1: inf is not a finite"):
        read_table(path, allow_missing=True)


def test_fit_refuses_holes_without_the_option(
    capsys: pytest.CaptureFixture[str], holed_csv: pathlib.Path
) -> None:
    code = main(["fit", str(holed_csv), *FIT_ARGS])
    table = _holed()
    row = int(np.flatnonzero(np.isnan(table).any(axis=1))[0])
    column = int(np.flatnonzero(np.isnan(table[row]))[0]) + 1
    where = f"holed.csv, line {row + 2} (row index {row}), column {column}: missing value"
    _assert_one_line_error(code, capsys, where, "--missing marginalize")
    _assert_one_line_error(
        main(["fit", str(holed_csv), *FIT_ARGS, "--missing", "drop"]), capsys, "invalid choice"
    )


def test_fit_refuses_an_empty_column(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    table = _clusters()[0]
    table[:, 1] = np.nan
    table[5, 3] = np.nan
    path = tmp_path / "col.csv"
    _write_holed_csv(path, table)
    code = main(["fit", str(path), *FIT_ARGS, "--missing", "marginalize"])
    _assert_one_line_error(code, capsys, "col.csv, column 2 ('b'): every value is missing")


# -- fitting and predicting with missing values --------------------------------------------------


def test_fit_marginalize_matches_the_estimator(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, holed_csv: pathlib.Path
) -> None:
    model, labels = tmp_path / "model.npz", tmp_path / "labels.csv"
    argv = ["fit", str(holed_csv), *FIT_ARGS, "--missing", "marginalize"]
    assert main([*argv, "--out", str(model), "--labels", str(labels)]) == 0
    out = capsys.readouterr().out
    table = _holed()
    n_missing = int(np.isnan(table).sum())
    assert f"{n_missing} missing values" in out
    est = _fit_oracle(table)
    expected = to_numpy(est.predict(table))
    written = np.loadtxt(labels, delimiter=",", skiprows=1, dtype=np.int64)
    np.testing.assert_array_equal(written, expected)
    loaded = load_unnamed(model)
    assert loaded.missing == "marginalize"
    np.testing.assert_allclose(to_numpy(loaded.weights_), to_numpy(est.weights_), rtol=1e-9)

    # predict: the saved setting is the default; --missing error refuses the holes
    assert main(["predict", str(model), str(holed_csv)]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "cluster"
    np.testing.assert_array_equal(np.array(printed[1:], dtype=np.int64), expected)
    code = main(["predict", str(model), str(holed_csv), "--missing", "error"])
    _assert_one_line_error(code, capsys, "holed.csv, line", "--missing marginalize")
    proba = tmp_path / "proba.csv"
    assert main(["predict", str(model), str(holed_csv), "--proba", "--out", str(proba)]) == 0
    np.testing.assert_allclose(
        np.loadtxt(proba, delimiter=",", skiprows=1), to_numpy(est.predict_proba(table)), atol=1e-6
    )


def test_predict_with_a_complete_data_model(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, holed_csv: pathlib.Path
) -> None:
    clean, model = tmp_path / "clean.csv", tmp_path / "model.npz"
    _write_csv(clean, _clusters()[0])
    assert main(["fit", str(clean), *FIT_ARGS, "--out", str(model)]) == 0
    capsys.readouterr()
    _assert_one_line_error(
        main(["predict", str(model), str(holed_csv)]), capsys, "--missing marginalize"
    )
    assert main(["predict", str(model), str(holed_csv), "--missing", "marginalize"]) == 0
    printed = capsys.readouterr().out.splitlines()
    est = load_unnamed(model)
    est.missing = "marginalize"
    expected = to_numpy(est.predict(_holed()))
    np.testing.assert_array_equal(np.array(printed[1:], dtype=np.int64), expected)


def test_impute_writes_the_completed_table(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path, holed_csv: pathlib.Path
) -> None:
    model, completed = tmp_path / "model.npz", tmp_path / "completed.csv"
    argv = ["fit", str(holed_csv), *FIT_ARGS, "--missing", "marginalize", "--out", str(model)]
    assert main(argv) == 0
    assert main(["predict", str(model), str(holed_csv), "--impute", "--out", str(completed)]) == 0
    assert "missing values filled in" in capsys.readouterr().err
    text = completed.read_text()
    assert text.splitlines()[0] == "a,b,c,d,e"  # the header, preserved
    result = load_table(completed)  # no missing value left
    table = _holed()
    holes = np.isnan(table)
    np.testing.assert_array_equal(result.values[~holes], table[~holes])  # exactly as read
    est = load_unnamed(model)
    imputed = to_numpy(est.impute(table))
    np.testing.assert_allclose(result.values[holes], imputed[holes], rtol=1e-12, atol=0)

    # without --out, to stdout; a .npy input gives a table without header, or a .npy output
    npy, out_npy = tmp_path / "holed.npy", tmp_path / "completed.npy"
    np.save(npy, table)
    assert main(["predict", str(model), str(npy), "--impute"]) == 0
    printed = capsys.readouterr().out
    np.testing.assert_array_equal(np.loadtxt(printed.splitlines(), delimiter=","), result.values)
    assert main(["predict", str(model), str(npy), "--impute", "--out", str(out_npy)]) == 0
    np.testing.assert_array_equal(np.load(out_npy), result.values)
    code = main(["predict", str(model), str(npy), "--impute", "--missing", "error"])
    _assert_one_line_error(code, capsys, "holed.npy, row index", "--missing marginalize")
    code = main(["predict", str(model), str(npy), "--impute", "--proba"])
    _assert_one_line_error(code, capsys, "not allowed with argument")


def test_no_holes_same_results_with_and_without_marginalize(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    data = tmp_path / "clean.csv"
    _write_csv(data, _clusters()[0])
    outputs = []
    for extra in ([], ["--missing", "marginalize"]):
        labels, model = tmp_path / "labels.csv", tmp_path / "model.npz"
        assert main(["fit", str(data), *FIT_ARGS, *extra, "--labels", str(labels)]) == 0
        summary = [line for line in capsys.readouterr().out.splitlines() if "log-lik" in line]
        assert main(["fit", str(data), *FIT_ARGS, *extra, "--out", str(model)]) == 0
        capsys.readouterr()
        assert main(["predict", str(model), str(data), "--proba", *extra]) == 0
        outputs.append((labels.read_text(), summary, capsys.readouterr().out))
        assert main(["predict", str(model), str(data), "--impute"]) == 0
        assert capsys.readouterr().out == format_exact(_clusters()[0], list("abcde"))
    assert outputs[0] == outputs[1]


def test_help_describes_missing_values(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--missing {error,marginalize}" in text
    assert "Empty, NA and NaN cells" in text
    assert "Infinite values are always refused" in text
    assert main(["predict", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    assert "--impute" in text
    assert "conditional mean" in text
    assert "default: the model's setting" in text


@pytest.mark.parametrize("backend", ["array_api_strict", "torch"])  # JAX: compiles, ~14 s
def test_impute_on_other_backends(
    capsys: pytest.CaptureFixture[str],
    tmp_path: pathlib.Path,
    holed_csv: pathlib.Path,
    backend: str,
) -> None:
    pytest.importorskip(backend)
    model = tmp_path / "model.npz"
    argv = ["fit", str(holed_csv), *FIT_ARGS, "--missing", "marginalize", "--out", str(model)]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(["predict", str(model), str(holed_csv), "--impute"]) == 0
    on_numpy = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",", skiprows=1)
    assert main(["predict", str(model), str(holed_csv), "--impute", "--backend", backend]) == 0
    completed = np.loadtxt(capsys.readouterr().out.splitlines(), delimiter=",", skiprows=1)
    np.testing.assert_allclose(completed, on_numpy, rtol=1e-10, atol=1e-12)
    holes = np.isnan(_holed())
    np.testing.assert_array_equal(completed[~holes], _holed()[~holes])
