"""ICM (Pathak et al., 2017): curiosity as the error of a forward model in a learned feature space."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from palm_lightning.nn.blocks import mlp, orthogonal_init_
from palm_lightning.rewards.base import ExplorationReward, RewardStep


class ICM(ExplorationReward):
    """Intrinsic curiosity: features ``φ`` trained by an inverse model (predict ``a_t`` from
    ``φ(o_t), φ(o_{t+1})``), a forward model predicting ``φ(o_{t+1})`` from ``φ(o_t), a_t``, and a
    reward that grows with the forward model's error.

    The inputs are PALM's reward-space features (the module's representation, detached), so
    ``φ`` is a small trunk on top of them (``Linear → LayerNorm → Tanh``, URLB's ICM-APT trunk).
    As in Pathak et al., only the inverse loss shapes ``φ`` (the forward loss sees detached
    features), and the loss is ``(1 − β)·L_inverse + β·L_forward``. The reward is URLB's
    ``log(1 + scale·‖φ̂(o_{t+1}) − φ(o_{t+1})‖₂)`` (Pathak's is ``η/2·‖…‖²``; the log keeps its
    scale near APT's).

    Args:
        feature_dim: size of ``φ`` (our choice: 128).
        hidden_dim: width of the forward and inverse models (URLB: the agent's hidden size; our
            default 256).
        beta: weight of the forward loss (Pathak: 0.2).
        scale: factor inside the log (URLB's ``icm_scale``: 1).
    """

    def __init__(self, feature_dim: int = 128, hidden_dim: int = 256, beta: float = 0.2, scale: float = 1.0) -> None:
        super().__init__()
        if not 0.0 <= beta <= 1.0:
            raise ValueError(f"beta must be in [0, 1], got {beta}")
        self.feature_dim, self.hidden_dim, self.beta, self.scale = feature_dim, hidden_dim, beta, scale
        self.trunk: nn.Module | None = None

    def build(self, feature_dim: int, action_dim: int) -> None:
        self.trunk = nn.Sequential(nn.Linear(feature_dim, self.feature_dim), nn.LayerNorm(self.feature_dim), nn.Tanh())
        self.forward_model = mlp(self.feature_dim + action_dim, self.hidden_dim, 1, self.feature_dim)
        self.inverse_model = nn.Sequential(mlp(2 * self.feature_dim, self.hidden_dim, 1, action_dim), nn.Tanh())
        orthogonal_init_(self)

    def _built_trunk(self) -> nn.Module:
        if self.trunk is None:
            raise RuntimeError("ICM.build(feature_dim, action_dim) must be called before use (PALM does it)")
        return self.trunk

    def errors(self, step: RewardStep) -> tuple[Tensor, Tensor]:
        """Per-sample forward error ``‖φ̂' − φ'‖₂`` and inverse error ``‖â − a‖₂``, both ``(B,)``."""
        trunk = self._built_trunk()
        phi, phi_next = trunk(step.obs.float()), trunk(step.next_obs.float())
        predicted_next = self.forward_model(torch.cat([phi.detach(), step.action.float()], dim=-1))
        predicted_action = self.inverse_model(torch.cat([phi, phi_next], dim=-1))
        forward_error = (predicted_next - phi_next.detach()).norm(dim=-1)
        inverse_error = (predicted_action - step.action.float()).norm(dim=-1)
        return forward_error, inverse_error

    @torch.no_grad()
    def forward(self, step: RewardStep) -> Tensor:
        forward_error, _ = self.errors(step)
        return torch.log1p(self.scale * forward_error)

    def loss(self, step: RewardStep) -> tuple[Tensor, dict[str, Tensor]]:
        forward_error, inverse_error = self.errors(step)
        loss = (1.0 - self.beta) * inverse_error.mean() + self.beta * forward_error.mean()
        return loss, {
            "train/icm_forward_error": forward_error.detach().mean(),
            "train/icm_inverse_error": inverse_error.detach().mean(),
        }
