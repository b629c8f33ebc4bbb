"""Policy-gradient pieces of MAML-TRPO as functions over time-major episode tensors
``(T, N)`` with a validity ``mask`` (1 while the episode runs): returns, GAE advantages, the
REINFORCE loss of the inner step, TRPO's surrogate, conjugate gradient."""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor


def discounted_returns(reward: Tensor, mask: Tensor, discount: float) -> Tensor:
    """Reward-to-go ``Σ_k γ^k r_{t+k}`` within each episode ``(T, N)``."""
    out = torch.zeros_like(reward)
    running = torch.zeros_like(reward[0])
    for t in range(reward.shape[0] - 1, -1, -1):
        running = reward[t] * mask[t] + discount * running * mask[t]
        out[t] = running
    return out


def gae_advantages(reward: Tensor, values: Tensor, mask: Tensor, discount: float, lam: float) -> Tensor:
    """Generalised advantage estimation (Schulman et al., 2016) with ``V = 0`` after an episode's
    last step (rllab's convention; MAML's λ = 1 makes it reward-to-go minus the baseline)."""
    advantages = torch.zeros_like(reward)
    next_value = torch.zeros_like(reward[0])
    running = torch.zeros_like(reward[0])
    for t in range(reward.shape[0] - 1, -1, -1):
        delta = reward[t] + discount * next_value - values[t]
        running = (delta + discount * lam * running) * mask[t]
        advantages[t] = running
        next_value = values[t] * mask[t]
    return advantages


def normalize_masked(x: Tensor, mask: Tensor, eps: float = 1e-8) -> Tensor:
    """Zero mean and unit standard deviation over the valid entries (rllab's ``center_adv``)."""
    count = mask.sum().clamp(min=1.0)
    mean = (x * mask).sum() / count
    std = (((x - mean) * mask).pow(2).sum() / count).sqrt()
    return (x - mean) / (std + eps) * mask


def masked_mean(x: Tensor, mask: Tensor) -> Tensor:
    return (x * mask).sum() / mask.sum().clamp(min=1.0)


def reinforce_loss(log_prob: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """The inner step's vanilla policy-gradient loss ``−E[log π(a|s) · A]``."""
    return -masked_mean(log_prob * advantages.detach(), mask)


def surrogate_loss(log_prob: Tensor, old_log_prob: Tensor, advantages: Tensor, mask: Tensor) -> Tensor:
    """TRPO's importance-weighted surrogate ``−E[π/π_old · A]`` (minimised)."""
    ratio = torch.exp(log_prob - old_log_prob.detach())
    return -masked_mean(ratio * advantages.detach(), mask)


def conjugate_gradient(matvec: Callable[[Tensor], Tensor], b: Tensor, iters: int = 10, tol: float = 1e-10) -> Tensor:
    """Approximate ``A⁻¹ b`` for a symmetric positive-definite ``A`` known only through
    ``matvec(v) = A v`` (TRPO: Fisher-vector products), in ``iters`` iterations."""
    x = torch.zeros_like(b)
    r = b.clone()
    p = b.clone()
    rr = r.dot(r)
    for _ in range(iters):
        if rr < tol:
            break
        ap = matvec(p)
        alpha = rr / p.dot(ap).clamp(min=1e-12)
        x = x + alpha * p
        r = r - alpha * ap
        rr_new = r.dot(r)
        p = r + (rr_new / rr) * p
        rr = rr_new
    return x
