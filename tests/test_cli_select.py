"""``hmog-xp fit -k A:B -d A:B``: the command chooses K and d.

Oracle: :func:`hmog_xp.select_model` driven from Python with the same settings (the command
must save, label and report its best model), and the parser's contract for ``-k`` / ``-d``.
"""

from __future__ import annotations

import argparse
import json
import pathlib

import numpy as np
import pytest

import hmog_xp
from hmog_xp.cli import main
from hmog_xp.cli._select import int_grid
from tests.test_cli import _assert_one_line_error, _clusters, _write_csv, load_unnamed, pytestmark

__all__ = ["pytestmark"]

SETTINGS = ["--max-iter", "30", "--seed", "0", "--quiet", "--n-init", "1"]
PARAMS = {
    "noise": "diagonal",
    "variant": "analytic",
    "max_iter": 30,
    "tol": 1e-6,
    "n_init": 1,
    "reg_covar": 1e-6,
    "random_state": 0,
    "backend": "numpy",
}


@pytest.mark.parametrize(
    ("text", "values"),
    [("3", (3,)), ("2:5", (2, 3, 4, 5)), ("4,2,3", (2, 3, 4)), ("1:2,5", (1, 2, 5))],
)
def test_grids_parse(text: str, values: tuple[int, ...]) -> None:
    assert int_grid(text) == values


@pytest.mark.parametrize(
    ("text", "match"),
    [("0", "positive"), ("3:2", "empty"), ("a", "not a positive integer"), ("1:2:3", "range")],
)
def test_bad_grids_are_refused(text: str, match: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError, match=match):
        int_grid(text)


def test_fit_chooses_and_saves_the_best_model(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, _ = _clusters()
    data = tmp_path / "data.csv"
    _write_csv(data, table)
    out, labels, summary = tmp_path / "m.npz", tmp_path / "labels.csv", tmp_path / "fit.json"
    grid = ["-k", "1:4", "-d", "1:2", "--criterion", "icl"]
    outputs = ["--out", str(out), "--labels", str(labels), "--json", str(summary)]
    assert main(["fit", str(data), *grid, *SETTINGS, *outputs]) == 0
    printed = capsys.readouterr().out
    expected = hmog_xp.select_model(
        table, n_components=range(1, 5), n_factors=[1, 2], criterion="icl", **PARAMS
    )
    best = expected.best_params_
    marked = [line.split() for line in printed.splitlines() if line.strip().startswith("*")]
    assert len(marked) == 1
    assert [int(marked[0][1]), int(marked[0][2])] == [best["n_components"], best["n_factors"]]
    assert "model selection by ICL" in printed
    loaded = load_unnamed(out)
    assert (loaded.n_components, loaded.n_factors) == (best["n_components"], best["n_factors"])
    written = np.loadtxt(labels, delimiter=",", skiprows=1).astype(int)
    np.testing.assert_array_equal(written, expected.best_estimator_.predict(table))
    report = json.loads(summary.read_text())
    assert report["selection"]["ranked_by"] == "icl"
    assert report["selection"]["best"] == best
    table_icl = report["selection"]["results"]["icl"]
    np.testing.assert_allclose(table_icl, expected.results_["icl"], rtol=1e-9)


def test_a_single_k_and_d_fit_without_a_table(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, _ = _clusters()
    data = tmp_path / "data.csv"
    _write_csv(data, table)
    assert main(["fit", str(data), "-k", "3", "-d", "2", *SETTINGS]) == 0
    assert "model selection" not in capsys.readouterr().out


def test_a_factor_range_beyond_the_columns_is_refused(
    tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    table, _ = _clusters()
    data = tmp_path / "data.csv"
    _write_csv(data, table)
    code = main(["fit", str(data), "-k", "2", "-d", "1:5", *SETTINGS])
    _assert_one_line_error(code, capsys, "-d/--factors 5", "feature columns (5)")
