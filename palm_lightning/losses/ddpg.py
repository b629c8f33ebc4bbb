"""DDPG with twin critics, as in DrQ-v2: losses as functions, the target update separate."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torch.func import functional_call


def critic_loss(q1: Tensor, q2: Tensor, target_q: Tensor) -> Tensor:
    """Mean-squared TD error of both critics against one (detached) target."""
    target_q = target_q.detach()
    return ((q1 - target_q) ** 2).mean() + ((q2 - target_q) ** 2).mean()


def td_target(reward: Tensor, discount: Tensor, next_q1: Tensor, next_q2: Tensor) -> Tensor:
    """``r + γⁿ·min(Q1', Q2')`` (``discount`` already holds γⁿ and the termination mask)."""
    return reward + discount * torch.minimum(next_q1, next_q2)


def actor_loss(critic: nn.Module, features: Tensor, action: Tensor) -> Tensor:
    """``−min(Q1, Q2)(s, π(s))`` through a *detached copy* of the critic's parameters: the
    gradient reaches the actor only, so this loss can be summed with the critic's and
    back-propagated once."""
    frozen = {name: p.detach() for name, p in critic.named_parameters()}
    frozen.update(dict(critic.named_buffers()))
    q1, q2 = functional_call(critic, frozen, (features, action))
    return -torch.minimum(q1, q2).mean()


@torch.no_grad()
def soft_update(target: nn.Module, online: nn.Module, tau: float) -> None:
    """Polyak averaging ``θ' ← (1 − τ) θ' + τ θ``."""
    for t, o in zip(target.parameters(), online.parameters(), strict=True):
        t.lerp_(o, tau)
