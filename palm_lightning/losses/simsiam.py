"""SimSiam's objective (Chen & He, 2021): symmetric negative cosine with a stop-gradient."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def negative_cosine(prediction: Tensor, target: Tensor) -> Tensor:
    """``−cos(p, stopgrad(z))`` averaged over the batch (in float32, whatever the autocast)."""
    return -F.cosine_similarity(prediction.float(), target.detach().float(), dim=-1).mean()


def simsiam_loss(p1: Tensor, p2: Tensor, z1: Tensor, z2: Tensor) -> Tensor:
    """``½ D(p1, z2) + ½ D(p2, z1)``: each view's prediction chases the other view's projection,
    which receives no gradient. Minimum −1."""
    return 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))


def output_std(z: Tensor) -> Tensor:
    """Collapse monitor (SimSiam, Fig. 2): per-channel std of the ℓ2-normalised outputs, averaged
    over channels and scaled by ``sqrt(dim)``: ≈ 1 when healthy, → 0 when collapsed."""
    return F.normalize(z.detach().float(), dim=1).std(0).mean() * z.shape[1] ** 0.5
