"""Soft actor-critic losses (Haarnoja et al., 2018, automatic temperature), as functions.

All three act on disjoint parameters (critic, policy, log α), so their sum can be
back-propagated once: the policy loss reads the critic through detached weights
(``TwinQ(..., detached=True)``) and the temperature loss reads a detached log-probability.
"""

from __future__ import annotations

from torch import Tensor


def soft_td_target(reward: Tensor, discount: Tensor, next_q: Tensor, next_log_prob: Tensor, alpha: Tensor) -> Tensor:
    """``r + γ·d·(min_i Q'_i(s', a') − α·log π(a'|s'))`` with ``next_q`` ``(members, B)``;
    ``discount`` already holds γ and the termination mask (truncation bootstraps)."""
    soft_value = next_q.min(0).values - alpha * next_log_prob
    return reward + discount * soft_value


def sac_critic_loss(q: Tensor, target: Tensor) -> Tensor:
    """Sum over critics of the mean-squared TD error against one detached target."""
    return (q - target.detach()).pow(2).mean(1).sum()


def sac_policy_loss(q_pi: Tensor, log_prob: Tensor, alpha: Tensor) -> Tensor:
    """``E[α·log π(a|s) − min_i Q_i(s, a)]``, ``a ~ π`` reparameterised; α detached."""
    return (alpha.detach() * log_prob - q_pi.min(0).values).mean()


def temperature_loss(log_alpha: Tensor, log_prob: Tensor, target_entropy: float) -> Tensor:
    """Drives the policy's entropy towards ``target_entropy`` (SAC v2): ``−log α·(log π + H̄)``."""
    return -(log_alpha * (log_prob.detach() + target_entropy)).mean()
