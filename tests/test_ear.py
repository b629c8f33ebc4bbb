"""EAR and its multi-task SAC machinery: batched task environments, balanced batches, SAC
pieces, policies, the LightningModules (fit, checkpoint, resume) and the CLI configs."""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path

import lightning as L
import pytest
import torch

from palm_lightning.agents.sac import SACConfig
from palm_lightning.datamodules import MultiTaskDataModule
from palm_lightning.datamodules.streams.replay import ReplayBuffer
from palm_lightning.envs.multitask import MultiTaskVectorEnv, run_episodes
from palm_lightning.losses.sac import sac_critic_loss, soft_td_target
from palm_lightning.models import EAR, MHMTSAC, OHESAC, MultiTaskSAC
from palm_lightning.models.ear.multitask_sac import TASK_INFO_KEY
from palm_lightning.nn.blocks import polyak_update
from palm_lightning.nn.multitask_policies import EARPolicy, MultiHeadPolicy
from palm_lightning.nn.sac import TwinQ, tanh_gaussian_sample
from tests.cli_runner import run_cli
from tests.palm_fixtures import trainer as quiet_trainer

REPO = Path(__file__).resolve().parents[1]
TINY_MODEL = dict(
    obs_dim=17, action_dim=6, num_tasks=2, agent=SACConfig(hidden_dim=32, q_layers=2), log_every_n_updates=5
)


def tiny_data(**kwargs) -> MultiTaskDataModule:
    args = dict(
        family="halfcheetah_vel",
        tasks=[0, 4],
        batch_size_per_task=16,
        buffer_capacity_per_task=2000,
        warmup_steps_per_task=40,
        eval_episodes_per_task=1,
    )
    args.update(kwargs)
    return MultiTaskDataModule(**args)


def tiny_trainer(tmp_path: Path, max_steps: int, **kwargs) -> L.Trainer:
    return quiet_trainer(
        tmp_path,
        max_steps,
        **{
            "val_check_interval": max_steps,
            "check_val_every_n_epoch": None,
            "num_sanity_val_steps": 0,
            "logger": L.pytorch.loggers.TensorBoardLogger(tmp_path, name="ear"),
            "enable_checkpointing": True,
            **kwargs,
        },
    )


# --- environments and data -------------------------------------------------------------------


def test_vector_env_runs_each_task_and_truncates_at_200_steps():
    env = MultiTaskVectorEnv("halfcheetah_vel", [0, 4, 4], seed=3)
    obs, _ = env.reset()
    assert obs.shape == (3, 17) and obs.dtype == torch.float32
    assert env.task_ids.tolist() == [0, 4, 4]
    summaries = run_episodes(env, lambda o: torch.zeros(3, 6))
    assert [s["length"] for s in summaries] == [200, 200, 200]
    # standing still: velocity error ≈ the target (1 and 5 m/s), return ≈ −200·target
    assert summaries[0]["velocity_error"] == pytest.approx(1.0, abs=0.1)
    assert summaries[1]["return"] == pytest.approx(-1000, rel=0.05)
    with pytest.raises(ValueError, match=r"action must have shape \(3, 6\)"):
        env.step(torch.zeros(2, 6))
    with pytest.raises(ValueError, match="unknown task family 'cheetah'"):
        MultiTaskVectorEnv("cheetah", [0])


def test_vector_env_summarises_each_task_with_its_own_measures():
    """Run-Jump mixes tasks whose info differ: running has a velocity error, jumping has not (the
    first CPU Run-Jump run died on a KeyError when a jump env followed a run env)."""
    env = MultiTaskVectorEnv("halfcheetah_run_jump", [1, 8], seed=0)
    env.reset()
    run, jump = run_episodes(env, lambda o: torch.zeros(2, 6))
    assert run["velocity_error"] == pytest.approx(2.0, abs=0.1)  # standing still, target 2 m/s
    assert "velocity_error" not in jump and "z_height" in jump and "x_velocity" in jump


def test_vector_env_state_dict_resumes_the_same_trajectory():
    a = MultiTaskVectorEnv("hopper_vel", [0, 1], seed=0)
    a.reset()
    actions = [torch.rand(2, 3) * 2 - 1 for _ in range(10)]
    for act in actions[:5]:
        a.step(act)
    state = a.state_dict()
    b = MultiTaskVectorEnv("hopper_vel", [0, 1], seed=99)
    b.load_state_dict(state)
    for act in actions[5:]:
        obs_a, rew_a, *_ = a.step(act)
        obs_b, rew_b, *_ = b.step(act)
    torch.testing.assert_close(obs_a, obs_b)
    torch.testing.assert_close(rew_a, rew_b)
    with pytest.raises(ValueError, match="saved environments run tasks"):
        MultiTaskVectorEnv("hopper_vel", [2, 3]).load_state_dict(state)


def test_replay_buffer_samples_the_requested_environments():
    buffer = ReplayBuffer(200, 4, (2,), 1, obs_dtype=torch.float32)
    buffer.add(torch.zeros(4, 2), first=True)
    for _ in range(1, 20):
        obs = torch.arange(4).float()[:, None].repeat(1, 2)  # obs identifies the environment
        buffer.add(obs, torch.zeros(4, 1), torch.ones(4), torch.zeros(4, dtype=torch.bool))
    env_ids = torch.tensor([3] * 5 + [1] * 5)
    batch = buffer.sample(10, 1, env_ids=env_ids)
    assert batch["env"].tolist() == env_ids.tolist()
    assert batch["next_obs"][:, 0].tolist() == [3.0] * 5 + [1.0] * 5


def test_batches_are_balanced_and_tasks_match_environments():
    dm = tiny_data(envs_per_task=2)
    dm.setup("fit")
    dm.warm_up()
    batch = dm.sample_batch()
    assert batch["obs"].shape == (32, 17) and batch["obs"].dtype == torch.float32
    assert torch.bincount(batch["task"]).tolist() == [16, 16]
    assert (batch["env"] // 2 == batch["task"]).all()  # task-major layout: env e runs slot e // E
    assert dm.env.tasks == [0, 0, 4, 4]
    assert batch["task_return"].shape == (2,)


def test_datamodule_rejects_unknown_tasks_and_families():
    with pytest.raises(ValueError, match=r"halfcheetah_vel has train tasks 0…9; got tasks \[3, 12\]"):
        MultiTaskDataModule("halfcheetah_vel", tasks=[3, 12])
    with pytest.raises(ValueError, match="unknown task family 'antdir'"):
        MultiTaskDataModule("antdir")


# --- SAC pieces --------------------------------------------------------------------------------


def test_tanh_gaussian_log_prob_matches_torch_distributions():
    torch.manual_seed(0)
    mean, log_std = torch.randn(64, 3), torch.randn(64, 3).clamp(-2, 1)
    generator = torch.Generator().manual_seed(1)
    action, log_prob = tanh_gaussian_sample(mean, log_std, generator)
    base = torch.distributions.Normal(mean, log_std.exp())
    dist = torch.distributions.TransformedDistribution(base, [torch.distributions.TanhTransform(cache_size=1)])
    expected = dist.log_prob(action.clamp(-1 + 1e-6, 1 - 1e-6)).sum(-1)
    ok = action.abs().max(-1).values < 0.999  # atanh is ill-conditioned near ±1
    torch.testing.assert_close(log_prob[ok], expected[ok], atol=2e-3, rtol=1e-3)


def test_detached_critic_passes_gradient_to_the_action_only():
    critic = TwinQ(5, 2, hidden_dim=16, num_hidden=2)
    action = torch.randn(8, 2, requires_grad=True)
    q = critic(torch.randn(8, 5), action, detached=True)
    assert q.shape == (2, 8)
    q.sum().backward()
    assert action.grad is not None and action.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())


def test_twin_q_members_are_independent_functions():
    critic = TwinQ(5, 2, hidden_dim=16, num_hidden=2)
    x, a = torch.randn(8, 5), torch.randn(8, 2)
    q = critic(x, a)
    assert not torch.allclose(q[0], q[1])
    loss = sac_critic_loss(q, torch.zeros(8))
    torch.testing.assert_close(loss, q[0].pow(2).mean() + q[1].pow(2).mean())


def test_soft_td_target_and_polyak():
    next_q = torch.tensor([[1.0, 4.0], [2.0, 3.0]])
    target = soft_td_target(
        torch.tensor([1.0, 1.0]), torch.tensor([0.5, 0.0]), next_q, torch.tensor([2.0, 2.0]), torch.tensor(0.5)
    )
    torch.testing.assert_close(target, torch.tensor([1.0 + 0.5 * (1.0 - 1.0), 1.0]))
    target_params, online = [torch.zeros(3)], [torch.ones(3)]
    polyak_update(target_params, online, 0.25)
    torch.testing.assert_close(target_params[0], torch.full((3,), 0.25))


def test_ear_policy_embeddings_on_the_sphere_with_training_noise_only():
    torch.manual_seed(0)
    policy = EARPolicy(17, 6, num_tasks=3, hidden_dim=32, lte_noise=0.1)
    ltes = policy.task_embeddings()
    torch.testing.assert_close(ltes.norm(dim=1), torch.ones(3))
    task = torch.tensor([0, 1, 2])
    policy.train()
    noisy = policy.task_embedding(task)
    torch.testing.assert_close(noisy.norm(dim=1), torch.ones(3))
    assert not torch.allclose(noisy, ltes)
    policy.eval()
    torch.testing.assert_close(policy.task_embedding(task), ltes)
    obs = torch.randn(3, 17)
    torch.testing.assert_close(policy(obs, task)[0], policy.decode(obs, ltes)[0])
    raw = EARPolicy(17, 6, num_tasks=3, hidden_dim=32, normalize=False, lte_noise=0.0)
    assert not torch.allclose(raw.task_embeddings().norm(dim=1), torch.ones(3))
    with pytest.raises(ValueError, match="lte_noise must be ≥ 0"):
        EARPolicy(17, 6, 3, lte_noise=-1)


def test_multi_head_policy_reads_each_sample_from_its_own_head():
    policy = MultiHeadPolicy(5, 2, num_tasks=3, hidden_dim=8, trunk_layers=1)
    obs, task = torch.randn(6, 5), torch.tensor([0, 1, 2, 2, 1, 0])
    mean, _ = policy(obs, task)
    heads = policy.heads(policy.trunk(obs)).view(6, 3, 4)
    for i, t in enumerate(task.tolist()):
        torch.testing.assert_close(mean[i], heads[i, t, :2])


def test_sac_update_fits_a_fixed_batch():
    """A learning signal, not just motion: repeated updates on one batch drive the TD error down."""
    torch.manual_seed(0)
    model = OHESAC(**{**TINY_MODEL, "agent": SACConfig(hidden_dim=64, q_layers=2)})
    optimizer = model.configure_optimizers()
    batch = {
        "obs": torch.randn(64, 17),
        "next_obs": torch.randn(64, 17),
        "action": torch.rand(64, 6) * 2 - 1,
        "reward": torch.randn(64),
        "discount": torch.full((64,), 0.9),
        "task": torch.randint(2, (64,)),
        "env_steps": torch.tensor(0),
    }
    first, _ = model.update(batch, optimizer)
    for _ in range(150):
        last, _ = model.update(batch, optimizer)
    assert float(last["critic_loss"].detach()) < 0.3 * float(first["critic_loss"].detach())
    assert int(model.updates) == 151


def test_temperature_moves_towards_the_target_entropy():
    """α falls while the policy's entropy is above the target and rises while it is below."""
    from palm_lightning.agents import SACAgent, Transition
    from palm_lightning.nn.multitask_policies import OneHotPolicy

    batch = Transition(
        torch.randn(64, 5),
        torch.rand(64, 2) * 2 - 1,
        torch.zeros(64),
        torch.full((64,), 0.9),
        torch.randn(64, 5),
        task=torch.zeros(64, dtype=torch.long),
    )
    for target, direction in ((-10.0, -1), (10.0, 1)):  # far below / above any 2-d tanh-Gaussian entropy
        torch.manual_seed(0)
        agent = SACAgent(
            OneHotPolicy(5, 2, 1, hidden_dim=16, num_hidden=1),
            5,
            2,
            1,
            SACConfig(hidden_dim=16, q_layers=1, target_entropy=target),
        )
        optimizers = {k: torch.optim.Adam(g) for k, g in agent.optimizer_groups().items()}
        for _ in range(20):
            logs = agent.update(batch, 0, optimizers)
        assert direction * float(agent.log_alpha.detach()) > 0.004, target
        assert float(logs["train/alpha"]) == pytest.approx(float(agent.log_alpha.exp()))


def test_alpha_first_uses_the_updated_temperature():
    import palm_lightning.agents.sac as sac_module
    from palm_lightning.agents import SACAgent, Transition
    from palm_lightning.nn.multitask_policies import OneHotPolicy

    batch = Transition(torch.randn(8, 5), torch.rand(8, 2) * 2 - 1, torch.zeros(8), torch.zeros(8), torch.randn(8, 5))
    seen = {}
    for alpha_first in (True, False):
        torch.manual_seed(0)
        agent = SACAgent(
            OneHotPolicy(5, 2, 1, hidden_dim=8, num_hidden=1),
            5,
            2,
            1,
            SACConfig(hidden_dim=8, q_layers=1, alpha_first=alpha_first, alpha_lr=0.5),
        )
        optimizers = {k: torch.optim.SGD(g) for k, g in agent.optimizer_groups().items()}
        used: list[float] = []

        real_loss = sac_module.sac_policy_loss
        sac_module.sac_policy_loss = lambda q, lp, alpha, used=used, real_loss=real_loss: (
            used.append(float(alpha)),
            real_loss(q, lp, alpha),
        )[1]
        try:
            agent.update(batch, 0, optimizers)
        finally:
            sac_module.sac_policy_loss = real_loss
        seen[alpha_first] = (used[0], float(agent.log_alpha.detach().exp()))
    assert seen[True][0] == pytest.approx(seen[True][1])  # the policy loss saw the new α
    assert seen[False][0] == pytest.approx(1.0) and seen[False][1] != pytest.approx(1.0)  # ... the old one


def test_per_member_clipping_equals_clipping_separate_networks():
    torch.manual_seed(0)
    critic = TwinQ(5, 2, hidden_dim=8, num_hidden=2)
    q = critic(torch.randn(16, 5), torch.randn(16, 2))
    (100 * q[0].pow(2).mean() + 0.001 * q[1].mean()).backward()  # member 0 large, member 1 tiny gradients
    h = critic.hidden_dim
    member_grads = [
        [
            critic.first.weight.grad[m * h : (m + 1) * h].clone(),
            critic.first.bias.grad[m * h : (m + 1) * h].clone(),
            *[p.grad.clone() for p in critic.rest[m].parameters()],
        ]
        for m in range(2)
    ]
    norms = critic.clip_grad_norm_per_member(1.0)
    for m in range(2):
        expected = torch.linalg.vector_norm(torch.stack([g.norm() for g in member_grads[m]]))
        torch.testing.assert_close(norms[m], expected)
        clipped = [
            critic.first.weight.grad[m * h : (m + 1) * h],
            critic.first.bias.grad[m * h : (m + 1) * h],
            *[p.grad for p in critic.rest[m].parameters()],
        ]
        scale = min(1.0, 1.0 / (float(expected) + 1e-6))
        for before, after in zip(member_grads[m], clipped, strict=True):
            torch.testing.assert_close(after, before * scale)
    assert norms[0] > 1.0 > norms[1]  # only member 0 was scaled


def test_ear_policy_clips_its_three_networks_separately():
    policy = EARPolicy(5, 2, num_tasks=2, hidden_dim=8)
    groups = policy.clip_groups()
    assert len(groups) == 3
    assert sum(len(g) for g in groups) == len(list(policy.parameters()))


# --- LightningModules ----------------------------------------------------------------------------


def test_base_class_cannot_be_trained_directly():
    with pytest.raises(TypeError, match="MultiTaskSAC is a base class"):
        MultiTaskSAC(**TINY_MODEL)


@pytest.mark.parametrize("cls", [EAR, OHESAC, MHMTSAC])
def test_fit_evaluates_checkpoints_and_resumes(tmp_path, cls):
    model = cls(**TINY_MODEL, embedding_every_n_updates=10)
    dm = tiny_data()
    trainer = tiny_trainer(tmp_path, 20)
    trainer.fit(model, dm)
    assert int(model.updates) == 20
    assert dm.env_steps == 80 + 2 * 21  # warm-up, then one step per task per batch (one batch is prefetched)
    metrics = trainer.callback_metrics
    assert {"eval/return_mean", "eval/velocity_error_mean", "eval_return/v=1.0", "eval_return/v=5.0"} <= set(metrics)
    ckpt = Path(trainer.checkpoint_callback.best_model_path or trainer.checkpoint_callback.last_model_path)
    saved = torch.load(ckpt, weights_only=True)  # no pickled objects: the agent group is a plain dict
    assert saved[TASK_INFO_KEY]["family"] == "halfcheetah_vel" and saved[TASK_INFO_KEY]["tasks"] == [0, 4]
    events = list((Path(trainer.log_dir)).glob("events.out.tfevents.*"))
    assert events, "no TensorBoard events written"
    if cls is EAR:
        assert (Path(trainer.log_dir) / "projector_config.pbtxt").is_file()
    # resume: counters, target critics and α continue from the checkpoint
    state = saved["state_dict"]
    saved_alpha = float(state["agent.log_alpha"])
    saved_target = {
        k.removeprefix("agent.critic_target."): v for k, v in state.items() if k.startswith("agent.critic_target.")
    }
    resumed = cls(**TINY_MODEL)
    fresh_target = {k: v.clone() for k, v in resumed.critic_target.state_dict().items()}
    resumed_dm = tiny_data()
    trainer2 = tiny_trainer(tmp_path, 25)
    trainer2.fit(resumed, resumed_dm, ckpt_path=ckpt)
    assert int(resumed.updates) == 25
    assert resumed_dm.env_steps > saved["MultiTaskDataModule"]["env_steps"] >= 80  # the stream's counter continued
    # five more Adam steps of lr 3e-4 move log α by at most ~1.5e-3, from the saved value, not from 0
    assert saved_alpha != 0.0 and abs(float(resumed.log_alpha) - saved_alpha) < 2e-3 < abs(saved_alpha)
    # five Polyak steps (τ = 0.005) keep the target next to the saved one, far from a fresh critic
    for key, value in resumed.critic_target.state_dict().items():
        moved = (value - saved_target[key]).abs().max()
        fresh = (fresh_target[key] - saved_target[key]).abs().max()
        assert moved < 0.1 * fresh or fresh == 0, key


def test_wrong_sizes_are_named_with_the_fix(tmp_path):
    model = EAR(**{**TINY_MODEL, "obs_dim": 11})
    with pytest.raises(
        ValueError,
        match=re.escape("model.obs_dim is 11 but the halfcheetah_vel data has 17: set --model.init_args.obs_dim 17"),
    ):
        tiny_trainer(tmp_path, 2).fit(model, tiny_data())
    model = EAR(**{**TINY_MODEL, "num_tasks": 3})
    with pytest.raises(ValueError, match=re.escape("model.num_tasks is 3")):
        tiny_trainer(tmp_path, 2).fit(model, tiny_data())


def test_nan_loss_stops_with_a_checkpoint(tmp_path):
    model = EAR(**TINY_MODEL)
    with torch.no_grad():
        model.critic.first.weight.fill_(float("nan"))
    trainer = tiny_trainer(tmp_path, 5)
    with pytest.raises(FloatingPointError, match="non-finite loss at update 0"):
        trainer.fit(model, tiny_data())
    assert list(Path(trainer.log_dir).glob("checkpoints/nan-update0.ckpt"))


def test_agent_settings_are_one_group_that_sizes_the_policy_too():
    """SAC's settings are the ``agent`` group (a dict from a config or a checkpoint works too); the
    policy is ``agent.hidden_dim`` wide, as the critics."""
    for cls in (EAR, OHESAC, MHMTSAC):
        model = cls(**{**TINY_MODEL, "agent": {"hidden_dim": 24, "q_layers": 1, "init_log_alpha": -1.0}})
        assert model.hp.agent == SACConfig(hidden_dim=24, q_layers=1, init_log_alpha=-1.0)
        assert model.agent.config == model.hp.agent and model.hparams["agent"] == dataclasses.asdict(model.hp.agent)
        assert model.critic.hidden_dim == 24 and float(model.log_alpha) == -1.0
        widths = {m.out_features for m in model.policy.modules() if isinstance(m, torch.nn.Linear)}
        assert 24 in widths and 32 not in widths, (cls, widths)
    with pytest.raises(ValueError, match=r"agent: unknown setting\(s\) \['hidden'\]; SACConfig has"):
        EAR(**{**TINY_MODEL, "agent": {"hidden": 24}})


@pytest.mark.parametrize("cls", [EAR, MHMTSAC])
def test_a_checkpoint_saved_with_flat_agent_settings_still_loads(tmp_path, cls):
    """A fitted module with non-default agent settings: its checkpoint holds them as a plain dict
    (``weights_only=True`` loads it) and rebuilds the same config; a checkpoint saved while they
    were flat module arguments (``hidden_dim``, ``lr``, ...) loads with the same config and weights."""
    config = SACConfig(
        hidden_dim=24,
        q_layers=1,
        lr=1e-3,
        alpha_lr=1e-3,
        init_log_alpha=-2.0,
        target_entropy=-3.0,
        tau=0.01,
        reward_scale=2.0,
        grad_clip=5.0,
        grad_clip_per="group",
        alpha_first=False,
    )
    model = cls(**{**TINY_MODEL, "agent": config})
    trainer = tiny_trainer(tmp_path, 2, limit_val_batches=0)
    trainer.fit(model, tiny_data())
    assert int(model.updates) == 2
    path = tmp_path / "model.ckpt"
    trainer.save_checkpoint(path)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["hyper_parameters"]["agent"] == dataclasses.asdict(config)
    loaded = cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)
    assert loaded.hp.agent == config and loaded.agent.config == config
    torch.testing.assert_close(loaded.state_dict(), model.state_dict())
    # as saved before the group: the eleven SAC settings were flat arguments of the module
    raw["hyper_parameters"] |= raw["hyper_parameters"].pop("agent")
    assert set(cls.legacy_settings) <= set(raw["hyper_parameters"])
    torch.save(raw, tmp_path / "flat.ckpt")
    loaders = [cls.load_from_checkpoint]
    if cls is EAR:
        loaders.append(EAR.from_checkpoint)  # the tools' loader (interpolation, CEM)
    for load in loaders:
        old = load(tmp_path / "flat.ckpt", map_location="cpu")
        assert old.hp.agent == config
        torch.testing.assert_close(old.state_dict(), model.state_dict())


# --- command line ----------------------------------------------------------------------------------


META_RL = ("_pearl", "_maml")  # configs/ear/*_pearl*.yaml, *_maml*.yaml: their own data, tested in test_meta_rl.py
EAR_CONFIGS = [p for p in (REPO / "configs/ear").glob("*.yaml") if not any(k in p.stem for k in META_RL)]


@pytest.mark.parametrize("config", sorted(str(p.relative_to(REPO)) for p in EAR_CONFIGS))
def test_ear_configs_parse_and_match_their_family(config):
    result = run_cli("fit", "--config", str(REPO / config), "--print_config", cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "palm_lightning.datamodules.streams.MultiTaskDataModule" in result.stdout
    # the model sizes of each config fit its family (checked without training)
    import yaml

    cfg = yaml.safe_load(result.stdout)
    data = cfg["data"]["init_args"]
    dm = MultiTaskDataModule(**{k: v for k, v in data.items() if k in ("family", "tasks", "split")})
    from palm_lightning.envs.families import make_task_env

    env = make_task_env(dm.family, 0)
    model = cfg["model"]["init_args"]
    assert (model["obs_dim"], model["action_dim"], model["num_tasks"]) == (
        env.observation_space.shape[0],
        env.action_space.shape[0],
        dm.num_tasks,
    )
