"""palm_lightning.tools.controllability: what a PALM explorer's actions decide in its environment."""

from __future__ import annotations

import dataclasses

import pytest
import torch
import yaml

from palm_lightning.tools import controllability
from tests.palm_fixtures import tiny_data_kwargs, tiny_generator_file, tiny_palm_kwargs, trainer


@pytest.fixture
def generator_file(tmp_path):
    return tiny_generator_file(tmp_path)


def write_config(tmp_path, generator_file, **model_overrides) -> object:
    model = tiny_palm_kwargs(**model_overrides)
    model.pop("reward")
    model["image_shape"] = list(model["image_shape"])
    model["agent"] = dataclasses.asdict(model["agent"])  # a config file writes the group as a mapping
    config = {
        "seed_everything": 0,
        "model": {"class_path": "palm_lightning.models.palm.PALM", "init_args": model},
        "data": {
            "class_path": "palm_lightning.datamodules.streams.LatentManifoldDataModule",
            "init_args": tiny_data_kwargs(generator_file),
        },
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def test_variance_shares_split_class_and_episode_variance():
    labels = torch.tensor([0, 0, 1, 1])
    episodes = torch.tensor([0, 0, 1, 1])
    by_class = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])
    between, within = controllability.variance_shares(by_class, labels, episodes)
    assert between == pytest.approx(1.0) and within == pytest.approx(0.0)
    within_only = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.0, 1.0]])
    between, within = controllability.variance_shares(within_only, labels, episodes)
    assert between == pytest.approx(0.0, abs=1e-6) and within == pytest.approx(1.0)


def test_a_config_alone_reports_the_untrained_agent_beside_uniform_actions(tmp_path, generator_file):
    config = write_config(tmp_path, generator_file)
    model_report, random_report = controllability.report(None, config, num_envs=8, steps=8, seed=3)
    assert (model_report.policy, random_report.policy) == ("model", "random")
    assert 0.0 < random_report.saturated < 0.15  # uniform actions: 5% beyond 0.95
    assert random_report.latent_resultant < 0.5  # directions spread like the prior's
    for report in (model_report, random_report):
        assert report.action_effect_frame > 0 and report.noise_effect_frame > 0  # both decide something
        assert 0 <= report.between_class_untrained <= 1 and 0 <= report.within_episode_untrained <= 1
    table = controllability.markdown([model_report, random_report])
    assert "| saturated |" in table and table.count("\n") == 19


def test_a_saturated_policy_pins_the_latent_direction(tmp_path, generator_file, monkeypatch):
    config = write_config(tmp_path, generator_file)
    model, data = controllability.build_from_config(config)
    monkeypatch.setattr(model, "act", lambda obs, *a, **k: torch.ones(obs.shape[0], 8))
    env = data.make_env(8, 3, torch.device("cpu"))
    saturated = controllability.measure(model, env, model.encoder, "model", steps=12, seed=3)
    env = data.make_env(8, 3, torch.device("cpu"))
    uniform = controllability.measure(model, env, model.encoder, "random", steps=12, seed=3)
    assert saturated.saturated == 1.0
    assert saturated.latent_resultant > 2 * uniform.latent_resultant
    assert saturated.consecutive_latent_cos > uniform.consecutive_latent_cos


def test_a_checkpoint_is_read_with_its_run_config(tmp_path, generator_file):
    from palm_lightning.datamodules import LatentManifoldDataModule
    from palm_lightning.models import PALM

    config = write_config(tmp_path, generator_file, explorer_encoder="untrained")
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(config.read_text())
    model = PALM(**tiny_palm_kwargs(explorer_encoder="untrained"))
    fit = trainer(tmp_path, 3)
    fit.fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator_file)))
    fit.save_checkpoint(run / "checkpoints" / "last.ckpt")
    out = tmp_path / "report.json"
    controllability.main(
        [str(run / "checkpoints" / "last.ckpt"), "--num-envs", "4", "--steps", "4", "--json", str(out)]
    )
    assert [r["policy"] for r in yaml.safe_load(out.read_text())] == ["model", "random"]
    with pytest.raises(SystemExit):
        controllability.main([])  # neither a checkpoint nor a config
