"""The PALM LightningModule on the streaming DataModule: training, resume, ablation, bad input."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import pytest
import torch

from palm_lightning.checkpoints import load_network
from palm_lightning.datamodules import FashionMNISTDataModule, LatentManifoldDataModule
from palm_lightning.models import PALM
from tests.palm_fixtures import tiny_data_kwargs, tiny_generator_file, tiny_palm_kwargs, trainer


@pytest.fixture
def generator_file(tmp_path: Path) -> Path:
    return tiny_generator_file(tmp_path)


def test_fit_counts_updates_and_env_steps(tmp_path, generator_file):
    model = PALM(**tiny_palm_kwargs())
    data = LatentManifoldDataModule(**tiny_data_kwargs(generator_file, steps_per_batch=2))
    encoder_before = [p.detach().clone() for p in model.encoder.parameters()]
    critic_before = [p.detach().clone() for p in model.agent.critic.parameters()]
    actor_before = [p.detach().clone() for p in model.agent.actor.parameters()]
    target_before = [p.detach().clone() for p in model.agent.critic_target.parameters()]
    trainer(tmp_path, 6).fit(model, data)
    assert int(model.updates) == 6
    # Warm-up: 32 seed frames (8 steps of 4 envs); then 2 steps of 4 envs per batch. The stream
    # collects one batch ahead of the update it feeds, so up to 7 batches were collected.
    assert data.env_steps >= 32 + 6 * 8 and int(model.env_steps) >= 32 + 5 * 8
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, model.encoder.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, model.agent.critic.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(actor_before, model.agent.actor.parameters(), strict=True))
    assert any(
        not torch.equal(a, b) for a, b in zip(target_before, model.agent.critic_target.parameters(), strict=True)
    )
    assert model.reward.last_distances is not None


def test_a_seeded_fit_is_bitwise_reproducible(tmp_path, generator_file):
    """Two fits under the same seed give the same encoder, bit for bit (on the CPU): a result stored from
    one session's run (experiments/atari_table.py's store) holds for the encoder its command rebuilds."""
    encoders = []
    for _ in range(2):
        L.seed_everything(0)
        model = PALM(**tiny_palm_kwargs())
        trainer(tmp_path, 6).fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator_file, seed=0)))
        encoders.append(model.encoder.state_dict())
    for name, tensor in encoders[0].items():
        assert torch.equal(tensor, encoders[1][name]), name


def test_replay_ratio_collects_once_every_updates_per_step(tmp_path, generator_file):
    model = PALM(**tiny_palm_kwargs())
    data = LatentManifoldDataModule(**tiny_data_kwargs(generator_file, updates_per_step=3))
    trainer(tmp_path, 9).fit(model, data)
    # warm-up 32 frames, then one 4-env step per 3 updates: batches 0, 3, 6 (and the one ahead, 9)
    assert data.env_steps - 32 in (3 * 4, 4 * 4)


def test_agent_gradients_never_reach_the_encoder(generator_file):
    from palm_lightning.agents import Transition

    model = PALM(**tiny_palm_kwargs())
    features = model.encoder(torch.rand(16, 1, 16, 16) * 2 - 1)
    batch = Transition(features, torch.rand(16, 8) * 2 - 1, torch.ones(16), torch.full((16,), 0.9), features)
    optimizers = {name: torch.optim.Adam(groups) for name, groups in model.agent.optimizer_groups().items()}
    model.agent.update(batch, 0, optimizers)
    assert all(p.grad is None for p in model.encoder.parameters())
    assert all(p.grad is not None for p in model.agent.actor.parameters())
    assert all(p.grad is not None for p in model.agent.critic.parameters())


def test_random_policy_trains_only_the_representation(tmp_path, generator_file):
    model = PALM(**tiny_palm_kwargs(policy="random"))
    actor_before = [p.detach().clone() for p in model.agent.actor.parameters()]
    data = LatentManifoldDataModule(**tiny_data_kwargs(generator_file))
    trainer(tmp_path, 3).fit(model, data)
    assert all(torch.equal(a, b) for a, b in zip(actor_before, model.agent.actor.parameters(), strict=True))
    actions = model.act(torch.zeros(5, 1, 16, 16, dtype=torch.uint8), 0)
    assert actions.shape == (5, 8) and actions.abs().max() <= 1


def test_checkpoint_resume_keeps_counters_targets_and_reward_scale(tmp_path, generator_file):
    from palm_lightning.rewards import APT

    data_kwargs = tiny_data_kwargs(generator_file, save_buffer=True)
    model = PALM(**tiny_palm_kwargs(reward=APT(k=4, knn_rms=True)))
    data = LatentManifoldDataModule(**data_kwargs)
    first = trainer(tmp_path, 4)
    first.fit(model, data)
    ckpt = tmp_path / "four.ckpt"
    first.save_checkpoint(ckpt)

    state = torch.load(ckpt, weights_only=False)
    saved_dm = state["LatentManifoldDataModule"]
    assert saved_dm["env_steps"] == data.env_steps and "buffer" in saved_dm

    resumed = PALM(**tiny_palm_kwargs(reward=APT(k=4, knn_rms=True)))
    resumed_data = LatentManifoldDataModule(**data_kwargs)
    target_before = {k: v.clone() for k, v in model.agent.critic_target.state_dict().items()}
    trainer(tmp_path, 5).fit(resumed, resumed_data, ckpt_path=ckpt)
    assert int(resumed.updates) == 5
    assert resumed_data.env_steps > data.env_steps
    assert float(resumed.reward.normalizer.count) > float(model.reward.normalizer.count)
    # One more soft update moved the restored target a little, not from a fresh copy of the critic.
    for k, v in resumed.agent.critic_target.state_dict().items():
        assert (v - target_before[k]).abs().max() < 0.05


def test_checkpoint_is_an_encoder_network_file(tmp_path, generator_file):
    model = PALM(**tiny_palm_kwargs())
    data = LatentManifoldDataModule(**tiny_data_kwargs(generator_file))
    fit = trainer(tmp_path, 2)
    fit.fit(model, data)
    fit.save_checkpoint(tmp_path / "palm.ckpt")
    encoder = load_network(tmp_path / "palm.ckpt", kind="encoder")
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    torch.testing.assert_close(encoder(images), model.encoder.eval()(images))


def test_nan_loss_stops_with_a_named_loss_after_saving(tmp_path, generator_file):
    class Exploding(PALM):
        def representation_loss(self, obs, next_obs, actions):
            loss, logs = super().representation_loss(obs, next_obs, actions)
            return loss * float("nan") if int(self.updates) == 2 else loss, logs

    model = Exploding(**tiny_palm_kwargs())
    data = LatentManifoldDataModule(**tiny_data_kwargs(generator_file))
    fit = trainer(tmp_path, 5, logger=L.pytorch.loggers.CSVLogger(tmp_path))
    with pytest.raises(FloatingPointError, match=r"update 2 .*ssl_loss = nan.*nan-update2.ckpt"):
        fit.fit(model, data)
    saved = list(tmp_path.rglob("nan-update2.ckpt"))
    assert saved, "the last finite state is saved before stopping"
    assert all(
        torch.isfinite(v).all()
        for v in torch.load(saved[0], weights_only=False)["state_dict"].values()
        if v.is_floating_point()
    )


def test_mismatched_latent_size_is_named(tmp_path, generator_file):
    model = PALM(**tiny_palm_kwargs(action_dim=64))
    data = LatentManifoldDataModule(**tiny_data_kwargs(generator_file))
    with pytest.raises(ValueError, match=r"action_dim is 64 but the environment's latent \(action\) size is 8"):
        trainer(tmp_path, 1).fit(model, data)
    model = PALM(**tiny_palm_kwargs(image_shape=(1, 32, 32)))
    with pytest.raises(ValueError, match=r"image_shape is \(1, 32, 32\).*\(1, 16, 16\)"):
        trainer(tmp_path, 1).fit(model, data)


def test_palm_refuses_a_static_image_datamodule(tmp_path, fmnist_root):
    model = PALM(**tiny_palm_kwargs())
    with pytest.raises(TypeError, match="experience stream"):
        trainer(tmp_path, 1).fit(
            model, FashionMNISTDataModule(data_dir=str(fmnist_root), resolution=16, resize_mode="resize")
        )


def test_online_knn_probe_and_trajectory_grid_are_logged(tmp_path, generator_file, fmnist_root):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    probe = FashionMNISTDataModule(data_dir=str(fmnist_root), resolution=16, resize_mode="resize")
    data = LatentManifoldDataModule(**tiny_data_kwargs(generator_file), probe_data=probe, probe_bank_size=150)
    model = PALM(**tiny_palm_kwargs(trajectory_every_n_updates=2, trajectory_envs=3, trajectory_steps=4))
    logger = L.pytorch.loggers.TensorBoardLogger(tmp_path, name="tb")
    trainer(
        tmp_path,
        4,
        logger=logger,
        val_check_interval=2,
        check_val_every_n_epoch=None,
        num_sanity_val_steps=-1,
        log_every_n_steps=1,
    ).fit(model, data)
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    probe_steps = [e.step for e in events.Scalars("probe/knn_acc")]
    assert probe_steps[0] == 0 and len(probe_steps) >= 2, "the probe runs before training and during it"
    assert all(0.0 <= e.value <= 1.0 for e in events.Scalars("probe/knn_acc"))
    for tag in ("train/ssl_loss", "train/critic_loss", "reward/intrinsic_mean", "knn/distance_mean", "charts/env_fps"):
        assert tag in events.Tags()["scalars"], tag
    image = events.Images("trajectories")[0]
    assert image.width == 5 * (16 + 1) + 1 and image.height == 3 * (16 + 1) + 1
    # every 2 updates, counted like every other module's logging: after updates 2 and 4
    assert [e.step for e in events.Images("trajectories")] == [2, 4]


def test_probe_images_must_match_the_generator(tmp_path, generator_file, fmnist_root):
    probe = FashionMNISTDataModule(data_dir=str(fmnist_root), resolution=32)
    data = LatentManifoldDataModule(**tiny_data_kwargs(generator_file), probe_data=probe)
    with pytest.raises(ValueError, match=r"probe images are \(1, 32, 32\).*\(1, 16, 16\)"):
        trainer(tmp_path, 1).fit(PALM(**tiny_palm_kwargs()), data)


def test_bf16_mixed_precision_runs(tmp_path, generator_file):
    model = PALM(**tiny_palm_kwargs())
    data = LatentManifoldDataModule(**tiny_data_kwargs(generator_file))
    trainer(tmp_path, 2, precision="bf16-mixed").fit(model, data)
    assert int(model.updates) == 2
    assert all(torch.isfinite(p).all() for p in model.parameters())


@pytest.mark.parametrize("reward_window", ["first", "sum"])
def test_window_features_reuse_the_views_and_match_encoding_every_frame(reward_window):
    torch.manual_seed(0)
    model = PALM(**tiny_palm_kwargs(reward_window=reward_window))
    images = torch.rand(5, 3, 1, 16, 16) * 2 - 1  # a window of n = 2 steps
    every_frame = model.encoder(images.flatten(0, 1)).view(5, 3, -1).detach()
    model.view_features = None
    model.checked_representation_loss(images, torch.zeros(5, model.hp.action_dim))
    assert model.view_features is not None and model.views_are_frames  # the default objective offers its features
    calls = []
    model.encoder.register_forward_hook(lambda module, args, out: calls.append(args[0].shape[0]))
    shared = model.window_features(images)
    if reward_window == "first":  # only o_t and o_{t+n} are read; o_{t+n} is the only new encoding
        assert shared.shape == (5, 2, 16) and calls == [5]
        assert torch.allclose(shared, every_frame[:, [0, 2]], atol=1e-6)
    else:  # every frame is read; o_t and o_{t+1} come from the views
        assert shared.shape == (5, 3, 16) and calls == [5]
        assert torch.allclose(shared, every_frame, atol=1e-6)


def test_an_untrained_explorer_view_feeds_the_actor_and_the_reward_and_never_trains(tmp_path, generator_file):
    L.seed_everything(0)
    model = PALM(**tiny_palm_kwargs(explorer_encoder="untrained"))
    assert model.explorer_view is not None
    initial = [p.detach().clone() for p in model.explorer_view.parameters()]
    assert all(torch.equal(a, b) for a, b in zip(initial, model.encoder.parameters(), strict=True))
    seen = []
    update = model.agent.update
    model.agent.update = lambda t, *a, **k: seen.append(t) or update(t, *a, **k)
    trainer(tmp_path, 4).fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator_file)))
    # the encoder trained, the explorer's view did not
    assert all(torch.equal(a, b) for a, b in zip(initial, model.explorer_view.parameters(), strict=True))
    assert not all(torch.equal(a, b) for a, b in zip(initial, model.encoder.parameters(), strict=True))
    assert len(seen) == 4 and seen[0].obs.shape[1] == model.encoder.out_dim
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    assert torch.allclose(model.explorer_features(images), model.explorer_view(images))
    assert not torch.allclose(model.explorer_features(images), model.encode(images))
    assert torch.equal(model.reward_features(model.explorer_view(images)), model.explorer_view(images))


def test_the_action_penalty_costs_each_window_action_with_its_discount():
    model = PALM(**tiny_palm_kwargs(action_penalty=0.5))
    actions = torch.tensor([[[1.0] * 8, [0.5] * 8, [0.0] * 8], [[0.0] * 8, [0.0] * 8, [-1.0] * 8]])
    discounts = torch.tensor([[1.0, 0.9, 0.81], [1.0, 0.9, 0.81]])
    cost = model.action_cost({"actions": actions, "step_discounts": discounts})
    assert torch.allclose(cost, torch.tensor([0.5 * (1.0 + 0.9 * 0.25), 0.5 * 0.81]))
    assert PALM(**tiny_palm_kwargs()).action_cost({"actions": actions, "step_discounts": discounts}) == 0.0
    with pytest.raises(ValueError, match="action_penalty must be >= 0"):
        PALM(**tiny_palm_kwargs(action_penalty=-1.0))
    with pytest.raises(ValueError, match="explorer_encoder must be 'trained' or 'untrained'"):
        PALM(**tiny_palm_kwargs(explorer_encoder="frozen"))


def test_sgd_representation_optimiser_decays_by_cosine_and_keeps_the_reward_on_adam(tmp_path, generator_file):
    from palm_lightning.rewards import ICM

    model = PALM(
        **tiny_palm_kwargs(
            reward=ICM(),
            repr_optimizer="sgd",
            repr_lr=0.03,
            repr_weight_decay=5e-4,
            repr_lr_schedule="cosine",
        )
    )
    reward_before = [p.detach().clone() for p in model.reward.parameters()]
    encoder_before = [p.detach().clone() for p in model.encoder.parameters()]
    fit = trainer(tmp_path, 4)
    fit.fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator_file)))
    representation, reward, *agent = (getattr(o, "optimizer", o) for o in fit.optimizers)
    assert isinstance(representation, torch.optim.SGD) and isinstance(reward, torch.optim.Adam)
    assert len(agent) == len(model.agent_optimizer_names) and int(model.updates) == 4
    assert fit.global_step == 4  # only the representation's step counts as an update
    # the rate of the last update (t = 3 of T = 4): 0.03 * (1 + cos(3π/4)) / 2
    assert representation.param_groups[0]["lr"] == pytest.approx(0.03 * 0.5 * (1 + math.cos(3 * math.pi / 4)))
    assert any(not torch.equal(a, b) for a, b in zip(encoder_before, model.encoder.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(reward_before, model.reward.parameters(), strict=True))


def test_cosine_representation_schedule_needs_max_steps(tmp_path, generator_file):
    model = PALM(**tiny_palm_kwargs(repr_optimizer="sgd", repr_lr_schedule="cosine"))
    fit = L.Trainer(max_epochs=1, accelerator="cpu", logger=False, enable_progress_bar=False, default_root_dir=tmp_path)
    with pytest.raises(ValueError, match=r"trainer\.max_steps"):
        fit.fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator_file)))
    with pytest.raises(ValueError, match="repr_optimizer"):
        PALM(**tiny_palm_kwargs(repr_optimizer="lamb"))


def test_palm_sac_explores_with_a_soft_actor_critic(tmp_path, generator_file):
    from palm_lightning.agents.sac import SACAgent, SACConfig
    from palm_lightning.models import PALMSAC

    model = PALMSAC(**tiny_palm_kwargs(), sac=SACConfig(hidden_dim=32, q_layers=1, tau=0.01, grad_clip=None))
    assert isinstance(model.agent, SACAgent)
    alpha_before = float(model.agent.log_alpha)
    critic_before = [p.detach().clone() for p in model.agent.critic.parameters()]
    fit = trainer(tmp_path, 4)
    fit.fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator_file)))
    assert int(model.updates) == 4 and fit.global_step == 4
    assert float(model.agent.log_alpha) != alpha_before
    assert any(not torch.equal(a, b) for a, b in zip(critic_before, model.agent.critic.parameters(), strict=True))
    actions = model.act(torch.zeros(64, 1, 16, 16, dtype=torch.uint8), 0)
    assert actions.shape == (64, 8) and actions.abs().max() <= 1 and actions.std(0).min() > 0.1  # stochastic
