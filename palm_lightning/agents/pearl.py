"""PEARL's SAC (Rakelly et al., 2019) as an agent: :class:`~palm_lightning.agents.SACAgent` whose
task code is a latent z inferred by a context encoder instead of a one-hot index.

The batch's ``task`` field carries z ``(B, latent_dim)`` (one row per transition, its task's
sample). The critic reads ``obs ⊕ z`` with z attached, so the critic loss trains the encoder (as
in the paper); the policy reads z detached (:class:`~palm_lightning.nn.meta_policies.
LatentConditionedPolicy`) and its loss sees the critic on ``obs ⊕ z.detach()``. The encoder's
parameters are a group of the ``actor_critic`` optimiser, so the KL passed as an extra loss and
the critic gradient land in one step.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from palm_lightning.agents.base import ParamGroups
from palm_lightning.agents.sac import SACAgent, SACConfig
from palm_lightning.nn.context_encoder import ContextEncoder
from palm_lightning.nn.meta_policies import LatentConditionedPolicy


@dataclass(frozen=True)
class PEARLConfig(SACConfig):
    """PEARL's agent settings: :class:`SACConfig`'s fields, with the defaults of PEARL's paper and
    code (``katerakelly/oyster``) where they differ from SAC's, plus the context encoder's rate.
    A PEARL module takes this whole group (``agent:`` in its configs).

    Why a subclass of :class:`SACConfig` and not a second group: :class:`PEARLAgent` is a
    :class:`SACAgent` and reads every SAC setting, so all of one agent's settings stay under one
    key (``agent.hidden_dim`` as in EAR's configs, ``agent.context_lr`` beside it), and a
    ``PEARLConfig`` is accepted wherever a ``SACConfig`` is.

    Args:
        hidden_dim, q_layers: critic (and policy) width and hidden layers (PEARL: 300, 3).
        alpha_lr: Adam rate of log α; 0 (default) keeps α fixed at ``exp(init_log_alpha)`` = 1:
            PEARL's entropy weight is set through ``reward_scale``.
        reward_scale: factor on rewards (PEARL: 5, HalfCheetah-Vel).
        grad_clip: max gradient norm (``None``, default: no clipping, as PEARL).
        context_lr: Adam rate of the context encoder (PEARL: 3e-4).
        The others: :class:`SACConfig`'s (lr 3e-4, τ 0.005, ...).
    """

    hidden_dim: int = 300
    q_layers: int = 3
    alpha_lr: float = 0.0
    reward_scale: float = 5.0
    grad_clip: float | None = None
    context_lr: float = 3e-4


class PEARLAgent(SACAgent):
    """SAC on ``(obs, z)`` plus the context encoder.

    Args:
        encoder: the :class:`ContextEncoder` (its ``latent_dim`` sizes the critic's input).
        policy: a :class:`LatentConditionedPolicy`.
        obs_dim, action_dim: sizes of the twin critic on ``obs ⊕ z``.
        config: the agent's settings (:class:`PEARLConfig`).
    """

    def __init__(
        self,
        encoder: ContextEncoder,
        policy: LatentConditionedPolicy,
        obs_dim: int,
        action_dim: int,
        config: PEARLConfig = PEARLConfig(),
    ) -> None:
        # the critic's conditioning input is z: SACAgent sizes it by its num_tasks argument
        super().__init__(policy, obs_dim, action_dim, encoder.latent_dim, config)
        self.config: PEARLConfig = config
        self.encoder = encoder
        self.context_lr = config.context_lr

    def _task(self, obs: Tensor, task: Tensor | None) -> Tensor:
        if task is None or task.dim() != 2:
            raise ValueError("PEARLAgent acts and learns on (obs, z): pass z of shape (B, latent_dim) as task")
        return task

    def critic_input(self, obs: Tensor, task: Tensor) -> Tensor:
        return torch.cat([obs, task], dim=-1)

    def policy_critic_input(self, obs: Tensor, task: Tensor) -> Tensor:
        return torch.cat([obs, task.detach()], dim=-1)

    def optimizer_groups(self) -> dict[str, ParamGroups]:
        groups = super().optimizer_groups()
        groups["actor_critic"].append(
            {"params": list(self.encoder.parameters()), "lr": self.context_lr, "name": "context_encoder"}
        )
        return groups

    def clip_gradients(self) -> dict[str, Tensor]:
        norms = super().clip_gradients()
        if self.config.grad_clip is not None:
            norms["train/encoder_grad_norm"] = torch.nn.utils.clip_grad_norm_(
                self.encoder.parameters(), self.config.grad_clip, foreach=True
            )
        return norms
