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
    groups = compare_runs.group_runs([f"A={tmp_path / 'a'}", f"B={tmp_path / 'b'}"])
    data = compare_runs.load_groups(groups, ["eval/error", "only_a"])
    out = compare_runs.plot(data, ["eval/error", "only_a"], str(tmp_path / "fig.png"))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_runs_treats_a_repeated_label_as_seeds(tmp_path):
    compare_runs = load_script("compare_runs")
    write_run(tmp_path / "s0", {"err": [3.0, 2.0, 1.0, 0.0]})
    write_run(tmp_path / "s1", {"err": [3.0, 2.0, 2.0, 2.0]})
    write_run(tmp_path / "other", {"err": [5.0]})
    groups = compare_runs.group_runs([f"EAR={tmp_path / 's0'}", f"OHE={tmp_path / 'other'}", f"EAR={tmp_path / 's1'}"])
    assert groups == {"EAR": [str(tmp_path / "s0"), str(tmp_path / "s1")], "OHE": [str(tmp_path / "other")]}
    data = compare_runs.load_groups(groups, ["err"])
    steps, mean, std = compare_runs.mean_over_seeds([run["err"] for run in data["EAR"]])
    assert (
        steps.tolist() == [0, 10, 20, 30] and mean.tolist() == [3.0, 2.0, 1.5, 1.0] and std.tolist() == [0, 0, 0.5, 1.0]
    )
    rows = compare_runs.summary(data, ["err"], last=2)
    # final: 0 and 2 -> 1.00 ± 1.00; last two: 0.5 and 2.0 -> 1.25 ± 0.75
    assert rows[2] == "| err | EAR | 2 | 1.00 ± 1.00 | 1.25 ± 0.75 |"
    assert rows[3] == "| err | OHE | 1 | 5.00 ± 0.00 | 5.00 ± 0.00 |"
    assert compare_runs.plot(data, ["err"], str(tmp_path / "seeds.png")).is_file()
    with pytest.raises(ValueError, match="label=run_dir"):
        compare_runs.group_runs(["no-label"])


def test_compare_runs_names_a_missing_run_directory(tmp_path):
    compare_runs = load_script("compare_runs")
    with pytest.raises(FileNotFoundError, match="version_N"):
        compare_runs.load_scalars(str(tmp_path / "nope"), ["x"])
