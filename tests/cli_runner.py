"""One way for the tests to run ``python -m palm_lightning`` in a subprocess, as a user would."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, cwd: Path, timeout: float = 300, pythonpath: Sequence[Path | str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``args`` in ``cwd`` on one thread, warnings silenced, the repository (so
    ``tests.*`` callbacks and rewards import) and ``pythonpath`` on ``PYTHONPATH``, and no
    ``JSONARGPARSE_DEBUG`` (the tests check the messages a user sees)."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
    env["PYTHONPATH"] = os.pathsep.join(str(p) for p in [REPO, *pythonpath])
    env.pop("JSONARGPARSE_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-m", "palm_lightning", *args],
        check=False,
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
