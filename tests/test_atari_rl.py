"""DrQ(ε) and Atari fine-tuning: the augmentation, the double-DQN target, n-step returns from the
stream, a frozen encoder (its head-only update, the replay buffer's feature cache, a short fit),
the frame-stack widening, learning a toy image chain, the agent's settings as one group (validated,
through a checkpoint), and the shipped config training 2 updates on real Pong through the command line."""

from __future__ import annotations

import copy
import csv
import dataclasses
import importlib.util

import gymnasium
import lightning as L
import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from palm_lightning.agents.base import Transition
from palm_lightning.agents.drq_epsilon import (
    DrQEpsilonAgent,
    DrQEpsilonConfig,
    linearly_decaying_epsilon,
    random_shift,
)
from palm_lightning.datamodules.atari.game import human_normalized_score
from palm_lightning.datamodules.streams.experience import ExperienceDataModule
from palm_lightning.datamodules.streams.replay import ReplayBuffer
from palm_lightning.models.atari.finetune import AtariFinetune, expand_input_channels
from palm_lightning.nn.encoders import DrQEncoder
from palm_lightning.nn.feature_standardizer import FeatureStandardizer
from tests.cli_runner import REPO, run_cli


class ImageChain:
    """N copies of a 4-position chain seen as 1×16×16 images (position p lights rows 4p…4p+3):
    action 1 moves right, 0 stays, 2 stays; reward 1 on reaching/staying at the end; 5 steps."""

    def __init__(self, num_envs: int, terminate_at_end: bool = False) -> None:
        self.num_envs, self.obs_shape = num_envs, (1, 16, 16)
        self.action_space = gymnasium.spaces.Discrete(3)
        self.terminate_at_end = terminate_at_end
        self.position = torch.zeros(num_envs, dtype=torch.long)
        self.elapsed = torch.zeros(num_envs, dtype=torch.long)

    def obs(self) -> Tensor:
        rows = torch.arange(16)[None, :] // 4 == self.position[:, None]  # (N, 16)
        return (rows[:, None, :, None].expand(-1, 1, 16, 16) * 255).to(torch.uint8)

    def reset(self, mask: Tensor | None = None, seed: int | None = None) -> tuple[Tensor, dict]:
        mask = torch.ones(self.num_envs, dtype=torch.bool) if mask is None else mask
        self.position[mask], self.elapsed[mask] = 0, 0
        return self.obs(), {}

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        self.position = torch.where(action == 1, (self.position + 1).clamp(max=3), self.position)
        self.elapsed += 1
        reward = (self.position == 3).float()
        terminated = (self.position == 3) if self.terminate_at_end else torch.zeros(self.num_envs, dtype=torch.bool)
        return self.obs(), reward, terminated, (self.elapsed >= 5) & ~terminated, {}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


class ImageChainData(ExperienceDataModule):
    def __init__(self, terminate_at_end: bool = False, **kwargs) -> None:
        super().__init__(**kwargs)
        self.terminate_at_end = terminate_at_end

    def make_env(self, num_envs: int, seed: int, device: torch.device) -> ImageChain:
        return ImageChain(num_envs, self.terminate_at_end)


def small_encoder(channels: int = 1) -> DrQEncoder:
    return DrQEncoder((channels, 16, 16), channels=8, num_layers=2, repr_dim=32)


class Fixed(nn.Module):
    def __init__(self, q: list[list[float]]) -> None:
        super().__init__()
        self.q = torch.tensor(q)

    def forward(self, obs: Tensor) -> Tensor:
        return self.q.expand(obs.shape[0], -1)


def test_random_shift_keeps_shape_and_moves_images_by_at_most_pad_pixels():
    torch.manual_seed(0)
    images = torch.arange(2 * 3 * 10 * 10, dtype=torch.float32).view(2, 3, 10, 10)
    shifted = random_shift(images, pad=2)
    assert shifted.shape == images.shape and shifted.dtype == images.dtype
    assert torch.equal(random_shift(images, pad=0), images)
    padded = F.pad(images, (2, 2, 2, 2), mode="replicate")
    for b in range(2):  # every output is one crop of the edge-padded image, the same for all channels
        crops = [
            (i, j) for i in range(5) for j in range(5) if torch.equal(shifted[b], padded[b, :, i : i + 10, j : j + 10])
        ]
        assert len(crops) == 1
    draws = {tuple(random_shift(images[:1], pad=2)[0, 0, 0, :2].tolist()) for _ in range(50)}
    assert len(draws) > 3  # the offset is random


def test_epsilon_follows_dopamines_linear_decay_after_the_warmup():
    assert linearly_decaying_epsilon(0, 1600, 5000, 0.01) == 1.0
    assert linearly_decaying_epsilon(1600, 1600, 5000, 0.01) == 1.0
    assert linearly_decaying_epsilon(1600 + 2500, 1600, 5000, 0.01) == pytest.approx(0.505)
    assert linearly_decaying_epsilon(10**6, 1600, 5000, 0.01) == pytest.approx(0.01)
    agent = DrQEpsilonAgent(small_encoder(), 3, freeze_encoder=False)
    assert agent.epsilon(10**6, eval_mode=True) == 0.001


def test_double_dqn_target_values_the_online_argmax_with_the_target_network():
    batch = Transition(
        torch.zeros(2, 1, 16, 16), torch.zeros(2), torch.tensor([1.0, 0.5]), torch.tensor([0.9, 0.0]), torch.zeros(2)
    )
    next_obs = torch.zeros(2, 1, 16, 16)
    for double, value in ((True, 2.0), (False, 10.0)):
        config = DrQEpsilonConfig(double_dqn=double, target_update_period=2)
        agent = DrQEpsilonAgent(small_encoder(), 3, config, freeze_encoder=False)
        agent.q, agent.q_target = Fixed([[1.0, 5.0, 0.0]]), Fixed([[10.0, 2.0, 7.0]])  # type: ignore[assignment]
        target = agent.td_target(batch, next_obs)
        assert torch.allclose(target, torch.tensor([1.0 + 0.9 * value, 0.5]))  # discount 0: no bootstrap


def test_with_a_target_copied_every_update_one_online_forward_gives_the_same_target():
    torch.manual_seed(0)
    obs = torch.rand(4, 1, 16, 16) * 2 - 1
    batch = Transition(obs, torch.zeros(4), torch.rand(4), torch.full((4,), 0.9), obs)
    agent = DrQEpsilonAgent(small_encoder(), 3, freeze_encoder=False)  # DrQ(ε): target period 1, double DQN
    two_networks = copy.deepcopy(agent)
    # the general path: target network + online argmax
    two_networks.config = dataclasses.replace(agent.config, target_update_period=2)
    calls = []
    agent.q_target.register_forward_hook(lambda *args: calls.append(1))
    assert torch.equal(agent.td_target(batch, obs), two_networks.td_target(batch, obs))
    assert not calls  # the target network (the same weights) was not evaluated


def test_the_stream_hands_the_agent_n_step_returns_and_terminal_discounts():
    torch.manual_seed(0)
    dm = ImageChainData(num_envs=2, batch_size=256, buffer_capacity=400, nstep=3, discount=0.9, seed_frames=0)
    dm.setup("fit")
    dm.attach_policy(lambda obs, step, eval_mode=False, task=None: torch.ones(obs.shape[0], dtype=torch.long))
    dm.collect(100)  # the policy always moves right: rewards 0, 0, 1, 1, 1 then a truncation
    batch = dm.sample_batch()
    assert batch["obs"].dtype == torch.uint8 and batch["obs"].shape[1:] == (1, 16, 16)
    returns = {round(r, 4) for r in batch["reward"].tolist()}
    assert returns <= {0.81, 0.9 + 0.81, 1 + 0.9 + 0.81}  # Σ γ^k r_k over the 3-step window
    assert 1 + 0.9 + 0.81 in returns
    assert torch.allclose(batch["discount"], torch.full_like(batch["discount"], 0.9**3))  # truncation bootstraps
    dm = ImageChainData(True, num_envs=2, batch_size=256, buffer_capacity=400, nstep=3, discount=0.9, seed_frames=0)
    dm.setup("fit")
    dm.attach_policy(lambda obs, step, eval_mode=False, task=None: torch.ones(obs.shape[0], dtype=torch.long))
    dm.collect(100)  # now reaching the end terminates: that window's discount is 0
    batch = dm.sample_batch()
    terminal = batch["discount"] == 0
    assert terminal.any() and torch.allclose(batch["reward"][terminal], torch.tensor(0.81))


def test_a_frozen_encoder_gets_no_gradient_and_stays_out_of_the_optimiser():
    torch.manual_seed(0)
    agent = DrQEpsilonAgent(small_encoder(), 3, DrQEpsilonConfig(lr=1e-2), freeze_encoder=True)
    encoder_before = copy.deepcopy(agent.q.encoder.state_dict())
    head_before = copy.deepcopy(agent.q.head.state_dict())
    (group,) = agent.optimizer_groups()["q"]
    assert {id(p) for p in group["params"]} == {id(p) for p in agent.q.head.parameters()}
    assert group["eps"] == 1.5e-4
    optimizer = torch.optim.Adam([group])
    obs = torch.randint(0, 256, (8, 1, 16, 16), dtype=torch.uint8)
    batch = Transition(obs, torch.randint(3, (8,)), torch.ones(8), torch.full((8,), 0.99), obs.flip(0))
    logs = agent.update(batch, 0, {"q": optimizer})
    assert torch.isfinite(logs["train/q_loss"])
    assert all(p.grad is None for p in agent.q.encoder.parameters())
    assert all(torch.equal(v, encoder_before[k]) for k, v in agent.q.encoder.state_dict().items())
    assert any(not torch.equal(v, head_before[k]) for k, v in agent.q.head.state_dict().items())
    # target period 1: after the update the target is the online network
    assert all(torch.equal(v, agent.q_target.state_dict()[k]) for k, v in agent.q.state_dict().items())


class GradRecorder:
    """An optimiser stand-in: ``step`` keeps a copy of every parameter's gradient, changes nothing."""

    def __init__(self, params: list[nn.Parameter]) -> None:
        self.params, self.grads = params, []

    def zero_grad(self, set_to_none: bool = True) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        self.grads = [p.grad.clone() for p in self.params]


def reference_frozen_update(agent: DrQEpsilonAgent, batch: Transition, obs: Tensor, next_obs: Tensor):
    """The frozen update as it was before the head-only path: whole Q-network forwards on images
    (the encoder under no_grad inside QNetwork.forward), the online network valuing the target
    (target period 1). Returns the loss and the head's gradients."""
    head = list(agent.q.head.parameters())
    for p in head:
        p.grad = None
    with torch.no_grad():
        next_q = agent.q(next_obs)
        target = batch.reward + batch.discount * next_q.gather(1, next_q.argmax(1, keepdim=True)).squeeze(1)
    q = agent.q(obs).gather(1, batch.action.long().view(-1, 1)).squeeze(1)
    loss = F.smooth_l1_loss(q, target)
    loss.backward()
    grads = [p.grad.clone() for p in head]
    for p in head:
        p.grad = None
    return loss.detach(), grads


@pytest.mark.parametrize("augmentation", [False, True])
def test_the_head_only_frozen_update_matches_whole_network_forwards_on_the_same_batch(augmentation):
    torch.manual_seed(0)
    agent = DrQEpsilonAgent(
        small_encoder(4), 3, DrQEpsilonConfig(frozen_augmentation=augmentation), freeze_encoder=True
    )
    obs = torch.randint(0, 256, (8, 4, 16, 16), dtype=torch.uint8)
    batch = Transition(obs, torch.randint(3, (8,)), torch.rand(8), torch.full((8,), 0.9), obs.roll(1, 0))
    torch.manual_seed(1)  # the update's augmentation draws: obs first, then next_obs, as the reference
    images = (agent.augment(batch.obs), agent.augment(batch.next_obs)) if augmentation else None
    if images is None:
        images = (agent.preprocess(batch.obs), agent.preprocess(batch.next_obs))
    loss, grads = reference_frozen_update(agent, batch, *images)
    recorder = GradRecorder(list(agent.q.head.parameters()))
    torch.manual_seed(1)
    logs = agent.update(batch, 0, {"q": recorder})
    assert torch.allclose(logs["train/q_loss"], loss, atol=1e-6)
    assert all(torch.allclose(g, r, atol=1e-6) for g, r in zip(recorder.grads, grads, strict=True))
    if not augmentation:  # the cached features (encode's) give the same update
        cached = (agent.encode(batch.obs), agent.encode(batch.next_obs))
        logs = agent.update(batch, 0, {"q": recorder}, features=cached)
        assert torch.allclose(logs["train/q_loss"], loss, atol=1e-6)
        assert all(torch.allclose(g, r, atol=1e-6) for g, r in zip(recorder.grads, grads, strict=True))
    else:
        with pytest.raises(ValueError, match="unaugmented"):
            agent.update(batch, 0, {"q": recorder}, features=(agent.encode(obs), agent.encode(obs)))
    fine_tuned = DrQEpsilonAgent(small_encoder(4), 3, freeze_encoder=False)
    with pytest.raises(ValueError, match="fine-tuned"):
        fine_tuned.update(batch, 0, {"q": recorder}, features=(agent.encode(obs), agent.encode(obs)))


@pytest.mark.parametrize("target_update_period", [1, 3])
def test_a_frozen_encoder_never_changes_over_cached_updates_and_stays_in_eval_mode(target_update_period):
    torch.manual_seed(0)
    config = DrQEpsilonConfig(lr=1e-2, target_update_period=target_update_period)
    agent = DrQEpsilonAgent(small_encoder(), 3, config, freeze_encoder=True)
    agent.train()
    assert not agent.q.encoder.training and agent.q.head.training
    encoder_before = copy.deepcopy(agent.q.encoder.state_dict())
    head_before = copy.deepcopy(agent.q.head.state_dict())
    buffer = ReplayBuffer(64, 1, (1, 16, 16), (), action_dtype=torch.long)
    buffer.cache_features(agent.encode, agent.q.out_dim)
    buffer.add(torch.randint(0, 256, (1, 1, 16, 16), dtype=torch.uint8), first=True)
    optimizer = torch.optim.Adam(agent.optimizer_groups()["q"])
    for t in range(40):
        frame = torch.randint(0, 256, (1, 1, 16, 16), dtype=torch.uint8)
        buffer.add(frame, torch.tensor([t % 3]), torch.tensor([1.0]), torch.tensor([False]))
        if t >= 5:
            b = buffer.sample(8, nstep=3)
            batch = Transition(b["obs"], b["action"], b["reward"], b["discount"], b["next_obs"])
            agent.update(batch, 0, {"q": optimizer}, features=(b["obs_features"], b["next_obs_features"]))
    assert all(p.grad is None for p in agent.q.encoder.parameters())
    assert all(torch.equal(v, encoder_before[k]) for k, v in agent.q.encoder.state_dict().items())
    assert any(not torch.equal(v, head_before[k]) for k, v in agent.q.head.state_dict().items())
    # the target holds the frozen encoder, and the online head if the last update synced it (35 updates)
    online = agent.q.state_dict()
    target = agent.q_target.state_dict()
    assert all(torch.equal(v, target[k]) for k, v in online.items() if k.startswith("encoder."))
    synced = int(agent.updates) % target_update_period == 0
    assert synced == all(torch.equal(v, target[k]) for k, v in online.items() if k.startswith("head."))


def test_the_replay_buffers_feature_cache_encodes_each_frame_once_and_drops_overwritten_slots():
    calls: list[int] = []

    def encode(obs: Tensor) -> Tensor:  # a pure function of the frames, counted
        calls.append(obs.shape[0])
        flat = obs.flatten(1).float()
        return torch.stack([flat.mean(1), flat[:, 0], flat[:, -1]], 1)

    buffer = ReplayBuffer(20, 2, (1, 4, 4), (), action_dtype=torch.long)  # 10 rows per environment
    buffer.cache_features(encode, 3)
    assert buffer.nbytes() > buffer.obs.numel() + 20 * 3 * 4

    def frames(n: int) -> Tensor:
        return torch.randint(0, 256, (n, 1, 4, 4), dtype=torch.uint8)

    buffer.add(frames(2), first=True)
    for _ in range(9):
        buffer.add(frames(2), torch.zeros(2, dtype=torch.long), torch.zeros(2))
    batch = buffer.sample(6, nstep=2)  # 12 frames: each slot drawn encoded once, all in one call
    assert len(calls) == 1 and calls[0] == int(buffer.cached.sum()) <= 12
    assert torch.equal(batch["obs_features"], encode(batch["obs"]))
    assert torch.equal(batch["next_obs_features"], encode(batch["next_obs"]))
    calls.clear()
    misses = 20 - int(buffer.cached.sum())
    assert misses > 0
    buffer.features_at(torch.arange(10).repeat(2), torch.arange(2).repeat_interleave(10))
    assert bool(buffer.cached.all()) and calls == [misses]  # only the slots not cached yet
    calls.clear()
    for _ in range(3):
        buffer.sample(64, nstep=2)
    assert calls == []  # all hits: nothing encoded again
    overwritten = buffer.ptr.clone()
    new = frames(2)
    buffer.add(new, torch.zeros(2, dtype=torch.long), torch.zeros(2))  # overwrites the oldest row of each env
    assert not buffer.cached[overwritten, torch.arange(2)].any()
    assert int(buffer.cached.sum()) == 18
    features = buffer.features_at(overwritten, torch.arange(2))
    assert calls == [2] and torch.equal(features, encode(new))
    buffer.load_state_dict(buffer.state_dict())  # other frames may come in: nothing cached holds
    assert not buffer.cached.any()
    buffer.cache_features(None)
    assert "obs_features" not in buffer.sample(4, nstep=2)


class ImageChainGame(ImageChainData):
    """The image chain with what AtariFinetune reads from an AtariGameDataModule."""

    game = "Pong"

    def pop_episode_returns(self) -> list[float]:
        return []


def tiny_frozen_fit(tmp_path, **agent_options: object) -> tuple[ImageChainGame, AtariFinetune, L.Trainer]:
    """A frozen scratch-sized AtariFinetune (built) on the image chain, and a 6-update CPU trainer;
    ``agent_options``: settings of its agent (:class:`DrQEpsilonConfig`)."""
    torch.manual_seed(0)
    dm = ImageChainGame(num_envs=2, batch_size=8, buffer_capacity=200, nstep=2, discount=0.9, seed_frames=20)
    module = AtariFinetune(
        freeze_encoder=True,
        scratch_channels=4,
        scratch_layers=2,
        scratch_repr_dim=8,
        agent=DrQEpsilonConfig(hidden_dim=8, epsilon_warmup=0, **agent_options),
        eval_episodes=0,
    )
    trainer = L.Trainer(
        max_steps=6,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    module.build((1, 16, 16), 3)
    return dm, module, trainer


def test_a_frozen_encoder_fit_trains_the_head_on_cached_features(tmp_path):
    dm, module, trainer = tiny_frozen_fit(tmp_path)
    assert module.agent is not None
    encoder_before = copy.deepcopy(module.agent.q.encoder.state_dict())
    head_before = copy.deepcopy(module.agent.q.head.state_dict())

    def uncached(*args: object) -> None:
        raise AssertionError("an update encoded its batch: the stream's cached features were not used")

    module.agent.frozen_features = uncached  # type: ignore[method-assign]
    trainer.fit(module, datamodule=dm)
    agent = module.agent
    assert int(agent.updates) == 6 and dm.buffer is not None and dm.buffer.cached is not None
    assert all(torch.equal(v, encoder_before[k]) for k, v in agent.q.encoder.state_dict().items())
    assert any(not torch.equal(v, head_before[k]) for k, v in agent.q.head.state_dict().items())
    cached = dm.buffer.cached.nonzero()
    assert cached.shape[0] > 0  # the updates drew their features from the cache
    rows, env = cached[:, 0], cached[:, 1]
    assert torch.allclose(dm.buffer.features[rows, env], agent.encode(dm.buffer.obs[rows, env]), atol=1e-6)


def test_the_feature_standardizer_passes_features_until_fitted_then_standardizes_them():
    standardizer = FeatureStandardizer(3)
    x = torch.randn(50, 3) * torch.tensor([0.01, 5.0, 1.0]) + torch.tensor([2.0, -1.0, 0.0])
    assert torch.equal(standardizer(x), x)  # not fitted: unchanged
    x[:, 2] = 0.7  # a dimension constant over the fit's frames maps to 0, not to inf
    standardizer.fit(x)
    y = standardizer(x)
    assert torch.allclose(y[:, :2].mean(0), torch.zeros(2), atol=1e-4)
    assert torch.allclose(y[:, :2].std(0), torch.ones(2), atol=1e-4)
    assert y[:, 2].abs().max() < 1e-3
    restored = FeatureStandardizer(3)
    restored.load_state_dict(standardizer.state_dict())  # a checkpoint keeps the statistics
    assert bool(restored.fitted) and torch.equal(restored(x), y)
    with pytest.raises(ValueError, match=r"\(N ≥ 2, 3\)"):
        standardizer.fit(torch.randn(5, 4))


def test_standardized_frozen_features_feed_the_online_and_target_heads_alike():
    torch.manual_seed(0)
    with pytest.raises(ValueError, match="needs freeze_encoder"):
        DrQEpsilonAgent(small_encoder(), 3, DrQEpsilonConfig(standardize_features=True), freeze_encoder=False)
    with pytest.raises(ValueError, match="needs freeze_encoder"):
        AtariFinetune(agent=DrQEpsilonConfig(standardize_features=True))
    config = DrQEpsilonConfig(standardize_features=True, lr=1e-2)
    agent = DrQEpsilonAgent(small_encoder(), 3, config, freeze_encoder=True)
    frames = torch.randint(0, 256, (40, 1, 16, 16), dtype=torch.uint8)
    features = agent.encode(frames)
    assert agent.needs_feature_standardizer_fit
    agent.fit_feature_standardizer(features)
    assert not agent.needs_feature_standardizer_fit
    standardized = (features - features.mean(0)) / features.std(0)
    assert torch.allclose(agent.q(agent.preprocess(frames)), agent.q.head(standardized), atol=1e-5)
    assert torch.allclose(agent.q_target(agent.preprocess(frames)), agent.q_target.head(standardized), atol=1e-5)
    batch = Transition(frames[:8], torch.randint(3, (8,)), torch.rand(8), torch.full((8,), 0.9), frames[8:16])
    optimizer = torch.optim.Adam(agent.optimizer_groups()["q"])
    agent.update(batch, 0, {"q": optimizer}, features=(features[:8], features[8:16]))  # cached: raw features
    assert torch.allclose(agent.q_target(agent.preprocess(frames)), agent.q(agent.preprocess(frames)), atol=1e-6)
    with pytest.raises(RuntimeError, match="does not standardize"):
        DrQEpsilonAgent(small_encoder(), 3, freeze_encoder=True).fit_feature_standardizer(features)


def test_a_standardized_frozen_fit_takes_the_statistics_of_the_replay_once_before_the_first_update(tmp_path):
    dm, module, trainer = tiny_frozen_fit(tmp_path, standardize_features=True)
    agent = module.agent
    assert agent is not None
    fits: list[tuple[Tensor, Tensor, int]] = []
    fit = agent.fit_feature_standardizer

    def recorded(features: Tensor) -> None:
        assert dm.buffer is not None
        filled = torch.arange(dm.buffer.size)[:, None] < dm.buffer.count[None, :]  # the slots written so far
        fits.append((features, agent.encode(dm.buffer.obs[filled]), int(agent.updates)))
        fit(features)

    agent.fit_feature_standardizer = recorded  # type: ignore[method-assign]
    trainer.fit(module, datamodule=dm)
    assert int(agent.updates) == 6 and len(fits) == 1  # once, however many updates follow
    features, expected, updates_before = fits[0]
    assert updates_before == 0 and features.shape[0] >= 20  # the seed frames, before any update
    assert torch.allclose(features.sort(0).values, expected.sort(0).values, atol=1e-6)  # every frame held
    assert agent.q.standardizer is not None
    assert torch.allclose(agent.q.standardizer.mean, expected.mean(0), atol=1e-6)


def test_the_agents_settings_are_one_validated_group_of_the_module():
    with pytest.raises(ValueError, match="loss must be 'huber' or 'mse'"):
        DrQEpsilonConfig(loss="l1")
    with pytest.raises(ValueError, match="target_update_period must be ≥ 1"):
        DrQEpsilonConfig(target_update_period=0)
    with pytest.raises(ValueError, match=r"ε must be in \[0, 1\]"):
        DrQEpsilonConfig(epsilon_eval=1.5)
    with pytest.raises(ValueError, match="loss must be"):  # a YAML block or a checkpoint's dict: the same checks
        AtariFinetune(agent={"loss": "l1"})
    with pytest.raises(ValueError, match=r"agent: unknown setting\(s\) \['epsilon'\]"):
        AtariFinetune(agent={"epsilon": 0.1})
    module = AtariFinetune(freeze_encoder=True, agent={"lr": 3e-4, "standardize_features": True})
    assert module.hp.agent == DrQEpsilonConfig(lr=3e-4, standardize_features=True)
    assert module.hparams["agent"] == dataclasses.asdict(module.hp.agent)  # a plain dict in the checkpoint
    agent = module.build((1, 16, 16), 3)
    assert agent.config is module.hp.agent and agent.freeze_encoder and agent.q.standardizer is not None
    assert agent.optimizer_groups()["q"][0]["lr"] == 3e-4


@pytest.mark.filterwarnings("ignore:Found keys that are not in the model state dict")  # built after loading
def test_a_checkpoint_keeps_the_agents_settings_and_loads_with_weights_only(tmp_path):
    settings = {"standardize_features": True, "epsilon_train": 0.05, "adam_eps": 1e-5, "grad_clip": 5.0}
    dm, module, trainer = tiny_frozen_fit(tmp_path, **settings)
    trainer.fit(module, datamodule=dm)
    path = tmp_path / "atari.ckpt"
    trainer.save_checkpoint(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    expected = DrQEpsilonConfig(hidden_dim=8, epsilon_warmup=0, **settings)
    assert raw["hyper_parameters"]["agent"] == dataclasses.asdict(expected)
    # the agent is built for the game's observations (setup), so its weights load after build
    loaded = AtariFinetune.load_from_checkpoint(path, map_location="cpu", weights_only=True, strict=False)
    assert loaded.hp.agent == expected and loaded.hp.freeze_encoder
    loaded.build((1, 16, 16), 3)
    loaded.load_state_dict(raw["state_dict"])  # strict: the settings rebuild the same networks
    # a checkpoint written while the agent's settings were flat arguments of the module
    flat = {k: v for k, v in raw["hyper_parameters"].items() if k != "agent"} | raw["hyper_parameters"]["agent"]
    torch.save({**raw, "hyper_parameters": flat}, tmp_path / "flat.ckpt")
    old = AtariFinetune.load_from_checkpoint(tmp_path / "flat.ckpt", map_location="cpu", strict=False)
    assert old.hp.agent == expected


def test_a_one_frame_encoder_is_widened_to_the_frame_stack():
    torch.manual_seed(0)
    encoder = small_encoder().eval()
    frame = torch.rand(3, 1, 16, 16) * 2 - 1
    before = encoder(frame)
    mean = expand_input_channels(copy.deepcopy(encoder), 4, "mean")
    assert mean.image_shape == (4, 16, 16) and mean.config["image_shape"] == (4, 16, 16)
    assert torch.allclose(mean(frame.repeat(1, 4, 1, 1)), before, atol=1e-5)  # identical frames: same features
    last = expand_input_channels(copy.deepcopy(encoder), 4, "last")
    stack = torch.cat([torch.rand(3, 3, 16, 16), frame], 1)  # the newest frame is the last channel
    assert torch.allclose(last(stack), before, atol=1e-5)


def test_drq_epsilon_learns_the_image_chain():
    torch.manual_seed(0)
    dm = ImageChainData(num_envs=4, batch_size=32, buffer_capacity=4000, nstep=3, discount=0.9, seed_frames=40)
    dm.setup("fit")
    config = DrQEpsilonConfig(lr=1e-3, epsilon_train=0.1, epsilon_warmup=40, epsilon_decay_period=200, shift_pad=1)
    agent = DrQEpsilonAgent(small_encoder(), 3, config, freeze_encoder=False)
    dm.attach_policy(agent.act)
    optimizer = torch.optim.Adam(agent.optimizer_groups()["q"])
    stream = iter(dm.train_dataloader())
    for _ in range(250):
        b = next(stream)
        agent.update(
            Transition(b["obs"], b["action"], b["reward"], b["discount"], b["next_obs"]),
            int(b["env_steps"]),
            {"q": optimizer},
        )
    chain = ImageChain(3)
    chain.position = torch.arange(3)
    greedy = agent.act(chain.obs(), 10**6, eval_mode=True)
    assert agent.q(agent.preprocess(chain.obs())).argmax(1).tolist() == [1, 1, 1]
    assert greedy.shape == (3,) and greedy.dtype == torch.long


def test_human_normalized_score_uses_the_published_random_and_human_scores():
    assert human_normalized_score("Pong", -20.7) == 0.0
    assert human_normalized_score("Pong", 14.6) == pytest.approx(1.0)
    assert human_normalized_score("ms_pacman", 6951.6) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="Atari-100k"):
        human_normalized_score("Tennis", 0.0)


@pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None or importlib.util.find_spec("cv2") is None,
    reason="needs ale-py and OpenCV (the atari extra)",
)
@pytest.mark.parametrize("freeze", ["false", "true"])
def test_the_shipped_config_trains_two_updates_on_pong_through_the_cli(tmp_path, freeze):
    result = run_cli(
        "fit",
        "--config",
        str(REPO / "configs/atari/finetune.yaml"),
        f"--model.init_args.freeze_encoder={freeze}",
        f"--model.init_args.agent.standardize_features={freeze}",  # the frozen run standardizes (a frozen-only option)
        "--trainer.max_steps=4",
        "--model.init_args.eval_every=2",
        "--trainer.logger=lightning.pytorch.loggers.CSVLogger",
        f"--trainer.logger.save_dir={tmp_path}",
        "--trainer.log_every_n_steps=1",
        "--trainer.enable_checkpointing=false",
        "--trainer.accelerator=cpu",
        "--model.init_args.scratch_channels=4",
        "--model.init_args.scratch_layers=1",
        "--model.init_args.scratch_repr_dim=16",
        "--model.init_args.agent.hidden_dim=16",
        "--model.init_args.eval_episodes=1",
        "--model.init_args.eval_max_steps=30",
        "--data.init_args.batch_size=4",
        "--data.init_args.buffer_capacity=200",
        "--data.init_args.seed_frames=40",
        "--data.init_args.nstep=3",
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (metrics,) = tmp_path.glob("*/version_0/metrics.csv")
    rows = list(csv.DictReader(metrics.read_text().splitlines()))
    assert {"train/q_loss", "train/env_steps", "eval/episode_return", "eval/human_normalized_score"} <= set(rows[0])
    evaluated = [int(row["step"]) for row in rows if row["eval/episode_return"]]
    assert len(evaluated) == 2 and evaluated == sorted(evaluated)  # after updates 2 and 4, each written once


@pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None or importlib.util.find_spec("cv2") is None,
    reason="needs ale-py and OpenCV (the atari extra)",
)
def test_a_cpu_protocol_run_resumes_with_its_replay(tmp_path):
    """The CPU protocol's last.ckpt holds the replay buffer, so a run stopped by a session resumes with
    every transition it had (not refilled by the current policy alone)."""
    import torch

    every_two = tmp_path / "every_two.yaml"
    every_two.write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "      init_args: {every_n_train_steps: 2, save_top_k: 0, save_last: true}\n"
    )
    common = [
        *(
            "--config",
            str(REPO / "configs/atari/finetune.yaml"),
            "--config",
            str(REPO / "configs/atari/cpu_protocol.yaml"),
        ),
        *("--config", str(every_two), f"--trainer.logger.init_args.save_dir={tmp_path}", "--trainer.accelerator=cpu"),
        "--trainer.logger.init_args.version=0",
        *("--model.init_args.scratch_channels=4", "--model.init_args.scratch_layers=1"),
        *("--model.init_args.scratch_repr_dim=16", "--model.init_args.agent.hidden_dim=16"),
        *("--model.init_args.eval_episodes=1", "--model.init_args.eval_max_steps=30"),
        *("--data.init_args.batch_size=4", "--data.init_args.buffer_capacity=200", "--data.init_args.seed_frames=40"),
        "--data.init_args.nstep=3",
    ]
    first = run_cli("fit", *common, "--trainer.max_steps=4", cwd=tmp_path, timeout=120)
    assert first.returncode == 0, first.stderr[-3000:]
    (last,) = tmp_path.glob("*/version_0/checkpoints/last.ckpt")
    before = torch.load(last, weights_only=False)["AtariGameDataModule"]
    assert int(before["buffer"]["count"].sum()) >= 44  # the seed frames and one step per update
    resumed = run_cli("fit", *common, "--trainer.max_steps=6", f"--ckpt_path={last}", cwd=tmp_path, timeout=120)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = torch.load(last, weights_only=False)
    assert after["global_step"] == 6
    kept, buffer = int(before["buffer"]["count"].sum()), after["AtariGameDataModule"]["buffer"]
    assert int(buffer["count"].sum()) > kept  # two more agent steps (and a new game's first frame)
    assert torch.equal(buffer["obs"][:kept], before["buffer"]["obs"][:kept])  # every earlier frame is still there


@pytest.mark.skipif(
    importlib.util.find_spec("ale_py") is None or importlib.util.find_spec("cv2") is None,
    reason="needs ale-py and OpenCV (the atari extra)",
)
def test_a_lost_life_ends_the_learning_episode_but_not_the_game():
    from palm_lightning.datamodules.atari.game import AtariGames

    games = AtariGames("Breakout", 1, seed=0, noop_max=0)
    try:
        obs, _ = games.reset()
        assert obs.shape == (1, 4, 84, 84) and obs.dtype == torch.uint8
        lives = games.envs[0].unwrapped.ale.lives()
        for _ in range(2000):
            obs, reward, terminated, truncated, _ = games.step(torch.randint(4, (1,)))
            assert -1 <= float(reward) <= 1
            if terminated.any():
                break
        assert terminated.all() and not truncated.any()
        assert games.envs[0].unwrapped.ale.lives() == lives - 1 and games.finished_scores == []
        fresh, _ = games.reset(mask=terminated)
        assert torch.equal(fresh, obs)  # no emulator reset: the same game goes on
    finally:
        games.close()
