"""Smoke tests of the documentation's examples: they run end to end and draw their figures.

Runs once, in the NumPy session (the example computes on NumPy whatever the backend).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from tests.conftest import load_namespace

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def _load_example(name: str):
    spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_toy_2d_draws_its_figures(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    load_namespace("numpy")  # skips outside the NumPy session
    pytest.importorskip("matplotlib")
    toy = _load_example("toy_2d")
    argv = ["--out", str(tmp_path), "--n-samples", "150", "--max-iter", "15", "--n-init", "1"]
    toy.main([*argv, "--grid", "24", "--seed", "3"])
    for name in ("toy_densities", "toy_latent", "toy_loglik"):
        figure = tmp_path / f"{name}.png"
        assert figure.stat().st_size > 1000, figure
    assert "true model log-likelihood per point" in capsys.readouterr().out


def test_model_selection_draws_its_figure(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    load_namespace("numpy")  # skips outside the NumPy session
    pytest.importorskip("matplotlib")
    example = _load_example("model_selection")
    example.main(
        ["--out", str(tmp_path), "--max-components", "3", "--max-factors", "2", "--n-init", "1"]
    )
    assert (tmp_path / "model_selection.png").stat().st_size > 1000
    out = capsys.readouterr().out
    assert "best by BIC" in out
    assert "best by ICL" in out
