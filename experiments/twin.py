"""Writing a results page's JSON twin without losing what other drivers stored in it.

A twin (``docs/results/<page>.json``) holds the page's headline table as ``command`` + ``rows`` and
any number of other tables under ``tables``. A driver that regenerates the headline replaces those
two keys (and the extra keys it owns); every other key stays, and ``tables`` entries merge by name.
A std over one seed is written as 0.0 with its ``n``, never ``null``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def clean_metrics(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Rows with every ``std`` that is ``None`` (one seed) written as 0.0."""
    for row in rows:
        for metric in row.get("metrics", {}).values():
            if isinstance(metric, dict) and metric.get("std") is None:
                metric["std"] = 0.0
    return rows


def write_twin(path: Path, command: str, rows: list[dict[str, Any]], **extra: Any) -> None:
    """Set the twin's headline (``command``, ``rows``) and ``extra`` keys; keep the rest. A
    ``tables`` value in ``extra`` is merged into the stored tables by ``name``."""
    doc: dict[str, Any] = json.loads(path.read_text()) if path.is_file() else {}
    new_tables = extra.pop("tables", [])
    doc.update(extra)
    doc["command"] = command
    doc["rows"] = clean_metrics(rows)
    tables = [t for t in doc.get("tables", []) if t.get("name") not in {n.get("name") for n in new_tables}]
    tables += [{**t, "rows": clean_metrics(t.get("rows", []))} for t in new_tables]
    if tables:
        doc["tables"] = tables
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2, ensure_ascii=True) + "\n")
