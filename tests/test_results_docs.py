"""docs/results/: every write-up has its JSON twin, and every stored JSON is plain, parseable ASCII,
so that a diff of a result shows the number that changed and any tool reads it.

Each write-up is a short user page (what to take from it, the headline table, the command that
regenerates it, a conclusion), not a lab diary: the diary lives in ``experiments/notes/``. Its twin
holds the headline table as ``command`` and ``rows`` of ``{name, metrics: {metric: {mean, std, n}}}``."""

from __future__ import annotations

import json
import math
import re

from tests.cli_runner import REPO

RESULTS = REPO / "docs" / "results"

MAX_LINES = 100

# Work-log wording that belongs in experiments/notes/, not on a user page.
DIARY_MARKERS = [
    re.compile(pattern, re.IGNORECASE)
    for pattern in (
        r"\bissue \d+",
        r"\blever \d",
        r"\bfix \d",
        r"\b20\d\d-\d\d-\d\d\b",
        r"\bthis session\b",
        r"\blast session\b",
        r"\bcommit [0-9a-f]{7,40}\b",
    )
]

# Paths that moved: experiment drivers to ``python -m experiments.X``, diagnostics to
# ``python -m palm_lightning.tools.X``, the committed per-run stores to ``experiments/stores/``.
MOVED_PATHS = re.compile(
    r"\bscripts/(representation_table|long_budget_table|palm_sweep|fidelity|atari_table|ear_adaptation|gpu_smoke"
    r"|compare_runs|render_tensorboard|vae_reconstruction|domain_gap|policy_frames|encoder_drift|feature_spread"
    r"|inverse_heldout)\.py|\bdocs/results/(atari|ear_adaptation)_runs\b"
)


def is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def test_every_write_up_has_a_json_twin() -> None:
    write_ups = sorted(RESULTS.glob("*.md"))
    assert write_ups, RESULTS
    missing = [md.name for md in write_ups if not md.with_suffix(".json").is_file()]
    assert not missing, f"write-ups without a JSON twin: {missing}"


def test_stored_json_is_ascii_and_parses() -> None:
    for path in sorted(RESULTS.rglob("*.json")):
        text = path.read_text(encoding="utf-8")
        assert text.isascii(), f"{path.relative_to(REPO)}: non-ASCII characters (write them as ASCII)"
        assert text.endswith("\n"), f"{path.relative_to(REPO)}: no trailing newline"
        json.loads(text)


def test_write_ups_are_short_user_pages() -> None:
    problems = []
    for md in sorted(RESULTS.glob("*.md")):
        lines = md.read_text(encoding="utf-8").splitlines()
        if len(lines) > MAX_LINES:
            limit = f"at most {MAX_LINES}; the details go to experiments/notes/"
            problems.append(f"{md.name}: {len(lines)} lines ({limit})")
        for number, line in enumerate(lines, start=1):
            problems += [
                f"{md.name}:{number}: lab-diary wording {marker.pattern!r}: {line.strip()}"
                for marker in DIARY_MARKERS
                if marker.search(line)
            ]
            if MOVED_PATHS.search(line):
                problems.append(f"{md.name}:{number}: a path from before the move: {line.strip()}")
    assert not problems, "\n".join(problems)


def test_every_twin_holds_its_headline_table() -> None:
    problems = []
    for md in sorted(RESULTS.glob("*.md")):
        path = md.with_suffix(".json")
        if not path.is_file():
            continue  # reported by test_every_write_up_has_a_json_twin
        doc = json.loads(path.read_text(encoding="utf-8"))
        where = path.relative_to(REPO)
        command = doc.get("command")
        if not isinstance(command, str) or not command.strip():
            problems.append(f"{where}: no top-level string 'command' (the headline table's command)")
        elif MOVED_PATHS.search(command):
            problems.append(f"{where}: 'command' uses a path from before the move: {command}")
        rows = doc.get("rows")
        if not isinstance(rows, list) or not rows:
            problems.append(f"{where}: no non-empty top-level 'rows' list (the headline table's rows)")
            continue
        for index, row in enumerate(rows):
            name = row.get("name") if isinstance(row, dict) else None
            label = f"{where}: rows[{index}] ({name!r})"
            if not isinstance(name, str) or not name:
                problems.append(f"{label}: no string 'name'")
            metrics = row.get("metrics") if isinstance(row, dict) else None
            if not isinstance(metrics, dict) or not metrics:
                problems.append(f"{label}: 'metrics' is not a non-empty mapping")
                continue
            for metric, stats in metrics.items():
                if not isinstance(stats, dict):
                    problems.append(f"{label}: metric {metric!r} is {stats!r}, not {{mean, std, n}}")
                    continue
                for key in ("mean", "std"):
                    if not is_number(stats.get(key)):
                        problems.append(f"{label}: metric {metric!r}: {key} is {stats.get(key)!r}, not a number")
                n = stats.get("n")
                if not isinstance(n, int) or isinstance(n, bool) or n < 1:
                    problems.append(f"{label}: metric {metric!r}: n is {n!r}, not a positive int")
    assert not problems, "\n".join(problems)
