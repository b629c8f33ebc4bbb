"""APT's particle-based entropy reward (Liu & Abbeel, 2021), as URLB computes it."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from palm_lightning.losses.apt import RunningMean, particle_reward
from palm_lightning.rewards.base import ExplorationReward, RewardStep


class APT(ExplorationReward):
    """Reward each particle by its distance to its k nearest neighbours inside the batch
    (:func:`~palm_lightning.losses.apt.particle_reward`).

    Args:
        k: neighbours (URLB: 12).
        knn_avg: average the k distances (URLB: yes) instead of taking the k-th.
        knn_rms: divide distances by their running mean. URLB's pixel APT runs with ``false``
            (its state-based configs with ``true``); default ``false``.
        knn_clip: subtracted from the (scaled) distances, floored at 0 (pixel APT in URLB: 0.0;
            its state-based configs: 1e-4).
        source: which features are the particles: ``"obs"`` (URLB rewards the representation of
            the transition's first observation) or ``"next_obs"`` (the observation reached).
    """

    def __init__(
        self,
        k: int = 12,
        knn_avg: bool = True,
        knn_rms: bool = False,
        knn_clip: float = 0.0,
        source: Literal["obs", "next_obs"] = "obs",
    ) -> None:
        super().__init__()
        if k < 1:
            raise ValueError(f"k must be ≥ 1, got {k}")
        if source not in ("obs", "next_obs"):
            raise ValueError(f"source must be 'obs' or 'next_obs', got {source!r}")
        self.k, self.knn_avg, self.knn_rms, self.knn_clip, self.source = k, knn_avg, knn_rms, knn_clip, source
        self.normalizer = RunningMean()
        self.last_distances: Tensor | None = None

    @torch.no_grad()
    def forward(self, step: RewardStep) -> Tensor:
        particles = (step.obs if self.source == "obs" else step.next_obs).float()
        reward, distances = particle_reward(
            particles,
            k=self.k,
            knn_avg=self.knn_avg,
            normalizer=self.normalizer if self.knn_rms else None,
            knn_clip=self.knn_clip,
        )
        self.last_distances = distances
        return reward

    def metrics(self) -> dict[str, Tensor]:
        """kNN distances of the last call (mean over neighbours but self, and the k-th)."""
        if self.last_distances is None:
            return {}
        d = self.last_distances
        logs = {
            "knn/distance_mean": d[:, 1:].mean() if d.shape[1] > 1 else d.mean(),
            "knn/distance_kth": d[:, -1].mean(),
        }
        if self.knn_rms:
            logs["reward/knn_scale"] = self.normalizer.mean.clone()
        return logs
