"""LatentManifoldDataModule takes the environment's arguments from LatentManifold itself: the
command line lists them with LatentManifold's defaults, a wrong name is refused with the list."""

from __future__ import annotations

import inspect

import pytest
import yaml

from palm_lightning.datamodules.streams.latent_manifold import LatentManifoldDataModule
from palm_lightning.envs.latent_manifold import LatentManifold
from tests.cli_runner import REPO, run_cli


def environment_defaults() -> dict[str, object]:
    set_here = LatentManifoldDataModule.ENV_ARGUMENTS_SET_HERE
    return {n: p.default for n, p in inspect.signature(LatentManifold).parameters.items() if n not in set_here}


def test_env_settings_are_the_environments_defaults_with_what_was_given():
    data = LatentManifoldDataModule(ema=0.25, class_resample="step")
    assert data.env_kwargs == {"ema": 0.25, "class_resample": "step"}
    assert data.env_settings == {**environment_defaults(), "ema": 0.25, "class_resample": "step"}


@pytest.mark.parametrize("name", ["emma", "device"])
def test_an_argument_the_environment_does_not_take_here_is_named_with_the_ones_it_does(name):
    with pytest.raises(TypeError, match=rf"unknown arguments \['{name}'\].*'ema'.*'class_resample'"):
        LatentManifoldDataModule(**{name: 0.5})


def test_the_command_line_lists_every_environment_argument_with_its_default():
    result = run_cli("fit", "--config", str(REPO / "configs" / "palm.yaml"), "--print_config", cwd=REPO)
    assert result.returncode == 0, result.stderr[-1500:]
    printed = yaml.safe_load(result.stdout)["data"]["init_args"]
    expected = {**environment_defaults(), "ema": 0.5, "episode_length": 50}  # palm.yaml sets these two
    assert {name: printed[name] for name in expected} == expected


def test_a_misspelt_environment_key_on_the_command_line_is_refused():
    args = ("fit", "--config", str(REPO / "configs" / "palm.yaml"), "--data.init_args.emma", "0.9", "--print_config")
    result = run_cli(*args, cwd=REPO)
    assert result.returncode != 0
    assert "emma" in result.stderr
