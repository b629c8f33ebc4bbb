"""Building blocks of SAC on state vectors: the tanh-Gaussian policy head and the twin Q-network.

A CPU SAC update at these sizes is dominated by per-operation overhead, so the twin critics share
one fused first layer (see :class:`TwinQ`) and everything else stays plain ``addmm``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from palm_lightning.nn.blocks import FusedLinear

LOG_STD_MIN, LOG_STD_MAX = -20.0, 2.0  # the EAR authors' (and rlkit's) clamp


def split_mean_log_std(output: Tensor) -> tuple[Tensor, Tensor]:
    """A head's ``(…, 2·|A|)`` output → mean and log-std clamped to ``[−20, 2]``."""
    mean, log_std = output.chunk(2, dim=-1)
    return mean, log_std.clamp(LOG_STD_MIN, LOG_STD_MAX)


def tanh_gaussian_sample(
    mean: Tensor, log_std: Tensor, generator: torch.Generator | None = None
) -> tuple[Tensor, Tensor]:
    """Reparameterised sample ``a = tanh(μ + σ·ε)`` and its log-probability (summed over action
    dimensions), with the tanh Jacobian in the stable form ``2·(log 2 − u − softplus(−2u))``."""
    noise = torch.randn(mean.shape, device=mean.device, dtype=mean.dtype, generator=generator)
    u = mean + log_std.exp() * noise
    log_prob = (-0.5 * noise.pow(2) - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
    log_prob = log_prob - (2 * (math.log(2.0) - u - F.softplus(-2 * u))).sum(-1)
    return torch.tanh(u), log_prob


class TwinQ(nn.Module):
    """``members`` Q-functions ``(input, action) → Q``, each an MLP of ``num_hidden`` ReLU layers.

    ``input`` is whatever conditions the critic (for multi-task SAC: the observation and the
    one-hot task). The first layers of all members share their input, so they are one
    :class:`~palm_lightning.nn.blocks.FusedLinear` ``(in, members·hidden)``, which initialises
    like ``members`` separate layers (PyTorch's default, or per member under
    :func:`~palm_lightning.nn.blocks.orthogonal_init_`); the rest are plain per-member layers (on
    a CPU, one batched ``bmm`` per layer is slower than two ``addmm``). ``detached=True`` evaluates with detached
    parameters, so that a policy loss can flow through the critic to the action without touching
    the critic's weights (one summed backward for critic and policy).
    """

    def __init__(
        self, in_dim: int, action_dim: int, hidden_dim: int = 256, num_hidden: int = 2, members: int = 2
    ) -> None:
        super().__init__()
        if num_hidden < 1:
            raise ValueError(f"num_hidden must be ≥ 1, got {num_hidden}")
        self.members = members
        self.hidden_dim = hidden_dim
        self.first = FusedLinear(in_dim + action_dim, members * hidden_dim, blocks=members)
        self.rest = nn.ModuleList(
            nn.ModuleList(
                [nn.Linear(hidden_dim, hidden_dim) for _ in range(num_hidden - 1)] + [nn.Linear(hidden_dim, 1)]
            )
            for _ in range(members)
        )

    @staticmethod
    def _linear(layer: nn.Linear, x: Tensor, detached: bool) -> Tensor:
        if detached:
            return F.linear(x, layer.weight.detach(), layer.bias.detach())
        return layer(x)

    @torch.no_grad()
    def clip_grad_norm_per_member(self, max_norm: float) -> Tensor:
        """Clip each member's gradient norm to ``max_norm`` on its own, as if every Q-function were
        a separate network (the EAR authors clip each Q at 10); the fused first layer's gradient
        rows are split by member. Returns the members' norms before clipping ``(members,)``."""
        norms = []
        for member in range(self.members):
            rows = slice(member * self.hidden_dim, (member + 1) * self.hidden_dim)
            grads = [
                g
                for g in (
                    None if self.first.weight.grad is None else self.first.weight.grad[rows],
                    None if self.first.bias.grad is None else self.first.bias.grad[rows],
                    *(p.grad for p in self.rest[member].parameters()),
                )
                if g is not None
            ]
            if not grads:
                norms.append(torch.zeros((), device=self.first.weight.device))
                continue
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
            scale = (max_norm / (norm + 1e-6)).clamp(max=1.0)
            for g in grads:
                g.mul_(scale)
            norms.append(norm)
        return torch.stack(norms)

    def forward(self, inputs: Tensor, action: Tensor, detached: bool = False) -> Tensor:
        """Q-values ``(members, B)``."""
        hidden = F.relu(self._linear(self.first, torch.cat([inputs, action], dim=-1), detached))
        outputs = []
        for member_hidden, layers in zip(
            hidden.split(self.hidden_dim, dim=-1), cast("Iterable[Sequence[nn.Linear]]", self.rest), strict=True
        ):
            x = member_hidden
            for i, layer in enumerate(layers):
                x = self._linear(layer, x, detached)
                if i < len(layers) - 1:
                    x = F.relu(x)
            outputs.append(x.squeeze(-1))
        return torch.stack(outputs)
