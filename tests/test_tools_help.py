"""Every ``python -m palm_lightning.tools.<name>`` answers ``--help`` with its usage and purpose."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import palm_lightning.tools

TOOLS = sorted(
    info.name for info in pkgutil.iter_modules(palm_lightning.tools.__path__) if not info.name.startswith("_")
)


def test_the_user_diagnostics_are_tools():
    assert {
        "compare_runs",
        "controllability",
        "domain_gap",
        "encoder_drift",
        "feature_spread",
        "inverse_heldout",
    } <= set(TOOLS)
    assert {"policy_frames", "render_tensorboard", "vae_reconstruction"} <= set(TOOLS)


@pytest.mark.parametrize("name", [t for t in TOOLS if t != "ear_rollouts"])
def test_each_tool_answers_help(name, capsys):
    module = importlib.import_module(f"palm_lightning.tools.{name}")
    with pytest.raises(SystemExit) as exit_info:
        module.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and len(out.splitlines()) > 3, name
