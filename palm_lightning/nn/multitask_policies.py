"""Multi-task SAC policies: ``(observation, task index) → (mean, log-std)`` of a tanh-Gaussian.

- :class:`EARPolicy` — EAR's factorised policy: state encoder φ → latent state embedding (LSE),
  task encoder (one-hot → MLP) → latent task embedding (LTE) on the unit sphere, action decoder
  ψ(LSE, LTE). The LTE is the *action representation* that interpolation and CEM search act on.
- :class:`OneHotPolicy` — OHE-SAC: the one-hot task is concatenated to the observation.
- :class:`MultiHeadPolicy` — MHMT-SAC: a shared trunk and one output head per task.

Sizes default to the EAR authors' code (400-wide, LSE 16, LTE 3, four decoder layers).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from palm_lightning.nn.blocks import mlp, one_hot
from palm_lightning.nn.sac import split_mean_log_std


class MultiTaskPolicy(nn.Module):
    """Interface: ``forward(obs (B, O), task (B,) long) → (mean, log_std)``, both ``(B, |A|)``."""

    num_tasks: int

    def one_hot(self, task: Tensor) -> Tensor:
        return one_hot(task, self.num_tasks)

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """The parameter sets whose gradient norms are clipped separately (``grad_clip_per:
        network``): one per network. Default: the whole policy is one network."""
        return [list(self.parameters())]


class EARPolicy(MultiTaskPolicy):
    """EAR's policy (Hua et al., 2023).

    Args:
        obs_dim, action_dim, num_tasks: problem sizes.
        lse_dim: latent state embedding size (authors: 16).
        lte_dim: latent task embedding size (authors: 3).
        hidden_dim: width of every hidden layer (authors: 400).
        state_layers: hidden layers of the state encoder (authors: 2, obs→400→400→16).
        task_layers: hidden layers of the task encoder (authors: 1, one-hot→400→3).
        decoder_layers: hidden layers of the action decoder (authors: 4).
        lte_noise: std σ of the Gaussian noise added to the LTE while training. The authors'
            code defines σ = 0.02 but never applies it; here it is applied (σ = 0 is the
            ablation). The noisy LTE is projected back onto the sphere (our choice: the decoder
            then only ever sees unit vectors, which is where interpolation and CEM query it).
        normalize: L2-normalise LSE and LTE (``False`` is the no-normalisation ablation).
    """

    def __init__(
        self,
        obs_dim: int,
        action_dim: int,
        num_tasks: int,
        lse_dim: int = 16,
        lte_dim: int = 3,
        hidden_dim: int = 400,
        state_layers: int = 2,
        task_layers: int = 1,
        decoder_layers: int = 4,
        lte_noise: float = 0.02,
        normalize: bool = True,
    ) -> None:
        super().__init__()
        if lte_noise < 0:
            raise ValueError(f"lte_noise must be ≥ 0, got {lte_noise}")
        self.num_tasks = num_tasks
        self.lte_dim = lte_dim
        self.lte_noise = lte_noise
        self.normalize = normalize
        self.state_encoder = mlp(obs_dim, hidden_dim, state_layers, lse_dim)
        self.task_encoder = mlp(num_tasks, hidden_dim, task_layers, lte_dim)
        self.decoder = mlp(lse_dim + lte_dim, hidden_dim, decoder_layers, 2 * action_dim)

    def clip_groups(self) -> list[list[nn.Parameter]]:
        """State encoder, task encoder and action decoder are clipped one by one (the authors' code
        clips each network's gradient norm at 10)."""
        return [
            list(self.state_encoder.parameters()),
            list(self.task_encoder.parameters()),
            list(self.decoder.parameters()),
        ]

    def _project(self, x: Tensor) -> Tensor:
        return F.normalize(x, dim=-1) if self.normalize else x

    def state_embedding(self, obs: Tensor) -> Tensor:
        """The LSE ``Z_s = φ(s)`` (unit norm)."""
        return self._project(self.state_encoder(obs))

    def task_embeddings(self) -> Tensor:
        """Every task's LTE ``(num_tasks, lte_dim)``, without noise."""
        return self._project(
            self.task_encoder(torch.eye(self.num_tasks, device=next(self.decoder.parameters()).device))
        )

    def task_embedding(self, task: Tensor) -> Tensor:
        """The LTE of each task index (noisy while training when ``lte_noise > 0``)."""
        lte = self._project(self.task_encoder(self.one_hot(task)))
        if self.training and self.lte_noise > 0:
            lte = self._project(lte + self.lte_noise * torch.randn_like(lte))
        return lte

    def decode(self, obs: Tensor, lte: Tensor) -> tuple[Tensor, Tensor]:
        """Action distribution for explicit LTEs ``(B, lte_dim)`` (interpolation, CEM)."""
        return split_mean_log_std(self.decoder(torch.cat([self.state_embedding(obs), lte], dim=-1)))

    def forward(self, obs: Tensor, task: Tensor) -> tuple[Tensor, Tensor]:
        return self.decode(obs, self.task_embedding(task))


class OneHotPolicy(MultiTaskPolicy):
    """OHE-SAC: ``[obs, one-hot] → hidden × num_hidden → 2·|A|`` (our default: 400 × 4, the
    depth of EAR's decoder, so the comparison is not one of capacity)."""

    def __init__(
        self, obs_dim: int, action_dim: int, num_tasks: int, hidden_dim: int = 400, num_hidden: int = 4
    ) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.net = mlp(obs_dim + num_tasks, hidden_dim, num_hidden, 2 * action_dim)

    def forward(self, obs: Tensor, task: Tensor) -> tuple[Tensor, Tensor]:
        return split_mean_log_std(self.net(torch.cat([obs, self.one_hot(task)], dim=-1)))


class MultiHeadPolicy(MultiTaskPolicy):
    """MHMT-SAC: shared trunk ``obs → hidden × trunk_layers`` and one linear head per task.

    All heads are one ``Linear(hidden, num_tasks·2|A|)``; each sample reads its task's slice,
    so a batch mixing every task costs a single matmul.
    """

    def __init__(
        self, obs_dim: int, action_dim: int, num_tasks: int, hidden_dim: int = 400, trunk_layers: int = 4
    ) -> None:
        super().__init__()
        self.num_tasks = num_tasks
        self.action_dim = action_dim
        if trunk_layers < 1:
            raise ValueError(f"trunk_layers must be ≥ 1, got {trunk_layers}")
        # the trunk is an MLP whose last hidden layer is the heads' input: mlp() minus its output layer
        self.trunk = nn.Sequential(*mlp(obs_dim, hidden_dim, trunk_layers, 1)[:-1])
        self.heads = nn.Linear(hidden_dim, num_tasks * 2 * action_dim)

    def forward(self, obs: Tensor, task: Tensor) -> tuple[Tensor, Tensor]:
        out = self.heads(self.trunk(obs)).view(obs.shape[0], self.num_tasks, 2 * self.action_dim)
        return split_mean_log_std(out[torch.arange(obs.shape[0], device=obs.device), task])
