"""EAR's meta-RL baselines: PEARL (context encoder, posterior sampling) and MAML-TRPO (functional
inner step, second-order meta-gradient, TRPO step), on a toy two-task problem and through the CLI."""

from __future__ import annotations

import dataclasses
import json
import math
import types
from pathlib import Path

import gymnasium
import numpy as np
import pytest
import torch

from palm_lightning.agents.maml_trpo import LinearFeatureBaseline, MAMLTRPOAgent, MAMLTRPOConfig
from palm_lightning.agents.pearl import PEARLConfig
from palm_lightning.datamodules.streams.replay import ReplayBuffer
from palm_lightning.losses.policy_gradient import conjugate_gradient, discounted_returns, gae_advantages
from palm_lightning.losses.sac import sac_critic_loss, sac_policy_loss
from palm_lightning.models import PEARL
from palm_lightning.models.meta_rl.maml_trpo import maml_adapt
from palm_lightning.nn.context_encoder import ContextEncoder, gaussian_kl_to_standard_normal, product_of_gaussians
from palm_lightning.nn.meta_policies import GaussianMLPPolicy
from palm_lightning.nn.sac import tanh_gaussian_sample
from palm_lightning.tools.maml_adapt import main as maml_adapt_main
from palm_lightning.tools.pearl_adapt import main as pearl_adapt_main
from palm_lightning.tools.pearl_adapt import pearl_adapt
from tests.cli_runner import run_cli

REPO = Path(__file__).resolve().parents[1]
HORIZON = 10


class LeftOrRight(gymnasium.Env):
    """A 1-D point that must move left (task 0) or right (task 1): reward ``direction · a`` per
    step, 10 steps. The observation is the elapsed time only, so nothing but the rewards tells
    the tasks apart: a policy that has not adapted earns the same on both, summing to 0."""

    def __init__(self, task: int = 0) -> None:
        self.direction = -1.0 if task == 0 else 1.0
        self.observation_space = gymnasium.spaces.Box(0.0, 1.0, (1,), dtype=np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (1,), dtype=np.float32)
        self.t = 0

    def _obs(self) -> np.ndarray:
        return np.array([self.t / HORIZON], dtype=np.float32)

    def reset(self, seed=None, options=None):
        super().reset(seed=seed)
        self.t = 0
        return self._obs(), {}

    def step(self, action):
        a = float(np.clip(action[0], -1.0, 1.0))
        self.t += 1
        return self._obs(), self.direction * a, False, self.t >= HORIZON, {}


def vector_env(task: int, n: int) -> gymnasium.vector.SyncVectorEnv:
    return gymnasium.vector.SyncVectorEnv([lambda: LeftOrRight(task)] * n)


# --- PEARL: the context encoder ----------------------------------------------------------------


def test_product_of_gaussians_matches_the_closed_form():
    m1, v1, m2, v2 = 1.0, 0.5, -2.0, 2.0
    mean, var = product_of_gaussians(torch.tensor([[m1], [m2]]), torch.tensor([[v1], [v2]]))
    assert var.item() == pytest.approx(v1 * v2 / (v1 + v2))
    assert mean.item() == pytest.approx((m1 * v2 + m2 * v1) / (v1 + v2))
    # against the normalised product of the densities on a grid
    x = torch.linspace(-10, 10, 200_001, dtype=torch.float64)
    density = torch.exp(-((x - m1) ** 2) / (2 * v1) - (x - m2) ** 2 / (2 * v2))
    density /= density.sum()
    grid_mean = (x * density).sum()
    assert mean.item() == pytest.approx(grid_mean.item(), abs=1e-5)
    assert var.item() == pytest.approx(((x - grid_mean) ** 2 * density).sum().item(), abs=1e-5)
    # batched over tasks and dimensions, order-invariant, and one factor is itself
    means, variances = torch.randn(3, 7, 4), torch.rand(3, 7, 4) + 0.1
    a = product_of_gaussians(means, variances)
    b = product_of_gaussians(means.flip(1), variances.flip(1))
    torch.testing.assert_close(a, b)
    torch.testing.assert_close(product_of_gaussians(means[:, :1], variances[:, :1]), (means[:, 0], variances[:, 0]))
    with pytest.raises(ValueError, match="same shape"):
        product_of_gaussians(means, variances[:, :2])


def test_kl_to_the_prior_and_the_empty_context():
    mean, var = torch.randn(5, 3), torch.rand(5, 3) + 0.1
    expected = torch.distributions.kl_divergence(
        torch.distributions.Normal(mean, var.sqrt()), torch.distributions.Normal(0.0, 1.0)
    ).sum(-1)
    torch.testing.assert_close(gaussian_kl_to_standard_normal(mean, var), expected)
    encoder = ContextEncoder(in_dim=4, latent_dim=3, hidden_dim=8, num_hidden=1)
    prior_mean, prior_var = encoder(torch.zeros(2, 0, 4))
    assert prior_mean.abs().sum() == 0 and (prior_var == 1).all()
    mean, var = encoder(torch.randn(2, 6, 4))
    assert mean.shape == var.shape == (2, 3) and (var > 0).all()
    with pytest.raises(ValueError, match="4 features"):
        encoder(torch.randn(2, 6, 5))


def test_critic_loss_trains_the_encoder_and_the_policy_loss_does_not():
    model = PEARL(
        obs_dim=3, action_dim=2, num_tasks=2, latent_dim=2, agent={"hidden_dim": 16, "q_layers": 1}, policy_layers=1
    )
    model.hp  # noqa: B018  (typed hyperparameters exist)
    assert model.hp.latent_dim == 2 and model.hp.kl_lambda == 0.1 and model.hp.agent.reward_scale == 5.0
    batch = toy_batch(model, per_task=4)
    transition, extra = model.agent_batch(batch)
    agent = model.agent
    q = agent.critic(agent.critic_input(transition.obs, transition.task), transition.action)
    sac_critic_loss(q, torch.zeros(q.shape[1])).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.encoder.parameters())
    model.zero_grad(set_to_none=True)
    transition, extra = model.agent_batch(batch)
    action, log_prob = tanh_gaussian_sample(*agent.policy(transition.obs, transition.task))
    q_pi = agent.critic(agent.policy_critic_input(transition.obs, transition.task), action, detached=True)
    sac_policy_loss(q_pi, log_prob, torch.tensor(1.0)).backward()
    assert all(p.grad is None for p in model.encoder.parameters())
    extra["kl_loss"].backward()
    assert any(p.grad is not None for p in model.encoder.parameters())


def test_replay_samples_only_the_recent_window():
    buffer = ReplayBuffer(200, 1, (1,), 1, obs_dtype=torch.float32)
    buffer.add(torch.zeros(1, 1), first=True)
    for t in range(1, 50):
        buffer.add(torch.full((1, 1), float(t)), torch.zeros(1, 1), torch.zeros(1))
    obs = buffer.sample(500, recent=6)["obs"]
    assert obs.min() >= 44 and obs.max() <= 48  # the last 6 rows hold 44…49; a start row needs a successor
    with pytest.raises(ValueError, match="recent must exceed nstep"):
        buffer.sample(4, recent=1)


def test_collection_draws_z_per_episode_from_the_prior_then_the_posterior():
    torch.manual_seed(0)
    model = PEARL(obs_dim=1, action_dim=1, num_tasks=2, latent_dim=2, agent={"hidden_dim": 8}, use_next_obs=False)
    context = torch.randn(2, 500, 3)  # many transitions: a sharp posterior

    class Data:
        def context_batch(self) -> torch.Tensor:
            return context

    model._trainer = types.SimpleNamespace(datamodule=Data())
    obs, task = torch.zeros(2, 1), torch.tensor([0, 1])
    mean = model.posterior(context)[0]
    model.act(obs, 0, task=task)  # first call: z from the prior for the running episodes
    model.act(obs, 1, task=task, episode_start=torch.tensor([True, False]))  # env 0: its 1st counted episode, prior
    prior_z = model._acting_z.clone()
    model.act(obs, 2, task=task, episode_start=torch.tensor([True, True]))  # env 0: posterior; env 1: prior
    assert torch.allclose(model._acting_z[0], mean[0], atol=0.1)
    assert not torch.allclose(model._acting_z[0], prior_z[0])
    model.act(obs, 3, task=task)  # mid-episode: z is kept
    assert torch.allclose(model._acting_z[0], mean[0], atol=0.1)
    deterministic = model.act(obs, 4, eval_mode=True, task=task)
    torch.testing.assert_close(deterministic, model.act_with_z(obs, mean[task], deterministic=True))
    with pytest.raises(ValueError, match="task slot"):
        model.act(obs, 5)


def test_wrong_data_names_the_datamodule_to_use(tmp_path):
    import lightning as L

    from palm_lightning.datamodules import MetaTaskDataModule, MultiTaskDataModule
    from palm_lightning.models import MAMLTRPO

    trainer = L.Trainer(max_steps=1, logger=False, enable_checkpointing=False, default_root_dir=tmp_path)
    data = MultiTaskDataModule(tasks=[0], batch_size_per_task=4, buffer_capacity_per_task=100, warmup_steps_per_task=4)
    with pytest.raises(TypeError, match="PEARLDataModule"):
        trainer.fit(PEARL(num_tasks=1, agent={"hidden_dim": 8}), data)
    with pytest.raises(TypeError, match="MetaTaskDataModule"):
        trainer.fit(MAMLTRPO(hidden_dim=8), data)
    with pytest.raises(ValueError, match="obs_dim is 3 but the halfcheetah_vel data has 17"):
        trainer.fit(MAMLTRPO(obs_dim=3, hidden_dim=8), MetaTaskDataModule(tasks=[0], episodes_per_task=1))


# --- PEARL: adapting on the toy problem ------------------------------------------------------------


def random_data(task: int, episodes: int, seed: int) -> dict[str, torch.Tensor]:
    rng = np.random.default_rng(seed)
    env = LeftOrRight(task)
    rows: dict[str, list] = {"obs": [], "action": [], "reward": [], "next_obs": []}
    for _ in range(episodes):
        obs, _ = env.reset()
        for _ in range(HORIZON):
            action = rng.uniform(-1, 1, 1).astype(np.float32)
            next_obs, reward, _, _, _ = env.step(action)
            for key, value in zip(rows, (obs, action, [reward], next_obs), strict=True):
                rows[key].append(np.asarray(value, dtype=np.float32))
            obs = next_obs
    return {k: torch.as_tensor(np.stack(v)) for k, v in rows.items()}


def toy_batch(model: PEARL, per_task: int, data=None, context: int = 16) -> dict[str, torch.Tensor]:
    """A batch as PEARLDataModule makes it: task-major RL rows and a context batch per task."""
    hp = model.hp
    if data is None:
        data = [
            {
                "obs": torch.randn(50, hp.obs_dim),
                "action": torch.rand(50, hp.action_dim) * 2 - 1,
                "reward": torch.randn(50, 1),
                "next_obs": torch.randn(50, hp.obs_dim),
            }
            for _ in range(hp.num_tasks)
        ]
    parts: dict[str, list[torch.Tensor]] = {k: [] for k in ("obs", "action", "reward", "next_obs", "context")}
    for d in data:
        rows = torch.randint(len(d["obs"]), (per_task,))
        for key in ("obs", "action", "reward", "next_obs"):
            parts[key].append(d[key][rows])
        c = torch.randint(len(d["obs"]), (context,))
        pieces = [d["obs"][c], d["action"][c], d["reward"][c]] + ([d["next_obs"][c]] if hp.use_next_obs else [])
        parts["context"].append(torch.cat(pieces, -1))
    batch = {k: torch.cat(v) for k, v in parts.items() if k != "context"}
    batch["reward"] = batch["reward"].squeeze(-1)
    batch["context"] = torch.stack(parts["context"])
    batch["discount"] = torch.full((len(batch["obs"]),), 0.9)
    batch["task"] = torch.arange(hp.num_tasks).repeat_interleave(per_task)
    batch["env_steps"] = torch.tensor(0)
    return batch


def test_pearl_adapts_to_either_direction_by_posterior_sampling():
    torch.manual_seed(0)
    model = PEARL(
        obs_dim=1,
        action_dim=1,
        num_tasks=2,
        latent_dim=2,
        policy_layers=2,
        encoder_hidden_dim=32,
        encoder_layers=2,
        agent=PEARLConfig(
            hidden_dim=32, q_layers=2, lr=1e-3, context_lr=1e-3, reward_scale=1.0, init_log_alpha=math.log(0.1)
        ),
        use_next_obs=False,
    )
    data = [random_data(task, episodes=30, seed=task) for task in (0, 1)]
    optimizers = model.configure_optimizers()
    for _ in range(600):
        model.update(toy_batch(model, 32, data), optimizers)
    curves = [pearl_adapt(model, LeftOrRight(task), explore_episodes=2, horizon=HORIZON)["curve"] for task in (0, 1)]
    prior = sum(c[0]["return"] for c in curves) / 2
    adapted = sum(c[-1]["return"] for c in curves) / 2
    assert prior == pytest.approx(0.0, abs=1e-4)  # z = 0 acts the same on both tasks
    assert adapted > 6.0, curves  # out of 10: each task's posterior mean moves the right way
    assert [r["env_steps"] for r in curves[0]] == [0, HORIZON, 2 * HORIZON]


def test_pearl_agent_settings_are_one_group_with_pearls_defaults():
    """PEARL's agent settings live in one ``agent`` group (:class:`PEARLConfig`: SAC's fields with
    PEARL's defaults, plus ``context_lr``); the policy is as wide as the critics."""
    model = PEARL(obs_dim=3, action_dim=2, num_tasks=2, latent_dim=2, agent={"hidden_dim": 12, "context_lr": 1e-3})
    assert model.hp.agent == PEARLConfig(hidden_dim=12, context_lr=1e-3)
    assert model.agent.config == model.hp.agent and model.agent.context_lr == 1e-3
    assert (model.hp.agent.q_layers, model.hp.agent.reward_scale, model.hp.agent.alpha_lr) == (3, 5.0, 0.0)
    assert model.hp.agent.grad_clip is None and model.critic.hidden_dim == 12
    assert {m.out_features for m in model.policy.modules() if isinstance(m, torch.nn.Linear)} >= {12}
    encoder_group = [g for g in model.agent.optimizer_groups()["actor_critic"] if g["name"] == "context_encoder"]
    assert encoder_group[0]["lr"] == 1e-3
    with pytest.raises(ValueError, match=r"agent: unknown setting\(s\) \['contex_lr'\]"):
        PEARL(agent={"contex_lr": 1e-3})


def test_pearl_checkpoint_keeps_the_agent_settings_and_old_flat_ones_load(tmp_path):
    """A fitted PEARL with non-default agent settings: its checkpoint holds them as a plain dict
    (``weights_only=True`` loads it), both loaders rebuild the same config and weights, and a
    checkpoint saved while they were flat module arguments loads the same."""
    import lightning as L

    from palm_lightning.datamodules import PEARLDataModule

    config = PEARLConfig(hidden_dim=12, q_layers=1, lr=1e-3, context_lr=5e-4, reward_scale=2.0, tau=0.01, grad_clip=5.0)
    model = PEARL(num_tasks=2, latent_dim=2, encoder_hidden_dim=8, encoder_layers=1, policy_layers=1, agent=config)
    data = PEARLDataModule(
        tasks=[0, 1],
        batch_size_per_task=4,
        context_batch_size=4,
        context_window=40,
        buffer_capacity_per_task=200,
        warmup_steps_per_task=20,
    )
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=2,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, data)
    assert int(model.updates) == 2
    path = tmp_path / "pearl.ckpt"
    trainer.save_checkpoint(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["hyper_parameters"]["agent"] == dataclasses.asdict(config)
    for loaded in (PEARL.load_from_checkpoint(path, weights_only=True), PEARL.from_checkpoint(path)):
        assert loaded.hp.agent == config and loaded.agent.config == config
        torch.testing.assert_close(loaded.state_dict(), model.state_dict())
    # as saved before the group: every SAC setting and context_lr a flat module argument
    raw["hyper_parameters"] |= raw["hyper_parameters"].pop("agent")
    assert {"hidden_dim", "context_lr", "reward_scale"} <= set(raw["hyper_parameters"])
    torch.save(raw, tmp_path / "flat.ckpt")
    for loaded in (PEARL.load_from_checkpoint(tmp_path / "flat.ckpt"), PEARL.from_checkpoint(tmp_path / "flat.ckpt")):
        assert loaded.hp.agent == config
        torch.testing.assert_close(loaded.state_dict(), model.state_dict())


def printed_agent_group(config: str, group: type, tmp_path) -> str:
    """``--print_config`` of ``configs/ear/<config>.yaml``, checked to show every field of the
    ``agent`` group ``group``; returns the printed config."""
    result = run_cli(
        "fit", "--config", str(REPO / "configs" / "ear" / f"{config}.yaml"), "--print_config", cwd=tmp_path, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    printed = result.stdout
    assert "    agent:\n" in printed, printed
    for field in dataclasses.fields(group):
        assert f"\n      {field.name}: " in printed, printed
    return printed


def test_pearl_config_prints_the_agent_group(tmp_path):
    printed = printed_agent_group("halfcheetah_vel_pearl", PEARLConfig, tmp_path)
    assert "\n      hidden_dim: 256\n" in printed and "\n      context_lr: 0.0003\n" in printed


# --- MAML-TRPO ---------------------------------------------------------------------------------


def test_returns_gae_and_linear_baseline():
    reward = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    mask = torch.tensor([[1.0, 1.0], [1.0, 1.0], [1.0, 0.0]])
    returns = discounted_returns(reward, mask, 0.5)
    torch.testing.assert_close(returns[:, 0], torch.tensor([1.75, 1.5, 1.0]))
    torch.testing.assert_close(returns[:, 1], torch.tensor([1.5, 1.0, 0.0]))
    # λ = 1: GAE is the reward-to-go minus the baseline
    values = torch.randn(3, 2)
    torch.testing.assert_close(gae_advantages(reward, values, mask, 0.5, 1.0), (returns - values) * mask)
    # the baseline fits a function of the features exactly
    obs = torch.randn(20, 4, 3)
    target = 2 * obs[..., 0] - obs[..., 1].pow(2) + torch.arange(20.0).view(20, 1) / 100
    baseline = LinearFeatureBaseline()
    baseline.fit(obs, target, torch.ones(20, 4))
    torch.testing.assert_close(baseline.predict(obs), target, atol=1e-3, rtol=0)


def test_conjugate_gradient_solves_a_positive_definite_system():
    a = torch.randn(6, 6, dtype=torch.float64)
    a = a @ a.T + torch.eye(6, dtype=torch.float64)
    b = torch.randn(6, dtype=torch.float64)
    torch.testing.assert_close(conjugate_gradient(lambda v: a @ v, b, iters=30), torch.linalg.solve(a, b))


def toy_agent(first_order: bool = False, **kwargs) -> MAMLTRPOAgent:
    torch.manual_seed(0)
    policy = GaussianMLPPolicy(1, 1, hidden_dim=16, num_hidden=2, init_std=0.5)
    return MAMLTRPOAgent(policy, MAMLTRPOConfig(first_order=first_order, max_path_length=HORIZON, **kwargs))


def test_inner_step_changes_the_policy_and_the_meta_gradient_flows_through_it():
    agent = toy_agent(inner_lr=0.5)
    batches = [agent.collect(vector_env(task, 8), seed=task) for task in (0, 1)]
    params = agent.params()
    adapted = agent.inner_step(params, *batches[0].inner[0], create_graph=True)
    assert any(not torch.equal(adapted[k], params[k]) for k in params)
    assert adapted["mean.0.weight"].grad_fn is not None  # a function of θ, not a copy
    second = agent.meta_gradient(batches)
    assert second.abs().sum() > 0 and torch.isfinite(second).all()
    agent.config = dataclasses.replace(agent.config, first_order=True)
    first = agent.meta_gradient(batches)
    assert first.abs().sum() > 0
    assert not torch.allclose(first, second, rtol=1e-3, atol=1e-6)  # the Hessian term matters


@pytest.mark.parametrize("first_order", [False, True])
def test_trpo_step_improves_the_surrogate_within_the_kl_radius(first_order):
    agent = toy_agent(first_order=first_order, inner_lr=0.5, max_kl=0.002)
    batches = [agent.collect(vector_env(task, 8), seed=10 + task) for task in (0, 1)]
    before = {k: v.detach().clone() for k, v in agent.params().items()}
    logs = agent.meta_update(batches)
    assert logs["train/line_search_steps"] >= 1
    with torch.no_grad():
        loss, kl = agent.meta_objective(agent.params(), batches, create_graph=False)
    assert float(kl) <= 0.002 * (1 + 1e-5)
    assert float(loss) < logs["train/surrogate_loss"]
    assert any(not torch.equal(v, before[k]) for k, v in agent.params().items())


def test_maml_adapts_to_either_direction_by_a_gradient_step():
    agent = toy_agent(inner_lr=0.5, max_kl=0.05)
    envs = {task: vector_env(task, 20) for task in (0, 1)}
    for iteration in range(8):
        agent.meta_update([agent.collect(envs[task], seed=100 * iteration + task) for task in (0, 1)])
    curves = [maml_adapt(agent, envs[task], steps=1, seed=7_000 + task) for task in (0, 1)]
    pre = sum(c[0]["return"] for c in curves) / 2
    post = sum(c[-1]["return"] for c in curves) / 2
    assert post > pre + 1.0, curves
    assert [r["env_steps"] for r in curves[0]] == [0, 20 * HORIZON]
    # the policy mean, evaluated on separate episodes at every point, adapts too
    greedy = [
        maml_adapt(agent, envs[task], steps=1, seed=7_000 + task, eval_env=vector_env(task, 4)) for task in (0, 1)
    ]
    assert all(
        "eval_return" in r and r["env_steps"] == c["env_steps"]
        for g, p in zip(greedy, curves, strict=True)
        for r, c in zip(g, p, strict=True)
    )
    assert sum(g[-1]["eval_return"] - g[0]["eval_return"] for g in greedy) > 0, greedy


def test_maml_settings_are_one_group_checked_once():
    """The agent's settings live in MAMLTRPOConfig only: the module takes the group (or a dict of
    it, as a checkpoint or a YAML block gives it) and hands the same object to its agent."""
    from palm_lightning.models import MAMLTRPO

    with pytest.raises(ValueError, match="inner_steps"):
        MAMLTRPOConfig(inner_steps=0)
    with pytest.raises(ValueError, match="backtrack_ratio"):
        MAMLTRPOConfig(backtrack_ratio=1.0)
    model = MAMLTRPO(obs_dim=5, action_dim=2, hidden_dim=8, agent={"max_kl": 0.02, "first_order": True})
    assert model.hp.agent == MAMLTRPOConfig(max_kl=0.02, first_order=True)
    assert model.agent.config is model.hp.agent
    assert model.hparams["agent"] == dataclasses.asdict(model.hp.agent)  # a plain dict in checkpoints
    assert MAMLTRPO(hidden_dim=8).hp.agent == MAMLTRPOConfig()
    with pytest.raises(ValueError, match=r"agent: unknown setting\(s\) \['max_kll'\]"):
        MAMLTRPO(hidden_dim=8, agent={"max_kll": 0.02})


def test_maml_checkpoint_keeps_the_agent_settings(tmp_path):
    """A fitted MAML-TRPO with non-default agent settings: its checkpoint holds them as a plain
    dict (``weights_only=True`` loads it) and both loaders rebuild the same config."""
    import lightning as L

    from palm_lightning.datamodules import MetaTaskDataModule
    from palm_lightning.models import MAMLTRPO

    config = MAMLTRPOConfig(inner_lr=0.05, first_order=True, max_kl=0.02, cg_iters=3, max_path_length=5)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=1,
        limit_val_batches=0,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    )
    trainer.fit(
        MAMLTRPO(hidden_dim=8, agent=config), MetaTaskDataModule(tasks=[0], meta_batch_size=1, episodes_per_task=1)
    )
    path = tmp_path / "maml.ckpt"
    trainer.save_checkpoint(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["hyper_parameters"]["agent"] == dataclasses.asdict(config)
    for model in (MAMLTRPO.load_from_checkpoint(path, weights_only=True), MAMLTRPO.from_checkpoint(path)):
        assert model.hp.agent == config and model.agent.config == config
        assert model.hp.hidden_dim == 8
    # a checkpoint saved while the agent's settings were flat module arguments still loads
    raw["hyper_parameters"] |= raw["hyper_parameters"].pop("agent")
    torch.save(raw, tmp_path / "flat.ckpt")
    assert MAMLTRPO.load_from_checkpoint(tmp_path / "flat.ckpt").hp.agent == config


def test_maml_config_prints_the_agent_group(tmp_path):
    printed = printed_agent_group("halfcheetah_vel_maml", MAMLTRPOConfig, tmp_path)
    assert f"\n      max_path_length: {MAMLTRPOConfig().max_path_length}\n" in printed


# --- the CLI -------------------------------------------------------------------------------------

TINY = {
    "halfcheetah_vel_pearl": [
        "--data.init_args.warmup_steps_per_task=210",
        "--data.init_args.batch_size_per_task=8",
        "--data.init_args.context_batch_size=8",
        "--data.init_args.buffer_capacity_per_task=1000",
        "--model.init_args.agent.hidden_dim=16",
        "--model.init_args.encoder_hidden_dim=16",
        "--model.init_args.log_every_n_updates=1",
        "--data.init_args.eval_episodes_per_task=1",
    ],
    "halfcheetah_vel_maml": [
        "--data.init_args.episodes_per_task=2",
        "--data.init_args.meta_batch_size=2",
        "--model.init_args.agent.max_path_length=10",
        "--model.init_args.hidden_dim=8",
    ],
}


@pytest.mark.parametrize(
    "config, kind",
    [
        ("halfcheetah_vel_pearl", "halfcheetah_vel_pearl"),
        ("halfcheetah_vel_pearl_paper", "halfcheetah_vel_pearl"),
        ("halfcheetah_vel_maml", "halfcheetah_vel_maml"),
        ("halfcheetah_vel_maml_paper", "halfcheetah_vel_maml"),
    ],
)
def test_meta_rl_configs_run_a_few_steps_and_adapt_from_the_checkpoint(tmp_path, config, kind):
    tiny = list(TINY[kind])
    if config == "halfcheetah_vel_pearl_paper":
        tiny += ["--data.init_args.tasks=[0, 5]", "--model.init_args.num_tasks=2"]
    if config == "halfcheetah_vel_maml_paper":
        tiny += ["--data.init_args.tasks=[0, 5]"]
    result = run_cli(
        "fit",
        "--config",
        str(REPO / "configs" / "ear" / f"{config}.yaml"),
        "--trainer.max_steps=2",
        "--trainer.val_check_interval=2",
        "--trainer.enable_progress_bar=false",
        f"--trainer.logger.init_args.save_dir={tmp_path}",
        f"--trainer.default_root_dir={tmp_path}",
        *tiny,
        cwd=tmp_path,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    checkpoints = list(tmp_path.rglob("last.ckpt"))
    assert len(checkpoints) == 1, list(tmp_path.rglob("*"))
    if kind == "halfcheetah_vel_maml":  # the nested agent setting of the command line is in the checkpoint
        saved = torch.load(checkpoints[0], map_location="cpu", weights_only=True)["hyper_parameters"]["agent"]
        assert saved["max_path_length"] == 10 and saved["max_kl"] == MAMLTRPOConfig().max_kl
    out = tmp_path / "adapt"
    if kind == "halfcheetah_vel_maml":
        adapt, name, extra = maml_adapt_main, "maml_adapt.json", ["--steps", "1", "--episodes", "2"]
    else:
        adapt, name, extra = pearl_adapt_main, "pearl_adapt.json", ["--explore-episodes", "1"]
    assert adapt(["--ckpt", str(checkpoints[0]), "--task", "1", "--out", str(out), *extra]) == 0
    assert (out / name).is_file()
    torch.rand(1000)  # another global RNG state: the curve depends on --seed alone
    assert adapt(["--ckpt", str(checkpoints[0]), "--task", "1", "--out", str(tmp_path / "again"), *extra]) == 0
    first, again = (json.loads((d / name).read_text())["curve"] for d in (out, tmp_path / "again"))
    assert first == again
    assert adapt(["--ckpt", str(tmp_path / "missing.ckpt"), "--out", str(out)]) == 2
