"""The experience stream: seed frames then the attached policy, reset rows, the replay ratio, and
action spaces (a Discrete space with a minimal DQN agent on the package's Agent interface)."""

from __future__ import annotations

import copy
from collections.abc import Mapping

import gymnasium
import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from palm_lightning.agents.base import Agent, Transition, optimizer_step
from palm_lightning.datamodules.streams.experience import ExperienceDataModule
from palm_lightning.nn.blocks import mlp, polyak_update


class ChainEnv:
    """N copies of a 4-state chain: action 1 moves right (reward 1 at the end), 0 stays, 2 resets
    the position; episodes end after 5 steps. Observations are one-hot positions (float)."""

    def __init__(self, num_envs: int, discrete: bool = True) -> None:
        self.num_envs, self.obs_shape = num_envs, (4,)
        self.action_space = gymnasium.spaces.Discrete(3) if discrete else gymnasium.spaces.Box(-2.0, 2.0, (2,))
        self.action_dim = 1 if discrete else 2
        self.position = torch.zeros(num_envs, dtype=torch.long)
        self.elapsed = torch.zeros(num_envs, dtype=torch.long)

    def obs(self) -> Tensor:
        return F.one_hot(self.position, 4).float()

    def reset(self, mask: Tensor | None = None, seed: int | None = None) -> tuple[Tensor, dict]:
        mask = torch.ones(self.num_envs, dtype=torch.bool) if mask is None else mask
        self.position[mask], self.elapsed[mask] = 0, 0
        return self.obs(), {}

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        move = (action == 1) if action.dim() == 1 else (action[:, 0] > 0)
        self.position = torch.where(move, (self.position + 1).clamp(max=3), self.position)
        self.elapsed += 1
        reward = (self.position == 3).float()
        truncated = self.elapsed >= 5
        return self.obs(), reward, torch.zeros(self.num_envs, dtype=torch.bool), truncated, {}

    def state_dict(self) -> dict:
        return {"position": self.position.clone(), "elapsed": self.elapsed.clone()}

    def load_state_dict(self, state: dict) -> None:
        self.position, self.elapsed = state["position"].clone(), state["elapsed"].clone()


class ChainData(ExperienceDataModule):
    obs_dtype = torch.float32

    def __init__(self, discrete: bool = True, **kwargs) -> None:
        super().__init__(**kwargs)
        self.discrete = discrete

    def make_env(self, num_envs: int, seed: int, device: torch.device) -> ChainEnv:
        return ChainEnv(num_envs, self.discrete)


def test_seed_frames_are_uniform_then_the_policy_acts_and_resets_write_first_rows():
    dm = ChainData(discrete=False, num_envs=2, batch_size=4, buffer_capacity=200, nstep=1, seed_frames=6)
    dm.setup("fit")
    calls = []

    def policy(obs: Tensor, env_steps: int, eval_mode: bool = False, task: Tensor | None = None) -> Tensor:
        calls.append((env_steps, task))
        return torch.full((obs.shape[0], 2), 0.5)

    dm.attach_policy(policy)
    dm.collect(7)  # 14 frames: 3 steps (6 frames) of seed actions, then the policy
    actions = dm.buffer.action[:, 0]  # env 0's rows in time order (no wrap yet)
    first = dm.buffer.first[:, 0]
    rows = actions[~first][:6]  # the 6 non-reset rows of env 0 (a reset after 5 steps writes a first row)
    assert ((rows[:3] >= -2) & (rows[:3] <= 2)).all() and (rows[:3] != 0.5).all()  # uniform in the Box's [-2, 2]
    assert (rows[3:] == 0.5).all()
    assert [c[0] for c in calls] == [6, 8, 10, 12] and all(c[1] is None for c in calls)
    # episodes of 5 steps: rows 0 (initial reset) and 6 (the reset after truncation) are first rows
    assert first[:8].tolist() == [True, False, False, False, False, False, True, False]
    assert (dm.buffer.action[6, 0] == 0).all() and dm.buffer.reward[6, 0] == 0


class DQNAgent(Agent):
    """A minimal DQN on the Agent interface: what the coming Atari agent will look like."""

    def __init__(self, obs_dim: int, num_actions: int, gamma_target_tau: float = 0.1) -> None:
        super().__init__()
        self.action_space = gymnasium.spaces.Discrete(num_actions)
        self.q = mlp(obs_dim, 32, 1, num_actions)
        self.q_target = copy.deepcopy(self.q).requires_grad_(False)
        self.tau = gamma_target_tau

    @torch.no_grad()
    def act(self, obs: Tensor, step: int, eval_mode: bool = False, task: Tensor | None = None) -> Tensor:
        greedy = self.q(obs).argmax(1)
        if eval_mode:
            return greedy
        explore = torch.rand(obs.shape[0]) < 0.2
        return torch.where(explore, torch.randint(int(self.action_space.n), greedy.shape), greedy)

    def optimizer_groups(self) -> dict[str, list[dict]]:
        return {"q": [{"params": list(self.q.parameters()), "lr": 1e-2, "name": "q"}]}

    def update(
        self, batch: Transition, step: int, optimizers: Mapping[str, torch.optim.Optimizer], backward=None, check=None
    ) -> dict[str, Tensor]:
        with torch.no_grad():
            target = batch.reward + batch.discount * self.q_target(batch.next_obs).max(1).values
        q = self.q(batch.obs).gather(1, batch.action.long()[:, None]).squeeze(1)
        loss = F.smooth_l1_loss(q, target)
        optimizer_step(loss, [optimizers["q"]], backward)
        polyak_update(self.q_target, self.q, self.tau)
        return {"train/q_loss": loss.detach()}


class DQNModule(L.LightningModule):
    def __init__(self) -> None:
        super().__init__()
        self.automatic_optimization = False
        self.agent = DQNAgent(4, 3)

    def on_fit_start(self) -> None:
        self.trainer.datamodule.attach_policy(self.act)

    def act(self, obs: Tensor, env_steps: int, eval_mode: bool = False, task: Tensor | None = None) -> Tensor:
        return self.agent.act(obs, env_steps, eval_mode, task)

    def configure_optimizers(self):
        return [torch.optim.Adam(g) for g in self.agent.optimizer_groups().values()]

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        transition = Transition(batch["obs"], batch["action"], batch["reward"], batch["discount"], batch["next_obs"])
        self.agent.update(transition, int(batch["env_steps"]), {"q": self.optimizers()}, backward=self.manual_backward)


def test_a_discrete_action_space_streams_integer_actions_and_a_dqn_agent_learns_the_chain(tmp_path):
    torch.manual_seed(0)
    dm = ChainData(num_envs=4, batch_size=64, buffer_capacity=4000, nstep=1, discount=0.9, seed_frames=40)
    module = DQNModule()
    L.Trainer(
        max_steps=300,
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path,
    ).fit(module, dm)
    assert isinstance(dm.action_space, gymnasium.spaces.Discrete)
    assert dm.buffer.action.dtype == torch.long and dm.buffer.action.shape[2:] == ()
    written = dm.buffer.action[~dm.buffer.first]
    assert set(written.unique().tolist()) == {0, 1, 2}
    # the learned greedy policy moves right from every non-terminal position
    greedy = module.agent.act(F.one_hot(torch.arange(3), 4).float(), 0, eval_mode=True)
    assert greedy.tolist() == [1, 1, 1]
