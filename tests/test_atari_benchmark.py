"""Smoke test of ``benchmarks/atari.py``: both sections run end to end on tiny settings and write
their numbers in docs/results/benchmarks.json's shape."""

from __future__ import annotations

import json
import sys

import pytest

from tests.script_loader import load_repo_script


def _load_script(monkeypatch):
    return load_repo_script("benchmarks/atari.py", monkeypatch)


def test_dqn_section_compares_the_same_network(tmp_path, monkeypatch, capsys):
    pytest.importorskip("stable_baselines3")
    bench = _load_script(monkeypatch)
    out = tmp_path / "dqn.json"
    bench.main(["--sections", "dqn", "--seconds", "0.01", "--rounds", "1", "--buffer-steps", "64", "--json", str(out)])
    report = capsys.readouterr().out
    assert "same network" in report and "# machine:" in report
    (table,) = json.loads(out.read_text())["tables"]
    assert table["command"].startswith("python benchmarks/atari.py --sections dqn")
    ratio = next(r for r in table["rows"] if r["name"].startswith("ratio"))["metrics"]["ratio"]
    assert ratio["mean"] > 0 and ratio["std"] is None and ratio["n"] == 1


def test_dqn_section_says_how_to_install_stable_baselines3(monkeypatch, capsys):
    bench = _load_script(monkeypatch)
    monkeypatch.setitem(sys.modules, "stable_baselines3", None)  # import fails
    assert bench.bench_dqn(0.01, 1, 64, 6) is None
    assert 'pip install -c constraints.txt -e ".[bench]"' in capsys.readouterr().out


def test_stream_section_measures_both_sides(tmp_path, monkeypatch):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    bench = _load_script(monkeypatch)
    table = bench.bench_stream("Pong", [1], seconds=0.01, rounds=1)
    (row,) = table["rows"]
    metrics = row["metrics"]
    assert metrics["bare_syncvectorenv_steps_per_s"]["mean"] > 0 and metrics["our_stream_steps_per_s"]["mean"] > 0
    assert metrics["ours_over_bare"]["mean"] > 0
