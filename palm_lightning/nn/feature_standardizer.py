"""A fixed per-dimension standardization of a frozen encoder's features, fitted once.

Why: a head trained on frozen features reads them at the encoder's own scale. An encoder whose
features vary little between frames of one game (PALM-Atari's: a per-dimension std of 0.18 within
Boxing against a mean |f| of 0.81; SimSiam's on real frames 0.013 / 0.65) hands the head nearly the
same vector for every state, and Adam at DrQ(ε)'s 1e-4 has to grow the first layer's weights a
long way before states differ in Q — the same scale effect that made the AtariARI probe read such
encoders as uninformed on raw features (``AtariStateProbe(standardize=True)`` is the probe's
answer, with this module, and the RL head's). The statistics are taken once, from the frames the agent holds
when its first update comes (DrQ(ε)'s min replay history: the random-play seed frames), and then
kept: a moving standardization would change what every state looks like to a head that is still
learning, and the frozen encoder's features of a frame never change.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn


class FeatureStandardizer(nn.Module):
    """``(f − mean) / std`` per dimension, with ``mean`` and ``std`` from :meth:`fit` (buffers, so
    checkpoints keep them). Until it is fitted it passes features through unchanged (an agent acts
    ε = 1 at random before its first update, so nothing it does depends on that).

    Args:
        dim: the features' size.
        min_std: the smallest std divided by (a dimension constant over the fit's frames then maps to
            0 instead of dividing by zero).
    """

    mean: Tensor
    std: Tensor
    fitted: Tensor

    def __init__(self, dim: int, min_std: float = 1e-6) -> None:
        super().__init__()
        if dim < 1:
            raise ValueError(f"the features' size must be ≥ 1, got {dim}")
        self.min_std = min_std
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, features: Tensor) -> None:
        """Take the statistics of ``features`` ``(N, dim)``, N ≥ 2."""
        if features.dim() != 2 or features.shape[1] != self.mean.shape[0] or features.shape[0] < 2:
            raise ValueError(
                f"fit takes (N ≥ 2, {self.mean.shape[0]}) features, got {tuple(features.shape)}: "
                "fit on the frames of the replay buffer once it holds some"
            )
        features = features.to(self.mean.device, torch.float64)  # a constant dimension's mean exactly
        self.mean.copy_(features.mean(0))
        self.std.copy_(features.std(0).clamp_min(self.min_std))
        self.fitted.fill_(True)

    def forward(self, features: Tensor) -> Tensor:
        if not bool(self.fitted):
            return features
        return (features - self.mean) / self.std
