"""The command reads the files people have: delimiters, headers, columns, ids, names, JSON.

Oracles: the table written by NumPy, and the estimator's own methods on the same rows.
"""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest

from hmog_xp.cli import main
from hmog_xp.cli._io import load_table
from hmog_xp.cli._tables import detect_delimiter
from tests.test_cli import _assert_one_line_error, _clusters, load_unnamed, pytestmark

__all__ = ["pytestmark"]

FIT = ["-k", "3", "-d", "2", "--seed", "0", "--quiet", "--max-iter", "30"]
TABLE = np.array([[1.5, -2.0, 3.0], [4.0, 5.25, -6.0], [7.0, 8.0, 9.5]])


def _text(sep: str, header: bool = True) -> str:
    lines = [sep.join(["a", "b", "c"])] if header else []
    lines += [sep.join(repr(float(v)) for v in row) for row in TABLE]
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("sep", [",", ";", "\t", " ", "   "])
@pytest.mark.parametrize("header", [True, False])
def test_delimiters_and_headers_are_detected(
    tmp_path: pathlib.Path, sep: str, header: bool
) -> None:
    path = tmp_path / "t.txt"
    path.write_text(_text(sep, header))
    table = load_table(path)
    np.testing.assert_array_equal(table.values, TABLE)
    assert table.header == (["a", "b", "c"] if header else None)


def test_tsv_forced_delimiter_and_header(tmp_path: pathlib.Path) -> None:
    tsv = tmp_path / "t.tsv"
    tsv.write_text("a;x\tb\n1\t2\n3\t4\n")  # a semicolon in a name: .tsv is tab-separated
    table = load_table(tsv)
    assert table.header == ["a;x", "b"]
    np.testing.assert_array_equal(table.values, [[1, 2], [3, 4]])
    numeric_header = tmp_path / "n.csv"
    numeric_header.write_text("1|2\n3|4\n5|6\n")
    assert load_table(numeric_header, delimiter="|").header is None
    forced = load_table(numeric_header, delimiter="|", header=True)
    assert forced.header == ["1", "2"]
    np.testing.assert_array_equal(forced.values, [[3, 4], [5, 6]])
    assert detect_delimiter(["1;2;3", "4;5;6"]) == ";"
    assert detect_delimiter(["1 2", "3  4"]) is None


def test_header_detection_with_a_label_column(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "l.csv"
    path.write_text("1;2;setosa\n3;4;virginica\n")  # no header: the strings are data
    table = load_table(path, drop=["2"])
    assert table.header is None
    np.testing.assert_array_equal(table.values, [[1, 2], [3, 4]])


def test_parquet(tmp_path: pathlib.Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    path = tmp_path / "t.parquet"
    frame = pd.DataFrame({"a": [1.0, None, 3.0], "b": [4, 5, 6], "name": ["x", "y", "z"]})
    frame.to_parquet(path)
    table = load_table(path, allow_missing=True, id_column="name")
    assert table.header == ["a", "b"]
    assert table.ids == ["x", "y", "z"]
    np.testing.assert_array_equal(table.values, [[1, 4], [np.nan, 5], [3, 6]])


def test_columns_and_drop_by_name_and_index(tmp_path: pathlib.Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text(_text(","))
    np.testing.assert_array_equal(load_table(path, columns=["c", "0"]).values, TABLE[:, [2, 0]])
    dropped = load_table(path, drop=["b"])
    assert dropped.header == ["a", "c"]
    np.testing.assert_array_equal(load_table(path, drop=["1"]).values, TABLE[:, [0, 2]])
    with pytest.raises(ValueError, match=r"--columns 'z'.*no column of that name"):
        load_table(path, columns=["z"])
    with pytest.raises(ValueError, match=r"--drop 5: .*columns 0 to 2"):
        load_table(path, drop=["5"])
    with pytest.raises(ValueError, match="no feature column is left"):
        load_table(path, drop=["a", "b", "c"])


def test_a_text_column_is_refused_by_name(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    path = tmp_path / "l.csv"
    path.write_text("a;b;species\n1;2;setosa\n3;4;virginica\n")
    _assert_one_line_error(
        main(["fit", str(path), "-k", "1", "-d", "1"]),
        capsys,
        "column 3 ('species')",
        "'setosa' is not a number",
        "--drop species",
        "--id-column species",
    )


def _semicolon_file(path: pathlib.Path, holes: bool = True) -> np.ndarray:
    table, truth = _clusters()
    lines = ["id;a;b;c;d;e;label"]
    for i, (row, label) in enumerate(zip(table, truth, strict=True)):
        cells = [repr(float(v)) for v in row]
        if holes and i % 10 == 3:
            cells[1] = "NA"
        lines.append(";".join([f"r{i}", *cells, f"kind{label}"]))
    path.write_text("\n".join(lines) + "\n")
    return table


def test_semicolon_file_with_labels_and_holes_to_every_output(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    data, model = tmp_path / "d.csv", tmp_path / "m.npz"
    table = _semicolon_file(data)
    holed = table.copy()
    holed[3::10, 1] = np.nan
    read = ["--id-column", "id", "--drop", "label"]
    _assert_one_line_error(  # the hole is named by its place in the file, not among features
        main(["fit", str(data), *FIT, *read]), capsys, "line 5 (row index 3), column 3 ('b')"
    )
    labels, report = tmp_path / "labels.csv", tmp_path / "fit.json"
    args = ["fit", str(data), *FIT, *read, "--missing", "marginalize", "--out", str(model)]
    assert main([*args, "--labels", str(labels), "--json", str(report)]) == 0
    capsys.readouterr()
    est = load_unnamed(model)
    assert est.n_features_in_ == 5
    lines = labels.read_text().splitlines()
    assert lines[0] == "id,cluster"
    assert lines[1].startswith("r0,")
    np.testing.assert_array_equal(
        [int(line.split(",")[1]) for line in lines[1:]], est.predict(holed)
    )
    summary = json.loads(report.read_text())
    assert summary["n_samples"] == 150
    assert summary["n_features"] == 5
    assert summary["n_missing"] == 15
    assert summary["feature_names"] == ["a", "b", "c", "d", "e"]
    assert summary["settings"]["n_components"] == 3
    assert summary["log_likelihood"] == pytest.approx(float(est.score(holed)))
    assert summary["bic"] == pytest.approx(float(est.bic(holed)))
    assert summary["n_iter"] == est.n_iter_
    assert summary["converged"] == est.converged_
    assert summary["outputs"]["labels"] == str(labels)

    scores, proba, completed = (tmp_path / f"{n}.csv" for n in ("s", "p", "c"))
    for option, out in (("--transform", scores), ("--proba", proba), ("--impute", completed)):
        assert main(["predict", str(model), str(data), *read, option, "--out", str(out)]) == 0
        assert out.read_text().splitlines()[1].startswith("r0,")
    s = np.loadtxt(scores, delimiter=",", skiprows=1, usecols=(1, 2))
    assert scores.read_text().splitlines()[0] == "id,factor_1,factor_2"
    np.testing.assert_allclose(s, est.transform(holed), rtol=1e-5, atol=1e-5)
    p = np.loadtxt(proba, delimiter=",", skiprows=1, usecols=(1, 2, 3))
    np.testing.assert_allclose(p, est.predict_proba(holed), atol=1e-6)
    c = np.loadtxt(completed, delimiter=",", skiprows=1, usecols=range(1, 6))
    assert completed.read_text().splitlines()[0] == "id,a,b,c,d,e"
    np.testing.assert_allclose(c, np.where(np.isnan(holed), est.impute(holed), holed))


def test_predict_matches_columns_by_name(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    data, model = tmp_path / "d.csv", tmp_path / "m.npz"
    table = _semicolon_file(data, holes=False)
    read = ["--id-column", "id", "--drop", "label"]
    assert main(["fit", str(data), *FIT, *read, "--out", str(model)]) == 0
    est = load_unnamed(model)
    shuffled = tmp_path / "s.csv"
    order = [3, 0, 4, 1, 2]
    names = ["a", "b", "c", "d", "e"]
    lines = [",".join(names[j] for j in order)]
    lines += [",".join(repr(float(v)) for v in row[order]) for row in table]
    shuffled.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["predict", str(model), str(shuffled), "--json", str(tmp_path / "p.json")]) == 0
    printed = capsys.readouterr().out.splitlines()
    np.testing.assert_array_equal(np.array(printed[1:], dtype=np.int64), est.predict(table))
    assert json.loads((tmp_path / "p.json").read_text())["n_samples"] == 150
    renamed = tmp_path / "r.csv"
    renamed.write_text(shuffled.read_text().replace("a,", "z,", 1))
    _assert_one_line_error(
        main(["predict", str(model), str(renamed)]), capsys, "missing ['a']", "unexpected ['z']"
    )
    plain = tmp_path / "plain.csv"  # no header: matched by position
    plain.write_text("\n".join(",".join(map(repr, row.tolist())) for row in table) + "\n")
    assert main(["predict", str(model), str(plain), "--transform"]) == 0
    out = capsys.readouterr().out
    scores = np.loadtxt(out.splitlines()[1:], delimiter=",")
    np.testing.assert_allclose(scores, est.transform(table), rtol=1e-5, atol=1e-5)


def test_json_on_stdout(capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path) -> None:
    data = tmp_path / "d.csv"
    _semicolon_file(data, holes=False)
    assert main(["fit", str(data), *FIT, "--drop", "id,label", "--json"]) == 0
    out, err = capsys.readouterr()
    summary = json.loads(out)
    assert summary["command"] == "fit"
    assert summary["n_features"] == 5
    assert "K = 3 components" in err  # the summary for people moved to stderr
    assert "\r" not in err


def test_parquet_without_pyarrow_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pathlib.Path
) -> None:
    pytest.importorskip("pandas")
    path = tmp_path / "t.parquet"
    path.write_bytes(b"PAR1")
    monkeypatch.setitem(__import__("sys").modules, "pyarrow", None)
    monkeypatch.setitem(__import__("sys").modules, "fastparquet", None)
    with pytest.raises(ValueError, match=r"hmog-xp\[parquet\]"):
        load_table(path)


def test_factor_help_matches_its_check(
    capsys: pytest.CaptureFixture[str], tmp_path: pathlib.Path
) -> None:
    assert main(["fit", "--help"]) == 0
    assert "fewer than the number of feature columns" in " ".join(capsys.readouterr().out.split())
    path = tmp_path / "t.csv"
    path.write_text(_text(","))
    _assert_one_line_error(main(["fit", str(path), "-k", "1", "-d", "3"]), capsys, "smaller")
    assert main(["fit", str(path), "-k", "1", "-d", "2", "--quiet", "--max-iter", "2"]) == 0
