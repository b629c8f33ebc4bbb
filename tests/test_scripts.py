"""The plotting helper under ``scripts/`` (the README's comparison figures come from it)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_script(name: str):
    spec = importlib.util.spec_from_file_location(name, REPO / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def write_run(directory: Path, values: dict[str, list[float]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(directory))
    for tag, series in values.items():
        for step, value in enumerate(series):
            writer.add_scalar(tag, value, step * 10)
    writer.close()


def test_compare_runs_reads_each_run_and_writes_one_png(tmp_path):
    compare_runs = load_script("compare_runs")
    write_run(tmp_path / "a", {"eval/error": [2.0, 1.0, 0.5], "only_a": [1.0]})
    write_run(tmp_path / "b", {"eval/error": [2.0, 1.5]})
    assert compare_runs.load_scalars(str(tmp_path / "a"), ["eval/error", "missing"]) == {
        "eval/error": ([0, 10, 20], [2.0, 1.0, 0.5])
    }
    out = compare_runs.plot({"A": str(tmp_path / "a"), "B": str(tmp_path / "b")}, ["eval/error", "only_a"], str(tmp_path / "fig.png"))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_runs_names_a_missing_run_directory(tmp_path):
    compare_runs = load_script("compare_runs")
    with pytest.raises(FileNotFoundError, match="version_N"):
        compare_runs.load_scalars(str(tmp_path / "nope"), ["x"])
