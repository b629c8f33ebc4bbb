"""DrQ-v2's deterministic actor and twin critic, on (detached) representation vectors."""

from __future__ import annotations

import torch
from torch import Tensor, nn


def _trunk(in_dim: int, feature_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())


def _mlp(in_dim: int, hidden_dim: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(in_dim, hidden_dim), nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, hidden_dim), nn.ReLU(inplace=True),
        nn.Linear(hidden_dim, out_dim),
    )


class Actor(nn.Module):
    """``features → Linear → LayerNorm → Tanh → MLP → tanh``: the mean action in ``[-1, 1]``."""

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int = 50, hidden_dim: int = 1024) -> None:
        super().__init__()
        self.trunk = _trunk(repr_dim, feature_dim)
        self.policy = _mlp(feature_dim, hidden_dim, action_dim)

    def forward(self, features: Tensor) -> Tensor:
        return torch.tanh(self.policy(self.trunk(features)))


class Critic(nn.Module):
    """Twin Q-functions sharing one trunk: ``(features, action) → (Q1, Q2)``."""

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int = 50, hidden_dim: int = 1024) -> None:
        super().__init__()
        self.trunk = _trunk(repr_dim, feature_dim)
        self.q1 = _mlp(feature_dim + action_dim, hidden_dim, 1)
        self.q2 = _mlp(feature_dim + action_dim, hidden_dim, 1)

    def forward(self, features: Tensor, action: Tensor) -> tuple[Tensor, Tensor]:
        x = torch.cat([self.trunk(features), action], dim=-1)
        return self.q1(x).squeeze(-1), self.q2(x).squeeze(-1)


def sample_action(mean: Tensor, std: float, clip: float | None = None, generator: torch.Generator | None = None) -> Tensor:
    """Gaussian exploration around ``mean`` (noise clipped to ``±clip`` when given), kept in
    ``[-1, 1]``: DrQ-v2's truncated normal, without its straight-through gradient trick."""
    noise = torch.randn(mean.shape, device=mean.device, generator=generator, dtype=mean.dtype) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    return (mean + noise).clamp(-1.0, 1.0)
