"""Policies of the meta-RL baselines of EAR: PEARL's z-conditioned tanh-Gaussian (SAC) policy and
MAML's Gaussian MLP policy, whose parameters can be swapped for adapted ones functionally."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from palm_lightning.nn.blocks import mlp
from palm_lightning.nn.sac import split_mean_log_std


class LatentConditionedPolicy(nn.Module):
    """``(obs, z) → (mean, log_std)`` of a tanh-Gaussian, an MLP on ``obs ⊕ z``.

    z is detached on the way in: in PEARL only the critic's loss (and the KL) trains the context
    encoder, never the policy's. Plugs into :class:`~palm_lightning.agents.SACAgent` with z as the
    ``task`` argument.
    """

    def __init__(self, obs_dim: int, latent_dim: int, action_dim: int, hidden_dim: int = 300, num_hidden: int = 3):
        super().__init__()
        self.latent_dim = latent_dim
        self.net = mlp(obs_dim + latent_dim, hidden_dim, num_hidden, 2 * action_dim)

    def forward(self, obs: Tensor, z: Tensor) -> tuple[Tensor, Tensor]:
        if z.dim() != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"z must have shape (B, {self.latent_dim}), got {tuple(z.shape)}")
        return split_mean_log_std(self.net(torch.cat([obs.float(), z.detach().float()], dim=-1)))


class GaussianMLPPolicy(nn.Module):
    """``obs → N(μ(obs), diag σ²)``: an MLP mean with ``tanh``-free outputs (the environment clips)
    and a learned state-independent log-std, as in MAML's (rllab's) ``GaussianMLPPolicy``.

    Args:
        obs_dim, action_dim: sizes.
        hidden_dim, num_hidden: the mean network (MAML: 2 layers of 100, ReLU).
        init_std: initial σ (rllab: 1).
    """

    def __init__(
        self, obs_dim: int, action_dim: int, hidden_dim: int = 100, num_hidden: int = 2, init_std: float = 1.0
    ) -> None:
        super().__init__()
        if init_std <= 0:
            raise ValueError(f"init_std must be > 0, got {init_std}")
        self.mean = mlp(obs_dim, hidden_dim, num_hidden, action_dim)
        self.log_std = nn.Parameter(torch.full((action_dim,), math.log(init_std)))

    def forward(self, obs: Tensor) -> tuple[Tensor, Tensor]:
        """``(mean, log_std)``, each ``(…, |A|)``."""
        mean = self.mean(obs.float())
        return mean, self.log_std.expand_as(mean)

    @staticmethod
    def log_prob(mean: Tensor, log_std: Tensor, action: Tensor) -> Tensor:
        """Log-density of ``action`` summed over action dimensions."""
        z = (action - mean) * torch.exp(-log_std)
        return (-0.5 * z.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)

    @staticmethod
    def kl(old_mean: Tensor, old_log_std: Tensor, mean: Tensor, log_std: Tensor) -> Tensor:
        """``KL(old ‖ new)`` of diagonal Gaussians, summed over action dimensions."""
        var_ratio = torch.exp(2 * (old_log_std - log_std))
        mahalanobis = (old_mean - mean).pow(2) * torch.exp(-2 * log_std)
        return 0.5 * (var_ratio + mahalanobis - 1.0 - 2 * (old_log_std - log_std)).sum(-1)
