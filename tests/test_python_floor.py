"""One Python floor, stated once for users (README) and once for tools (pyproject), and tested: CI's
interpreter is that floor's minor version or newer, and ruff and mypy check the code as the floor."""

from __future__ import annotations

import re
import sys
import tomllib

from tests.cli_runner import REPO


def floor() -> tuple[int, int]:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    match = re.fullmatch(r">=\s*(\d+)\.(\d+)", project["project"]["requires-python"])
    assert match, project["project"]["requires-python"]
    return int(match[1]), int(match[2])


def test_readme_pyproject_ruff_and_mypy_name_the_same_floor():
    major, minor = floor()
    pyproject = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert pyproject["tool"]["ruff"]["target-version"] == f"py{major}{minor}"
    assert pyproject["tool"]["mypy"]["python_version"] == f"{major}.{minor}"
    readme = (REPO / "README.md").read_text()
    assert f"Python ≥ {major}.{minor}" in readme
    others = {m for m in re.findall(r"Python ≥ (\d+\.\d+)", readme) if m != f"{major}.{minor}"}
    assert not others, f"the README names another floor: {others}"


def test_this_interpreter_meets_the_floor():
    assert sys.version_info[:2] >= floor()
