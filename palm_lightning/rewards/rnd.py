"""RND (Burda et al., 2018): novelty as the error of a predictor chasing a fixed random network."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor, nn

from palm_lightning.nn.blocks import mlp, orthogonal_init_
from palm_lightning.rewards.base import ExplorationReward, RewardStep


class RunningMoments(nn.Module):
    """Running mean and variance of a stream of scalars (buffers: they live in checkpoints).

    URLB's ``utils.RMS``: it starts from mean 0, variance 1 and a count of ``1e-4``, and merges
    each batch's mean and *unbiased* variance (``torch.var``'s default) into the running ones. A
    batch of one value has no unbiased variance (URLB's would turn the running variance into NaN);
    here it contributes its mean only.
    """

    mean: Tensor  # buffers (registered in __init__)
    var: Tensor
    count: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros((), dtype=torch.float64))
        self.register_buffer("var", torch.ones((), dtype=torch.float64))
        self.register_buffer("count", torch.full((), 1e-4, dtype=torch.float64))

    @torch.no_grad()
    def update(self, values: Tensor) -> None:
        values = values.detach().double().flatten()
        n = values.numel()
        if n == 0:
            return
        batch_mean = values.mean()
        batch_var = values.var() if n > 1 else values.new_zeros(())  # unbiased, as URLB's
        total = self.count + n
        delta = batch_mean - self.mean
        self.mean.add_(delta * n / total)
        self.var.copy_((self.var * self.count + batch_var * n + delta.pow(2) * self.count * n / total) / total)
        self.count.copy_(total)


class RND(ExplorationReward):
    """Random network distillation on reward-space features.

    The inputs are the reward-space feature vectors of :class:`RewardStep` (detached: RND does
    not train them), standardised per dimension by a batch norm without affine parameters and
    clipped to ``±clip``: Burda et al.'s observation normalisation, applied as URLB's state-based
    RND applies it to state vectors. (URLB's pixel RND instead normalises the augmented raw frames
    per channel, ``BatchNorm2d``, and its predictor and target each start with a convolutional
    encoder, the predictor's being the agent's own.) The predictor (trained) and the target
    (random, frozen) are MLPs to ``rep_dim``; the reward is the squared prediction error divided
    by the running std of the errors (URLB's ``RMS``, unbiased batch variances).

    Args:
        rep_dim: output size of target and predictor (URLB: 512).
        hidden_dim: MLP width (our default: 256; URLB: the agent's 1024).
        clip: clip of the standardised inputs (URLB: 5).
        source: features whose novelty is rewarded (URLB: ``"obs"``).
    """

    def __init__(
        self, rep_dim: int = 512, hidden_dim: int = 256, clip: float = 5.0, source: Literal["obs", "next_obs"] = "obs"
    ) -> None:
        super().__init__()
        if source not in ("obs", "next_obs"):
            raise ValueError(f"source must be 'obs' or 'next_obs', got {source!r}")
        self.rep_dim, self.hidden_dim, self.clip, self.source = rep_dim, hidden_dim, clip, source
        self.error_moments = RunningMoments()
        self.predictor: nn.Module | None = None

    def build(self, feature_dim: int, action_dim: int) -> None:
        self.normalize = nn.BatchNorm1d(feature_dim, affine=False)
        self.predictor = orthogonal_init_(mlp(feature_dim, self.hidden_dim, 2, self.rep_dim))
        self.target = orthogonal_init_(mlp(feature_dim, self.hidden_dim, 2, self.rep_dim)).requires_grad_(False)

    def prediction_error(self, features: Tensor) -> Tensor:
        """Mean squared error of the predictor against the target, per sample ``(B,)``."""
        if self.predictor is None:
            raise RuntimeError("RND.build(feature_dim, action_dim) must be called before use (PALM does it)")
        x = self.normalize(features.float()).clamp(-self.clip, self.clip)
        with torch.no_grad():
            target: Tensor = self.target(x)
        prediction: Tensor = self.predictor(x)
        return (prediction - target).pow(2).mean(dim=-1)

    def _features(self, step: RewardStep) -> Tensor:
        return step.obs if self.source == "obs" else step.next_obs

    @torch.no_grad()
    def forward(self, step: RewardStep) -> Tensor:
        error = self.prediction_error(self._features(step))
        self.error_moments.update(error)
        return (error / (self.error_moments.var.sqrt().float() + 1e-8)).float()

    def loss(self, step: RewardStep) -> tuple[Tensor, dict[str, Tensor]]:
        error = self.prediction_error(self._features(step))
        return error.mean(), {"train/rnd_prediction_error": error.detach().mean()}
