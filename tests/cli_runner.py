"""One way for the tests to run ``python -m palm_lightning`` as a user would: in a subprocess, or, for
``--print_config`` (parsing only, most of the suite's CLI calls), through the same entry point in this
process, which saves the ~5 s a fresh interpreter spends importing torch and Lightning."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import warnings
from collections.abc import Sequence
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def run_cli(
    *args: str, cwd: Path, timeout: float = 300, pythonpath: Sequence[Path | str] = ()
) -> subprocess.CompletedProcess[str]:
    """Run the CLI with ``args`` in ``cwd`` on one thread, warnings silenced, the repository (so
    ``tests.*`` callbacks and rewards import) and ``pythonpath`` on ``PYTHONPATH``, and no
    ``JSONARGPARSE_DEBUG`` (the tests check the messages a user sees)."""
    if "--print_config" in args and "JSONARGPARSE_DEBUG" not in os.environ:
        return print_config_in_process(args, cwd, pythonpath)
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


def print_config_in_process(
    args: Sequence[str], cwd: Path, pythonpath: Sequence[Path | str] = ()
) -> subprocess.CompletedProcess[str]:
    """``python -m palm_lightning <args>`` for a parse-only call, run by :func:`palm_lightning.cli.main`
    in this process with the working directory, ``sys.path``, output streams and exit code a
    subprocess would have."""
    from palm_lightning.cli import main

    out, err = io.StringIO(), io.StringIO()
    old_cwd, old_path = os.getcwd(), list(sys.path)
    code = 0
    try:
        os.chdir(cwd)
        sys.path[:0] = [str(REPO), *(str(p) for p in pythonpath)]
        with redirect_stdout(out), redirect_stderr(err), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                main(list(args))
            except SystemExit as exit_:
                code = exit_.code if isinstance(exit_.code, int) else (0 if exit_.code is None else 1)
    finally:
        os.chdir(old_cwd)
        sys.path[:] = old_path
    command = [sys.executable, "-m", "palm_lightning", *args]
    return subprocess.CompletedProcess(command, code, out.getvalue(), err.getvalue())
