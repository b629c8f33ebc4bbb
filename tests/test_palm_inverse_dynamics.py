"""PALM with an inverse-dynamics objective: the head learns the action from what changed, the update trains it
with the encoder on the tiny generator, checkpoints carry it, and bad settings are named."""

from __future__ import annotations

import importlib
import sys

import pytest
import torch

from palm_lightning.checkpoints import load_network
from palm_lightning.datamodules import LatentManifoldDataModule
from palm_lightning.models import PALMInverseDynamics
from palm_lightning.nn.encoders import DrQEncoder
from tests.cli_runner import REPO
from tests.palm_fixtures import tiny_data_kwargs, tiny_generator_file, tiny_palm_kwargs, trainer


def action_pairs(actions: torch.Tensor, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random 16×16 frames and next frames whose left / right halves are brightened by the two actions:
    only the change between the two frames tells the action."""
    generator = torch.Generator().manual_seed(seed)
    obs = torch.rand(actions.shape[0], 1, 16, 16, generator=generator) * 0.5 - 0.25
    next_obs = obs.clone()
    next_obs[:, :, :, :8] += 0.7 * actions[:, 0, None, None, None]
    next_obs[:, :, :, 8:] += 0.7 * actions[:, 1, None, None, None]
    return obs, next_obs


def test_the_inverse_head_learns_the_action_from_the_change_between_frames():
    torch.manual_seed(0)
    model = PALMInverseDynamics(**tiny_palm_kwargs(action_dim=2))
    optimizer = torch.optim.Adam(model.representation_parameters(), lr=3e-3)
    r2 = []
    for step in range(150):
        actions = torch.rand(64, 2) * 2 - 1
        loss, logs = model.representation_loss(*action_pairs(actions, step), actions)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        r2.append(float(logs["train/inverse_r2"]))
    assert r2[0] < 0.2 and sum(r2[-10:]) / 10 > 0.6, (r2[0], r2[-10:])
    # The same head cannot tell the action when the next frame does not carry it (shuffled pairs).
    actions = torch.rand(256, 2) * 2 - 1
    obs, next_obs = action_pairs(actions, 999)
    with torch.no_grad():
        _, matched = model.representation_loss(obs, next_obs, actions)
        _, shuffled = model.representation_loss(obs, next_obs, actions.roll(1, dims=0))
    assert float(matched["train/inverse_r2"]) > 0.6 and float(shuffled["train/inverse_r2"]) < 0.0


def test_palm_inverse_dynamics_trains_its_head_with_the_encoder_and_checkpoints(tmp_path):
    generator = tiny_generator_file(tmp_path)
    model = PALMInverseDynamics(**tiny_palm_kwargs(policy="random"))
    head_before = [p.detach().clone() for p in model.inverse_model.parameters()]
    assert not hasattr(model, "projector") and not hasattr(model, "predictor")  # SimSiam's heads: unused, not built
    fit = trainer(tmp_path, 3)
    fit.fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator)))
    assert int(model.updates) == 3
    optimised = {id(p) for group in fit.optimizers[0].param_groups for p in group["params"]}
    assert all(id(p) in optimised for p in [*model.encoder.parameters(), *model.inverse_model.parameters()])
    assert all(not torch.equal(a, b) for a, b in zip(head_before, model.inverse_model.parameters(), strict=True))
    for name in ("train/ssl_loss", "train/inverse_mse", "train/inverse_r2", "train/z_std"):
        assert name in fit.callback_metrics
    features = torch.randn(5, 16)
    assert torch.equal(model.reward_features(features), features)  # APT in the encoder's own space

    fit.save_checkpoint(tmp_path / "inverse.ckpt")
    restored = PALMInverseDynamics.load_from_checkpoint(tmp_path / "inverse.ckpt")
    assert torch.equal(restored.inverse_model[0][0].weight, model.inverse_model[0][0].weight)
    assert restored.siamese_weight == 0.0 and restored.inverse_hidden == 256
    assert isinstance(load_network(tmp_path / "inverse.ckpt", kind="encoder"), DrQEncoder)


def test_a_siamese_weight_trains_simsiams_heads_too(tmp_path):
    generator = tiny_generator_file(tmp_path)
    model = PALMInverseDynamics(**tiny_palm_kwargs(policy="random"), siamese_weight=0.5)
    fit = trainer(tmp_path, 2)
    fit.fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator)))
    optimised = {id(p) for group in fit.optimizers[0].param_groups for p in group["params"]}
    assert all(id(p) in optimised for p in [*model.projector.parameters(), *model.predictor.parameters()])
    assert "train/siamese_loss" in fit.callback_metrics


def test_palm_inverse_dynamics_rejects_bad_settings():
    with pytest.raises(ValueError, match="needs pairing: temporal"):
        PALMInverseDynamics(**tiny_palm_kwargs(pairing="augmentation"))
    with pytest.raises(ValueError, match="siamese_weight must be >= 0"):
        PALMInverseDynamics(**tiny_palm_kwargs(), siamese_weight=-1.0)
    with pytest.raises(ValueError, match="inverse_hidden must be >= 1"):
        PALMInverseDynamics(**tiny_palm_kwargs(), inverse_hidden=0)
    model = PALMInverseDynamics(**tiny_palm_kwargs())
    images = torch.zeros(4, 1, 16, 16)
    with pytest.raises(ValueError, match=r"needs the actions of its pairs, shape \(4, 8\), got \(4, 3\)"):
        model.representation_loss(images, images, torch.zeros(4, 3))


def test_the_inverse_dynamics_config_composes_with_palm_atari_and_the_random_policy(tmp_path, monkeypatch):
    from palm_lightning.cli import PalmCLI

    monkeypatch.setattr(sys, "argv", ["palm_lightning"])  # the CLI reads args=, not pytest's argv
    configs = ["palm_atari.yaml", "budget/atari.yaml", "palm_variants/random_policy.yaml"]
    configs.append("palm_variants/inverse_dynamics.yaml")
    args = [arg for name in configs for arg in ("--config", str(REPO / "configs" / name))]
    cli = PalmCLI(args=[*args, "--trainer.logger.init_args.save_dir", str(tmp_path)], run=False)
    assert type(cli.model) is PALMInverseDynamics and cli.model.hparams.policy == "random"
    assert cli.model.hparams.repr_lr == 3e-4 and cli.model.siamese_weight == 0.0
    assert cli.trainer.logger.name == "palm_inverse_dynamics" and cli.trainer.max_steps == 3000


def test_the_held_out_script_reads_the_runs_environment_and_bounds_what_a_head_can_read(tmp_path, monkeypatch):

    script = importlib.import_module("palm_lightning.tools.inverse_heldout")
    assert abs(script.observer_bound(1.0) - 0.253) < 0.01 and script.observer_bound(10.0) > 0.9
    actions = torch.rand(512, 3) * 2 - 1
    assert script.correlation(actions * 5, actions) > 0.999 and script.r_squared(actions * 5, actions) < -10
    assert abs(script.correlation(actions.roll(1, dims=0), actions)) < 0.15
    config = tmp_path / "run.yaml"
    generator = tiny_generator_file(tmp_path)
    config.write_text(f"data:\n  init_args:\n    generator: {generator}\n    ema: 0.3\n    batch_size: 8\n")
    env = script.environment(config, num_envs=4, seed=3)
    assert env.ema == 0.3 and env.num_envs == 4  # the config's setting; batch_size is not the env's
    env.episode_length = 3
    obs, taken, next_obs = script.transitions(env, 5, seed=3)
    assert obs.shape == next_obs.shape == (20, 1, 16, 16) and taken.shape == (20, 8)
    assert torch.equal(obs[4:8], next_obs[0:4])  # within an episode o_t is the last step's o_{t+1} ...
    assert not torch.equal(obs[12:16], next_obs[8:12])  # ... and after the third step the episodes restart
