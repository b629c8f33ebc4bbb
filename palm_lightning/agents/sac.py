"""Soft actor-critic (Haarnoja et al., 2018, automatic temperature) as an agent: the update of EAR,
OHE-SAC and MHMT-SAC (and of single-task SAC from scratch).

The policy is any module ``(obs, task) → (mean, log_std)`` of a tanh-Gaussian (EAR's factorised
policy, a one-hot policy, a multi-head policy: :mod:`palm_lightning.nn.multitask_policies`); the
critic is a :class:`~palm_lightning.nn.sac.TwinQ` on ``(obs ⊕ one-hot task, action)`` (the EAR
authors' choice: Q sees the one-hot, not the task embedding), with a Polyak target.

Update order, after the EAR authors' code (rlkit-style SAC):

1. the temperature: ``log α`` steps on the fresh policy sample, and the *updated* α is the one
   used below (``alpha_first``; ``False``, a fidelity ablation, uses α before its own update);
2. critic and policy losses, both from the pre-update critic (the policy reads it through
   detached weights), one backward, then per-network gradient clipping (``grad_clip_per:
   network``: state encoder, task encoder, action decoder and each Q separately, the authors'
   clip of 10 on every network; ``group``, a fidelity ablation: the whole policy and both critics
   as two groups; docs/results/fidelity.md measures both ablations on EAR), one step, then the
   Polyak update of the target critic.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import Tensor, nn

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
from palm_lightning.losses.sac import sac_critic_loss, sac_policy_loss, soft_td_target, temperature_loss
from palm_lightning.nn.blocks import one_hot, polyak_update
from palm_lightning.nn.sac import TwinQ, tanh_gaussian_sample

ClipPer = Literal["network", "group"]


@dataclass(frozen=True)
class SACConfig:
    """SAC's settings (defaults: the EAR authors' MT-SAC). A module that trains with SAC takes this
    whole group (``agent:`` in EAR's and the multi-task baselines' configs, ``sac:`` in PALMSAC's),
    so each setting is written here only.

    Args:
        hidden_dim, q_layers: critic width and hidden layers (authors: 400, 4).
        lr: Adam rate of policy and critic (authors: 3e-4); alpha_lr: of log α (3e-4).
        init_log_alpha: initial log α (authors: 0).
        target_entropy: ``None`` → −|A| (authors).
        tau: target Polyak rate, every update (authors: 0.005).
        reward_scale: factor on rewards (authors: 1).
        grad_clip: max gradient norm (authors: 10; ``None``: no clipping).
        grad_clip_per: ``"network"`` (authors) or ``"group"`` (see the module docstring).
        alpha_first: update α before using it (authors) or after (a fidelity ablation).
    """

    hidden_dim: int = 400
    q_layers: int = 4
    lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_log_alpha: float = 0.0
    target_entropy: float | None = None
    tau: float = 0.005
    reward_scale: float = 1.0
    grad_clip: float | None = 10.0
    grad_clip_per: ClipPer = "network"
    alpha_first: bool = True

    def __post_init__(self) -> None:
        if self.grad_clip_per not in ("network", "group"):
            raise ValueError(f"grad_clip_per must be 'network' or 'group', got {self.grad_clip_per!r}")
        if self.hidden_dim < 1 or self.q_layers < 1:
            raise ValueError(f"hidden_dim and q_layers must be >= 1, got {self.hidden_dim} and {self.q_layers}")


class SACAgent(Agent):
    """SAC over ``policy`` and a twin critic.

    Args:
        policy: ``(obs (B, O), task (B,)) → (mean, log_std)``, each ``(B, |A|)``; a
            ``clip_groups()`` method, when present, lists the networks clipped one by one.
        obs_dim, action_dim, num_tasks: sizes (the critic's input is ``obs ⊕ one-hot``).
        config: the agent's settings (:class:`SACConfig`).
    """

    def __init__(
        self, policy: nn.Module, obs_dim: int, action_dim: int, num_tasks: int = 1, config: SACConfig = SACConfig()
    ) -> None:
        super().__init__()
        self.action_space = box_space(action_dim)
        self.num_tasks = num_tasks
        self.config = config
        self.target_entropy = float(-action_dim if config.target_entropy is None else config.target_entropy)
        self.policy = policy
        self.critic = TwinQ(obs_dim + num_tasks, action_dim, config.hidden_dim, config.q_layers)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(float(config.init_log_alpha)))

    # --- acting -----------------------------------------------------------------------------
    def _task(self, obs: Tensor, task: Tensor | None) -> Tensor:
        return torch.zeros(obs.shape[0], dtype=torch.long, device=obs.device) if task is None else task

    @torch.no_grad()
    def act(self, obs: Tensor, step: int, eval_mode: bool = False, task: Tensor | None = None) -> Tensor:
        """A sample of the tanh-Gaussian (exploration) or, with ``eval_mode``, its mean ``tanh(μ)``
        with the policy in eval mode (e.g. noise-free task embeddings)."""
        task = self._task(obs, task)
        if not eval_mode:
            return tanh_gaussian_sample(*self.policy(obs.float(), task))[0]
        was_training = self.policy.training
        self.policy.eval()
        try:
            return torch.tanh(self.policy(obs.float(), task)[0])
        finally:
            self.policy.train(was_training)

    # --- updating ---------------------------------------------------------------------------
    def optimizer_groups(self) -> dict[str, ParamGroups]:
        return {
            "alpha": [{"params": [self.log_alpha], "lr": self.config.alpha_lr, "name": "alpha"}],
            "actor_critic": [
                {"params": list(self.policy.parameters()), "lr": self.config.lr, "name": "policy"},
                {"params": list(self.critic.parameters()), "lr": self.config.lr, "name": "critic"},
            ],
        }

    def critic_input(self, obs: Tensor, task: Tensor) -> Tensor:
        """What conditions the critic besides the action: ``obs ⊕ one-hot task``."""
        return torch.cat([obs, one_hot(task, self.num_tasks)], dim=-1)

    def policy_critic_input(self, obs: Tensor, task: Tensor) -> Tensor:
        """The critic's input in the policy loss. The same as :meth:`critic_input` here; a
        subclass whose task code is learned (PEARL's z) detaches it, so that only the critic
        loss trains what produced it."""
        return self.critic_input(obs, task)

    def clip_gradients(self) -> dict[str, Tensor]:
        """Clip as ``grad_clip_per`` says; returns the norms before clipping (for the logs)."""
        if self.config.grad_clip is None:
            return {}
        clip = torch.nn.utils.clip_grad_norm_
        if self.config.grad_clip_per == "group":
            return {
                "train/policy_grad_norm": clip(self.policy.parameters(), self.config.grad_clip, foreach=True),
                "train/critic_grad_norm": clip(self.critic.parameters(), self.config.grad_clip, foreach=True),
            }
        clip_groups = getattr(self.policy, "clip_groups", None)
        groups = clip_groups() if clip_groups is not None else [list(self.policy.parameters())]
        policy_norms = [clip(group, self.config.grad_clip, foreach=True) for group in groups]
        critic_norms = self.critic.clip_grad_norm_per_member(self.config.grad_clip)
        return {
            "train/policy_grad_norm": torch.stack(policy_norms).max(),
            "train/critic_grad_norm": critic_norms.max(),
        }

    def update(
        self,
        batch: Transition,
        step: int,
        optimizers: Mapping[str, Stepper],
        backward: Backward | None = None,
        check: FiniteCheck | None = None,
        extra_losses: dict[str, Tensor] | None = None,
    ) -> dict[str, Tensor]:
        """One update; ``extra_losses`` (named ``…_loss``) join the critic and policy losses in
        their one backward: losses on networks upstream of the batch's ``task`` code, stepped by
        the ``actor_critic`` optimiser (PEARL's KL on its context encoder)."""
        obs, next_obs = batch.obs.float(), batch.next_obs.float()
        task = self._task(obs, batch.task)
        critic_input = self.critic_input(obs, task)
        losses: dict[str, Tensor] = {}
        if self.config.alpha_first:
            action, log_prob = tanh_gaussian_sample(*self.policy(obs, task))
            losses["alpha_loss"] = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
            if check is not None:
                check(dict(losses))
            optimizer_step(losses["alpha_loss"], [optimizers["alpha"]], backward)
        alpha = self.log_alpha.exp()
        with torch.no_grad():
            next_action, next_log_prob = tanh_gaussian_sample(*self.policy(next_obs, task))
            next_q = self.critic_target(self.critic_input(next_obs, task), next_action)
            target = soft_td_target(
                self.config.reward_scale * batch.reward.float(),
                batch.discount.float(),
                next_q,
                next_log_prob,
                alpha.detach(),
            )
        q = self.critic(critic_input, batch.action.float())
        if not self.config.alpha_first:  # the ablation: the next-state sample drew its noise first
            action, log_prob = tanh_gaussian_sample(*self.policy(obs, task))
        q_pi = self.critic(self.policy_critic_input(obs, task), action, detached=True)
        losses["critic_loss"] = sac_critic_loss(q, target)
        losses["policy_loss"] = sac_policy_loss(q_pi, log_prob, alpha)
        total = losses["critic_loss"] + losses["policy_loss"]
        for name, extra in (extra_losses or {}).items():
            losses[name] = extra
            total = total + extra
        stepped = [optimizers["actor_critic"]]
        if not self.config.alpha_first:
            losses["alpha_loss"] = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
            total = total + losses["alpha_loss"]
            stepped.append(optimizers["alpha"])
        if check is not None:
            check(losses)
        logs: dict[str, Tensor] = {}
        optimizer_step(total, stepped, backward, lambda: logs.update(self.clip_gradients()))
        polyak_update(self.critic_target, self.critic, self.config.tau)
        logs.update({f"train/{k}": v.detach() for k, v in losses.items()})
        logs.update(
            {
                "train/q": q.detach().mean(),
                "train/target_q": target.mean(),
                "train/entropy": -log_prob.detach().mean(),
                "train/alpha": self.log_alpha.detach().exp(),
                "train/batch_reward": batch.reward.float().mean(),
            }
        )
        return logs
