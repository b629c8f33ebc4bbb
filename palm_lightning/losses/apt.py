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


EXACT_CANDIDATES = 4
"""Candidates beyond the ``k`` nearest that :func:`knn_distances` re-measures exactly."""


def knn_distances(source: Tensor, target: Tensor, k: int) -> Tensor:
    """The ``k`` smallest Euclidean distances from each source row to the target rows, ascending,
    each measured as URLB measures it, ``‖s − t‖₂`` of the difference.

    All pairs are first ranked by ``torch.cdist``'s matrix-multiply path (``‖s‖² + ‖t‖² − 2 s·t``),
    which is fast but loses small distances to cancellation: for features of dimension 256 and
    unit scale a particle's distance to itself comes out about 0.015 instead of 0 (0.09 for
    features offset from the origin), and near-duplicates are off by as much. The ``k + 4`` nearest
    by that ranking are then re-measured from their differences and the ``k`` smallest kept, so
    every returned distance is exact to float32 rounding (a particle's own is 0). The ranking's
    error shrinks as distances grow, so it can only swap candidates about that close together: a
    true neighbour is missed only if more than 4 others crowd within that error of the k-th
    distance, and then by no more than that error.

    Why not an exact all-pairs form: re-measuring only the nearest candidates costs a small
    factor over the matrix-multiply path, while ``cdist(compute_mode="donot_use_mm_for_euclid_dist")``
    and URLB's broadcast ``torch.norm`` cost an order of magnitude or more; the side-by-side
    ratios are ``python benchmarks/apt_distances.py``.
    """
    source, target = source.float(), target.float()
    k = min(k, target.shape[0])
    candidates = min(k + EXACT_CANDIDATES, target.shape[0])
    index = torch.cdist(source, target).topk(candidates, dim=1, largest=False, sorted=False).indices
    # index_select and an in-place difference: one (B, k + 4, D) buffer, not target[index]'s two
    nearest = target.index_select(0, index.flatten()).view(*index.shape, target.shape[1])
    exact = torch.linalg.vector_norm(nearest.sub_(source[:, None, :]), dim=-1)
    return exact.topk(k, dim=1, largest=False, sorted=True).values


def particle_reward(
    source: Tensor,
    target: Tensor | None = None,
    k: int = 12,
    knn_avg: bool = True,
    normalizer: RunningMean | None = None,
    knn_clip: float = 0.0,
) -> tuple[Tensor, Tensor]:
    """APT reward of each ``source`` particle against ``target`` (default: the source itself).

    Returns ``(reward (B,), knn distances (B, k))``; ``normalizer`` (URLB's ``knn_rms``) is
    updated with the distances used and divides them. ``knn_clip`` is subtracted from the
    (scaled) distances, floored at 0 (a negative value skips the clip); its default 0.0 is
    :class:`~palm_lightning.rewards.APT`'s and URLB's pixel APT's (URLB's state-based configs:
    1e-4).
    """
    distances = knn_distances(source, source if target is None else target, k)
    used = distances if knn_avg else distances[:, -1:]
    scale = normalizer.update(used) if normalizer is not None else used.new_ones(())
    scaled = used / scale.clamp_min(1e-8)
    if knn_clip >= 0.0:
        scaled = (scaled - knn_clip).clamp_min(0.0)
    reward = torch.log1p(scaled.mean(1))
    return reward, distances
