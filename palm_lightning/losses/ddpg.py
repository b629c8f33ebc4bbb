"""DDPG with twin critics, as in DrQ-v2: the losses as functions of Q-values ``(2, B)``.

The target-network update is :func:`palm_lightning.nn.blocks.polyak_update`; the actor's loss
reads the critic through detached weights (``Critic(..., detached=True)``).
"""

from __future__ import annotations

from torch import Tensor


def td_target(reward: Tensor, discount: Tensor, next_q: Tensor) -> Tensor:
    """``r + γⁿ·min(Q1', Q2')`` for target Q-values ``next_q`` ``(2, B)``; ``discount`` already
    holds γⁿ and the termination mask (truncation bootstraps)."""
    return reward + discount * next_q.min(0).values


def critic_loss(q: Tensor, target_q: Tensor) -> Tensor:
    """Sum over the critics of the mean-squared TD error against one (detached) target: ``q`` is
    ``(2, B)``, ``target_q`` ``(B,)``."""
    return (q - target_q.detach()).pow(2).mean(1).sum()


def actor_loss(q_pi: Tensor) -> Tensor:
    """``−min(Q1, Q2)(s, π(s))`` averaged over the batch, for Q-values ``(2, B)`` of the actor's
    actions (computed with the critic's weights detached, so only the actor learns from it)."""
    return -q_pi.min(0).values.mean()
