"""docs/results/: every write-up has its JSON twin, and every stored JSON is plain, parseable ASCII,
so that a diff of a result shows the number that changed and any tool reads it."""

from __future__ import annotations

import json

from tests.cli_runner import REPO

RESULTS = REPO / "docs" / "results"


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
