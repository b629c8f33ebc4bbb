"""DrQ-v2's deterministic actor and twin critic, on (detached) representation vectors.

Both start with DrQ-v2's trunk ``Linear → LayerNorm → Tanh`` to ``feature_dim``; the critic's two
Q-heads are a :class:`~palm_lightning.nn.sac.TwinQ` (the same twin critic SAC uses), so the
"evaluate with detached weights" trick lives in one place.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from palm_lightning.nn.blocks import mlp
from palm_lightning.nn.sac import TwinQ


def _trunk(in_dim: int, feature_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, feature_dim), nn.LayerNorm(feature_dim), nn.Tanh())


class Actor(nn.Module):
    """``features → Linear → LayerNorm → Tanh → MLP(2 hidden) → tanh``: the mean action in ``[-1, 1]``."""

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int = 50, hidden_dim: int = 1024) -> None:
        super().__init__()
        self.trunk = _trunk(repr_dim, feature_dim)
        self.policy = mlp(feature_dim, hidden_dim, 2, action_dim)

    def forward(self, features: Tensor) -> Tensor:
        return torch.tanh(self.policy(self.trunk(features)))


class Critic(nn.Module):
    """Twin Q-functions behind one trunk: ``(features, action) → Q`` of shape ``(2, B)``.

    ``detached=True`` evaluates with detached weights (and the trunk without a graph): the actor's
    loss then reaches the action only, never the critic's parameters.
    """

    def __init__(self, repr_dim: int, action_dim: int, feature_dim: int = 50, hidden_dim: int = 1024) -> None:
        super().__init__()
        self.trunk = _trunk(repr_dim, feature_dim)
        self.q = TwinQ(feature_dim, action_dim, hidden_dim, num_hidden=2)

    def forward(self, features: Tensor, action: Tensor, detached: bool = False) -> Tensor:
        if detached:
            with torch.no_grad():
                hidden = self.trunk(features)
        else:
            hidden = self.trunk(features)
        return self.q(hidden, action, detached=detached)


def truncated_normal_sample(
    mean: Tensor,
    std: float,
    clip: float | None = None,
    straight_through: bool = True,
    generator: torch.Generator | None = None,
) -> Tensor:
    """Gaussian exploration around ``mean`` (noise clipped to ``±clip`` when given), kept in
    ``[-1, 1]``: DrQ-v2's ``TruncatedNormal.sample``.

    ``straight_through=True`` (DrQ-v2) clamps the value but passes the gradient through the clamp
    unchanged, so the actor keeps learning from samples that hit the bounds; ``False`` is a plain
    clamp, whose gradient is zero wherever it clips (this package's behaviour before the fix).
    DrQ-v2 clamps to ``[-1 + 1e-6, 1 - 1e-6]``; we clamp to ``[-1, 1]``.
    """
    noise = torch.randn(mean.shape, device=mean.device, generator=generator, dtype=mean.dtype) * std
    if clip is not None:
        noise = noise.clamp(-clip, clip)
    action = mean + noise
    clamped = action.clamp(-1.0, 1.0)
    if straight_through:
        return action - action.detach() + clamped.detach()
    return clamped
