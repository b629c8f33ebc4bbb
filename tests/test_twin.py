"""experiments.twin: a driver regenerating a page's headline keeps the other tables of its twin."""

from __future__ import annotations

import json

from experiments.twin import write_twin


def test_the_headline_is_replaced_other_keys_kept_tables_merged_by_name(tmp_path):
    path = tmp_path / "page.json"
    path.write_text(json.dumps({"command": "old", "rows": [], "tables": [{"name": "a", "rows": []}], "extra": 1}))
    rows = [{"name": "x", "metrics": {"knn": {"mean": 0.8, "std": None, "n": 1}}}]
    write_twin(path, "new", rows, tables=[{"name": "b", "command": "new", "rows": rows}])
    doc = json.loads(path.read_text())
    assert doc["command"] == "new" and doc["extra"] == 1
    assert doc["rows"][0]["metrics"]["knn"] == {"mean": 0.8, "std": 0.0, "n": 1}
    assert [t["name"] for t in doc["tables"]] == ["a", "b"]
    write_twin(path, "newer", rows, tables=[{"name": "b", "command": "newer", "rows": []}])
    assert [t["command"] for t in json.loads(path.read_text())["tables"] if t["name"] == "b"] == ["newer"]
    assert path.read_text().endswith("\n") and path.read_text().isascii()
