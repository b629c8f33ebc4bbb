"""Smoke test of ``benchmarks/generator.py``: it runs end to end and reports sane numbers."""

from __future__ import annotations

import re

from tests.script_loader import load_repo_script


def _load_script(monkeypatch):
    return load_repo_script("benchmarks/generator.py", monkeypatch)


def _table_rows(report: str, first_header_cell: str) -> list[list[str]]:
    """Data rows of the markdown table whose header starts with ``first_header_cell``."""
    lines = report.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header_cell} |"))
    assert set(lines[start + 1].replace("|", "")) <= set("-: "), "missing separator row"
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip("|").split("|")])
    return rows


def test_generator_benchmark_tiny_run(capsys, monkeypatch) -> None:
    bench = _load_script(monkeypatch)
    report = bench.main(
        [
            "--device",
            "cpu",
            "--threads",
            "1",
            "--batch-sizes",
            "1",
            "2",
            "--repeats",
            "1",
            "--warmup",
            "1",
            "--min-time",
            "0",
            "--train-batch-sizes",
            "4",
            "--train-iterations",
            "2",
            "--train-warmup",
            "1",
        ]
    )
    assert report.strip() == capsys.readouterr().out.strip()  # what is printed is what is returned
    header = report.splitlines()[0]
    assert header.startswith("# device:") and "torch " in header and "threads: " in header

    forward = _table_rows(report, "batch")
    assert [row[0] for row in forward] == ["1", "2"]
    for batch, ms_text, ips_text, rel_text in forward:
        ms, ips, rel = float(ms_text), float(ips_text), float(rel_text.rstrip("×"))
        assert ms > 0 and ips > 0 and rel > 0
        # images/s consistent with ms/forward (up to the printed rounding)
        assert abs(ips - int(batch) / (ms / 1e3)) <= 0.01 * ips + 0.05
    assert forward[0][3] == "1.00×"

    # The training table is the second one starting with "| batch |".
    train_start = report.index("## GAN training iteration")
    train = _table_rows(report[train_start:], "batch")
    assert len(train) == 1
    row = train[0]
    assert row[0] == "4"
    assert re.fullmatch(r"2 \(\d\)", row[1]), row[1]
    mean_ms, median_ms, loop_ms, ips = float(row[2]), float(row[3]), float(row[6]), float(row[7])
    # loop (end → end) contains the step (start → end) of the same iterations
    assert mean_ms > 0 and median_ms > 0 and loop_ms >= mean_ms and ips > 0
    assert abs(ips - 4 / (mean_ms / 1e3)) <= 0.01 * ips + 0.05


def test_apt_distances_benchmark_tiny_run(capsys, monkeypatch) -> None:
    """``benchmarks/apt_distances.py`` (its numbers back losses.apt.knn_distances' docstring) runs,
    prints what it returns, and shows the refined distances' self-distance at exactly 0."""
    bench = load_repo_script("benchmarks/apt_distances.py", monkeypatch)
    report = bench.main(["--threads", "1", "--batches", "64", "--dim", "16", "--repeats", "1", "--rounds", "1"])
    assert report.strip() == capsys.readouterr().out.strip()
    header = report.splitlines()[2].strip("|").split("|")
    rows = _table_rows(report, "threads")
    assert len(rows) == 1 and rows[0][:2] == ["1", "64"]
    row = dict(zip((cell.strip() for cell in header), rows[0], strict=True))
    assert float(row["mm (ms)"]) > 0 and row["refined / mm"].endswith("×")
    assert float(row["self-distance refined"]) == 0.0
