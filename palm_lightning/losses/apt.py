"""APT's particle-based entropy reward (Liu & Abbeel, 2021), with URLB's options.

For representations ``h`` of a batch of observations, each particle's reward grows with its
distance to its k nearest neighbours *inside the batch* (the batch is both source and target;
a row's own zero distance is among the k, as in URLB)::

    d_ij = ‖h_i − h_j‖₂,  D_i = the k smallest d_ij
    r_i  = log(1 + mean_k max(D_ik / μ̂ − clip, 0))     (knn_avg)
    r_i  = log(1 + max(D_ik / μ̂ − clip, 0))            (not knn_avg: the k-th distance only)

with μ̂ a running mean of the kNN distances (``knn_rms``) or 1.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class RunningMean(nn.Module):
    """Running mean of every value it sees (buffers, so it lives in checkpoints)."""

    mean: Tensor  # buffers (registered in __init__)
    count: Tensor

    def __init__(self) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(()))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, values: Tensor) -> Tensor:
        n = values.numel()
        if n:
            total = self.count + n
            self.mean.add_((values.float().mean() - self.mean) * (n / total).float())
            self.count.copy_(total)
        return self.mean


def knn_distances(source: Tensor, target: Tensor, k: int) -> Tensor:
    """The ``k`` smallest Euclidean distances from each source row to the target rows, ascending."""
    k = min(k, target.shape[0])
    distances = torch.cdist(source.float(), target.float())
    return distances.topk(k, dim=1, largest=False, sorted=True).values


def particle_reward(
    source: Tensor,
    target: Tensor | None = None,
    k: int = 12,
    knn_avg: bool = True,
    normalizer: RunningMean | None = None,
    knn_clip: float = 0.0001,
) -> tuple[Tensor, Tensor]:
    """APT reward of each ``source`` particle against ``target`` (default: the source itself).

    Returns ``(reward (B,), knn distances (B, k))``; ``normalizer`` (URLB's ``knn_rms``) is
    updated with the distances used and divides them.
    """
    distances = knn_distances(source, source if target is None else target, k)
    used = distances if knn_avg else distances[:, -1:]
    scale = normalizer.update(used) if normalizer is not None else used.new_ones(())
    scaled = used / scale.clamp_min(1e-8)
    if knn_clip >= 0.0:
        scaled = (scaled - knn_clip).clamp_min(0.0)
    reward = torch.log1p(scaled.mean(1))
    return reward, distances
