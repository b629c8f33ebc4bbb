"""Import a file under ``scripts/`` or ``benchmarks/`` as a module for a test.

Those files are not in a package. The module is registered in ``sys.modules`` for the test's
duration (``dataclasses`` looks its defining module up there) and its folder is put on
``sys.path`` (scripts import their siblings, e.g. ``from representation_table import ...``).
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

REPO = Path(__file__).resolve().parents[1]


def load_repo_script(relative: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """``relative`` is the file's path from the repository root, e.g. ``"palm_lightning/tools/compare_runs.py"``."""
    path = REPO / relative
    name = "_".join(path.with_suffix("").parts[-2:])  # scripts_compare_runs: no clash with a sibling import
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None, f"no such script: {path}"
    module = importlib.util.module_from_spec(spec)
    monkeypatch.syspath_prepend(str(path.parent))
    monkeypatch.setitem(sys.modules, name, module)
    spec.loader.exec_module(module)
    return module
