"""experiments.controllability_screens: every screen's overrides parse on configs/palm.yaml and change
what its hypothesis names."""

from __future__ import annotations

import pytest
import yaml

from experiments import controllability_screens as screens
from tests.cli_runner import REPO, run_cli


@pytest.mark.parametrize("screen", screens.SCREENS, ids=lambda s: s.name)
def test_each_screen_parses_on_the_main_config(screen, tmp_path):
    args = ["fit", "--config", str(REPO / "configs" / "palm.yaml"), *screen.overrides, "--print_config"]
    result = run_cli(*args, cwd=REPO)  # as the driver runs it: overlays named from the repository root
    assert result.returncode == 0, result.stderr[-1500:]
    printed = yaml.safe_load(result.stdout)
    policy = printed["model"]["init_args"]["policy"]
    assert policy == ("random" if screen.name.startswith("random") else "apt")


def test_run_names_keep_the_screens_store_and_tell_budgets_and_seeds_apart():
    screen = screens.BY_NAME["apt_c"]
    assert screens.run_name(screen, 0, 3000) == "apt_c"
    assert screens.run_name(screen, 2, 10000) == "apt_c_u10000_s2"
