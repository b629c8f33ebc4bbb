"""A class-conditional Gaussian encoder q(z | x, c): the inference half of a conditional VAE."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class ConditionalLatentEncoder(nn.Module):
    """Image and label → mean and log-variance of a diagonal Gaussian over the generator's z.

    A plain strided-convolution stack (no normalisation, so one image's posterior never depends on
    the rest of the batch). The label enters as constant one-hot planes next to the image: the
    encoder only has to explain what the class does *not* (the within-class variation the
    generator's z should carry).

    Args:
        z_dim: size of z (the generator's ``latent_dim``).
        num_classes: class labels are integers in ``[0, num_classes)``; 0 = unconditional.
        img_resolution: side of the square input, a power of two ≥ 8.
        img_channels: 1 for grayscale, 3 for RGB.
        width: channels of the first convolution, doubled at every halving (capped at 8 × width).

    The log-variance is kept in ``LOG_VARIANCE_BOUNDS`` by :func:`clamp_passing_gradient`, not a plain
    clamp: a plain clamp has zero gradient beyond its bound, so a dimension that overshoots there once (on
    Atari frames a KL spike can pin many dimensions at the upper bound for good, and the decoder then
    learns to ignore z: one frame per game) never gets the KL's pull back.
    """

    LOG_VARIANCE_BOUNDS = (-12.0, 6.0)

    def __init__(
        self, z_dim: int, num_classes: int, img_resolution: int = 32, img_channels: int = 1, width: int = 32
    ) -> None:
        super().__init__()
        if img_resolution < 8 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two >= 8, got {img_resolution}")
        self.z_dim, self.num_classes = z_dim, num_classes
        layers: list[nn.Module] = []
        channels, resolution = img_channels + num_classes, img_resolution
        out = width
        while resolution > 4:
            layers += [nn.Conv2d(channels, out, 4, stride=2, padding=1), nn.LeakyReLU(0.2)]
            channels, resolution, out = out, resolution // 2, min(2 * out, 8 * width)
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.head = nn.Linear(channels * 16, 2 * z_dim)
        nn.init.zeros_(self.head.bias)
        nn.init.normal_(self.head.weight, std=0.1 / math.sqrt(channels * 16))

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Images ``(N, C, H, W)`` in [-1, 1] and labels ``(N,)`` → ``(mean, log_variance)``, each ``(N, z_dim)``."""
        x = images
        if self.num_classes > 0:
            planes = F.one_hot(labels.long(), self.num_classes).to(images.dtype)[:, :, None, None]
            x = torch.cat([images, planes.expand(-1, -1, *images.shape[2:])], dim=1)
        mean, log_variance = self.head(self.features(x)).chunk(2, dim=1)
        return mean, clamp_passing_gradient(log_variance, *self.LOG_VARIANCE_BOUNDS)


def clamp_passing_gradient(x: Tensor, low: float, high: float) -> Tensor:
    """``x.clamp(low, high)`` in the forward pass, the identity in the backward pass (straight-through).

    Why not a smooth squashing: any bounded smooth function's gradient vanishes far beyond its bounds
    (a softplus hinge's exponentially), so a dimension that overshoots far is as stuck as with a hard
    clamp. Here the loss's gradient at the bound (the KL's is large there) always reaches ``x``.
    """
    return x + (x.clamp(low, high) - x).detach()


def gaussian_kl(mean: Tensor, log_variance: Tensor) -> Tensor:
    """KL(N(mean, exp(log_variance)) ‖ N(0, I)) per sample, summed over dimensions: ``(N,)``."""
    return 0.5 * (mean.square() + log_variance.exp() - 1.0 - log_variance).sum(dim=1)
