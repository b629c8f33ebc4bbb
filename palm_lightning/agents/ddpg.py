"""DrQ-v2's DDPG agent (Yarats et al., 2021) on representation vectors, as URLB uses it for APT.

Twin critics with a Polyak-averaged target, a deterministic actor with scheduled Gaussian
exploration (``TruncatedNormal``: clipped noise, straight-through clamp), target-policy smoothing
noise clipped to ``stddev_clip``, n-step TD targets computed by the stream. The critic steps
first and the actor then learns against the *updated* critic (DrQ-v2's ``update_critic`` then
``update_actor``). The representation is someone else's: the agent sees detached vectors.

The parameters below default to DrQ-v2/URLB's choice; their other values are fidelity ablations
(``python -m experiments.fidelity`` reverts each alone; docs/results/fidelity.md):

- ``straight_through``: the clamp of ``mean + noise`` passes gradients straight through;
- ``stddev_schedule``: URLB's constant ``"0.2"`` (DrQ-v2 decays ``linear(1.0,0.1,…)``);
- ``weight_init``: DrQ-v2's orthogonal initialisation, each twin Q-network's layers on their own
  (DrQ-v2 builds ``Q1`` and ``Q2`` as separate networks; our fused first layer is initialised
  block by block, see :class:`~palm_lightning.nn.blocks.FusedLinear`);
- ``sequential_updates``: critic step, then actor step against the new critic.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor

from palm_lightning.agents.base import (
    Agent,
    Backward,
    FiniteCheck,
    ParamGroups,
    Stepper,
    Transition,
    box_space,
    optimizer_step,
)
from palm_lightning.losses.ddpg import actor_loss, critic_loss, td_target
from palm_lightning.nn.actor_critic import Actor, Critic, truncated_normal_sample
from palm_lightning.nn.blocks import orthogonal_init_, polyak_update
from palm_lightning.schedules import parse_schedule, schedule

WeightInit = Literal["orthogonal", "default"]


@dataclass(frozen=True)
class DDPGConfig:
    """DrQ-v2's DDPG settings (defaults: DrQ-v2/URLB). A module that explores with DDPG takes this
    whole group (PALM's ``agent:``), so each setting is written here only.

    Args:
        feature_dim, hidden_dim: trunk and MLP widths (DrQ-v2: 50, 1024).
        lr: Adam learning rate of actor and critic (DrQ-v2: 1e-4).
        critic_tau: target-critic Polyak rate (DrQ-v2/URLB: 0.01).
        stddev_schedule: exploration std, a schedule string over environment frames (URLB:
            constant ``"0.2"``; DrQ-v2: ``"linear(1.0,0.1,500000)"``).
        stddev_clip: clip of the target-policy and actor-loss noise (0.3).
        straight_through: gradient through the action clamp (DrQ-v2: yes).
        sequential_updates: step the critic, then compute the actor's loss against the updated
            critic (DrQ-v2); ``False``: both losses from the same pre-update critic, one backward.
    """

    feature_dim: int = 50
    hidden_dim: int = 1024
    lr: float = 1e-4
    critic_tau: float = 0.01
    stddev_schedule: str = "0.2"
    stddev_clip: float = 0.3
    straight_through: bool = True
    sequential_updates: bool = True

    def __post_init__(self) -> None:
        parse_schedule(self.stddev_schedule)


class DDPGAgent(Agent):
    """DrQ-v2's DDPG on ``repr_dim`` features with actions in ``[-1, 1]^action_dim``.

    Args:
        repr_dim: size of the feature vectors the agent acts on.
        action_dim: action size.
        config: the agent's settings (:class:`DDPGConfig`).
        weight_init: ``"orthogonal"`` (DrQ-v2's ``weight_init``: orthogonal weights, zero biases,
            each Q-network's first layer orthogonal on its own) or ``"default"`` (PyTorch's).
        grad_clip: max gradient norm of actor and critic, each on its own (``None``: DrQ-v2's
            no clipping).

    ``weight_init`` and ``grad_clip`` have no default here: the module that owns the agent shares
    them with its other networks (PALM: the encoder) and passes its own.
    """

    def __init__(
        self,
        repr_dim: int,
        action_dim: int,
        config: DDPGConfig,
        *,
        weight_init: WeightInit,
        grad_clip: float | None,
    ) -> None:
        super().__init__()
        if weight_init not in ("orthogonal", "default"):
            raise ValueError(f"weight_init must be 'orthogonal' or 'default', got {weight_init!r}")
        self.action_space = box_space(action_dim)
        self.action_dim = action_dim
        self.config = config
        self.grad_clip = grad_clip
        self.actor = Actor(repr_dim, action_dim, config.feature_dim, config.hidden_dim)
        self.critic = Critic(repr_dim, action_dim, config.feature_dim, config.hidden_dim)
        if weight_init == "orthogonal":
            orthogonal_init_(self.actor)
            orthogonal_init_(self.critic)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)

    def stddev(self, step: int) -> float:
        """The exploration std at environment frame ``step``."""
        return schedule(self.config.stddev_schedule, step)

    @torch.no_grad()
    def act(self, obs: Tensor, step: int, eval_mode: bool = False, task: Tensor | None = None) -> Tensor:
        mean: Tensor = self.actor(obs.float())
        if eval_mode:
            return mean
        return truncated_normal_sample(mean, self.stddev(step), clip=None, straight_through=False)

    def optimizer_groups(self) -> dict[str, ParamGroups]:
        return {
            "critic": [{"params": list(self.critic.parameters()), "lr": self.config.lr, "name": "critic"}],
            "actor": [{"params": list(self.actor.parameters()), "lr": self.config.lr, "name": "actor"}],
        }

    def critic_loss(self, batch: Transition, std: float) -> tuple[Tensor, dict[str, Tensor]]:
        """Twin-critic TD loss against the target critic's clipped double-Q."""
        with torch.no_grad():
            next_action = truncated_normal_sample(
                self.actor(batch.next_obs), std, self.config.stddev_clip, self.config.straight_through
            )
            target_q = td_target(batch.reward, batch.discount, self.critic_target(batch.next_obs, next_action))
        q = self.critic(batch.obs, batch.action)
        logs = {
            "train/q": q[0].detach().mean(),
            "train/target_q": target_q.mean(),
            "train/batch_reward": batch.reward.mean(),
        }
        return critic_loss(q, target_q), logs

    def actor_loss(self, batch: Transition, std: float) -> Tensor:
        """``−min Q`` of the actor's (noisy) action, through the critic's detached weights."""
        action = truncated_normal_sample(
            self.actor(batch.obs), std, self.config.stddev_clip, self.config.straight_through
        )
        return actor_loss(self.critic(batch.obs, action, detached=True))

    def _clip(self, module: torch.nn.Module, name: str, logs: dict[str, Tensor]) -> None:
        if self.grad_clip is not None:
            logs[f"train/{name}_grad_norm"] = torch.nn.utils.clip_grad_norm_(module.parameters(), self.grad_clip)

    def update(
        self,
        batch: Transition,
        step: int,
        optimizers: Mapping[str, Stepper],
        backward: Backward | None = None,
        check: FiniteCheck | None = None,
    ) -> dict[str, Tensor]:
        batch = Transition(
            batch.obs.detach().float(),
            batch.action.float(),
            batch.reward.float(),
            batch.discount.float(),
            batch.next_obs.detach().float(),
            batch.task,
        )
        std = self.stddev(step)
        logs: dict[str, Tensor] = {"train/exploration_std": torch.tensor(std)}
        loss_critic, critic_logs = self.critic_loss(batch, std)
        logs.update(critic_logs)
        if self.config.sequential_updates:
            if check is not None:
                check({"critic_loss": loss_critic})
            optimizer_step(
                loss_critic, [optimizers["critic"]], backward, lambda: self._clip(self.critic, "critic", logs)
            )
            loss_actor = self.actor_loss(batch, std)
            if check is not None:
                check({"actor_loss": loss_actor})
            optimizer_step(loss_actor, [optimizers["actor"]], backward, lambda: self._clip(self.actor, "actor", logs))
        else:
            loss_actor = self.actor_loss(batch, std)
            if check is not None:
                check({"critic_loss": loss_critic, "actor_loss": loss_actor})

            def clip_both() -> None:
                self._clip(self.critic, "critic", logs)
                self._clip(self.actor, "actor", logs)

            optimizer_step(loss_critic + loss_actor, [optimizers["critic"], optimizers["actor"]], backward, clip_both)
        polyak_update(self.critic_target, self.critic, self.config.critic_tau)
        logs["train/critic_loss"] = loss_critic.detach()
        logs["train/actor_loss"] = loss_actor.detach()
        return logs
