"""Every YAML under configs/ parses through the CLI: alone, or an overlay on top of the config it is
written for (``--print_config``, in-process: see tests/cli_runner.py). Training a few steps is each
family's own test (test_palm_cli, test_ear, test_meta_rl, test_atari_rl, test_eval_modules, …)."""

from __future__ import annotations

import pytest

from tests.cli_runner import REPO, run_cli

CONFIGS = REPO / "configs"
# overlays: the configs they go on top of (the command in each overlay's header)
BASES = {
    "atari/atari100k.yaml": ("atari/finetune.yaml",),
    "atari/cpu_protocol.yaml": ("atari/finetune.yaml",),
    "atari/cpu_100k.yaml": ("atari/finetune.yaml", "atari/cpu_protocol.yaml"),
    "budget/simsiam_sgd.yaml": ("baselines/simsiam_fmnist.yaml",),
    "budget/atari.yaml": ("palm_atari.yaml",),
}
OVERLAY_FOLDERS = ("palm_variants/", "budget/")  # otherwise on top of configs/palm.yaml
STANDALONE_VARIANTS = ("palm_variants/inverse_dynamics.yaml", "palm_variants/stdim.yaml")
TEST_ONLY = ("eval/knn_", "eval/ood_")  # probes without training: `test`


def command(relative: str) -> list[str]:
    bases = BASES.get(relative)
    if bases is None:
        overlay = relative.startswith(OVERLAY_FOLDERS) and relative not in STANDALONE_VARIANTS
        bases = ("palm.yaml",) if overlay else ()
    subcommand = "test" if relative.startswith(TEST_ONLY) else "fit"
    args = [subcommand]
    for config in (*bases, relative):
        args += ["--config", str(CONFIGS / config)]
    return [*args, "--print_config"]


ALL = sorted(path.relative_to(CONFIGS).as_posix() for path in CONFIGS.rglob("*.yaml"))


@pytest.mark.parametrize("relative", ALL)
def test_every_config_parses(relative, tmp_path):
    result = run_cli(*command(relative), cwd=tmp_path)
    assert result.returncode == 0, (relative, result.stderr[-1500:])
    assert "model:" in result.stdout and "data:" in result.stdout


def test_the_list_covers_every_folder():
    assert len(ALL) > 60 and {p.split("/")[0] for p in ALL if "/" in p} >= {"atari", "budget", "ear", "eval"}
