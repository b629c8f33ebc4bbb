"""PEARL's probabilistic context encoder (Rakelly et al., 2019): task inference from transitions.

Each context transition ``c_n = (s, a, r[, s'])`` is mapped by one MLP to a Gaussian factor
``N(μ_n, σ²_n)`` over the latent task code z; the factors are multiplied
(:func:`product_of_gaussians`), so the posterior ``q(z | c_1…c_N)`` does not depend on the order of
the transitions and sharpens as context accumulates. With no context the posterior is the prior
``N(0, I)``.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from palm_lightning.nn.blocks import mlp

MIN_VARIANCE = 1e-7
"""Floor on every factor's variance: keeps the precisions finite (PEARL's code floors at 1e-7)."""


def product_of_gaussians(means: Tensor, variances: Tensor) -> tuple[Tensor, Tensor]:
    """Closed-form product of the Gaussian factors along dimension −2.

    ``means``/``variances`` ``(…, N, D)`` (diagonal factors) → posterior mean and variance
    ``(…, D)``: ``σ² = 1 / Σ_n 1/σ²_n`` and ``μ = σ² · Σ_n μ_n/σ²_n``.
    """
    if means.shape != variances.shape:
        raise ValueError(
            f"means and variances must have the same shape, got {tuple(means.shape)} and {tuple(variances.shape)}"
        )
    if means.dim() < 2:
        raise ValueError(f"give factors as (…, N, D), got shape {tuple(means.shape)}")
    precisions = 1.0 / variances.clamp(min=MIN_VARIANCE)
    variance = 1.0 / precisions.sum(-2)
    return variance * (means * precisions).sum(-2), variance


def gaussian_kl_to_standard_normal(mean: Tensor, variance: Tensor) -> Tensor:
    """``KL(N(μ, diag σ²) ‖ N(0, I))`` summed over the last dimension."""
    return 0.5 * (variance + mean.pow(2) - 1.0 - variance.clamp(min=MIN_VARIANCE).log()).sum(-1)


def context_dim(obs_dim: int, action_dim: int, use_next_obs: bool) -> int:
    """Size of one context transition: ``s ⊕ a ⊕ r`` (``⊕ s'`` with ``use_next_obs``)."""
    return obs_dim * (2 if use_next_obs else 1) + action_dim + 1


def make_context(obs: Tensor, action: Tensor, reward: Tensor, next_obs: Tensor | None) -> Tensor:
    """Context transitions ``(…, context_dim)`` from their parts (``next_obs`` ``None``: left out)."""
    parts = [obs, action, reward.unsqueeze(-1)]
    if next_obs is not None:
        parts.append(next_obs)
    return torch.cat([p.float() for p in parts], dim=-1)


class ContextEncoder(nn.Module):
    """Transitions ``(T, N, context_dim)`` of ``T`` tasks → posterior ``(μ, σ²)`` ``(T, latent_dim)``.

    Args:
        in_dim: size of a context transition (:func:`context_dim`).
        latent_dim: size of z (PEARL: 5).
        hidden_dim, num_hidden: the per-transition MLP (PEARL's code: 3 layers of 200).
        deterministic: PEARL's ``use_information_bottleneck=False`` ablation: z is the mean of the
            per-transition outputs, no variance (and no KL).
    """

    def __init__(
        self, in_dim: int, latent_dim: int = 5, hidden_dim: int = 200, num_hidden: int = 3, deterministic: bool = False
    ) -> None:
        super().__init__()
        self.in_dim, self.latent_dim, self.deterministic = in_dim, latent_dim, deterministic
        self.net = mlp(in_dim, hidden_dim, num_hidden, latent_dim if deterministic else 2 * latent_dim)

    def factors(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """Per-transition Gaussian factors ``(μ_n, σ²_n)``, each ``(…, N, latent_dim)``."""
        if context.shape[-1] != self.in_dim:
            raise ValueError(
                f"context transitions must have {self.in_dim} features (s ⊕ a ⊕ r [⊕ s']), got {context.shape[-1]}"
            )
        out = self.net(context.float())
        if self.deterministic:
            return out, torch.zeros_like(out)
        mean, raw = out.chunk(2, dim=-1)
        return mean, F.softplus(raw)

    def forward(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """Posterior ``(μ, σ²)`` over z given the context; an empty context (``N = 0``) gives the
        prior ``N(0, I)``."""
        if context.shape[-2] == 0:
            shape = (*context.shape[:-2], self.latent_dim)
            return context.new_zeros(shape), context.new_ones(shape)
        mean, variance = self.factors(context)
        if self.deterministic:
            return mean.mean(-2), variance.mean(-2)
        return product_of_gaussians(mean, variance)

    @staticmethod
    def sample(mean: Tensor, variance: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Reparameterised ``z = μ + σ·ε`` (gradients reach the encoder)."""
        noise = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
        return mean + variance.sqrt() * noise
