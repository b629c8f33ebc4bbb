"""A conditional VAE for small grayscale or RGB images: the user's own generator, outside the package.

Nothing here imports palm_lightning: PALM only needs :class:`CVAEDecoder` to follow its generator
protocol (``latent_dim``, ``num_classes``, ``image_shape`` and ``forward(z, c)`` returning images in
``[-1, 1]``). :class:`CVAE` adds the encoder and the loss that ``train.py`` needs.
"""

from __future__ import annotations

from itertools import pairwise

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class CVAEDecoder(nn.Module):
    """``(z, c) -> image``: a latent and a class label decoded by three ×2 transposed convolutions.

    The label enters twice: one-hot next to z at the input, and as a learned per-class bias of the
    feature maps before every transposed convolution (without it, samples drift to other classes).

    Args:
        latent_dim: size of z (PALM's action size).
        num_classes: class labels are integers in ``[0, num_classes)``.
        image_size: side of the square output, a multiple of 8.
        channels: 1 for grayscale, 3 for RGB.
        width: channels of the last hidden layer (×2 and ×4 before it).
    """

    def __init__(
        self, latent_dim: int = 16, num_classes: int = 10, image_size: int = 32, channels: int = 1, width: int = 32
    ) -> None:
        super().__init__()
        if image_size % 8:
            raise ValueError(f"image_size must be a multiple of 8, got {image_size}")
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.image_shape = (channels, image_size, image_size)
        side = image_size // 8
        self.project = nn.Linear(latent_dim + num_classes, 4 * width * side * side)
        self.unflatten = nn.Unflatten(1, (4 * width, side, side))
        widths = (4 * width, 2 * width, width, channels)
        self.class_bias = nn.ModuleList(nn.Embedding(num_classes, w) for w in widths[:-1])
        self.deconvs = nn.ModuleList(
            nn.ConvTranspose2d(w_in, w_out, 4, stride=2, padding=1) for w_in, w_out in pairwise(widths)
        )

    def logits(self, z: Tensor, c: Tensor) -> Tensor:
        """Per-pixel Bernoulli logits ``(N, C, H, W)`` of the image's intensity in ``[0, 1]``."""
        c = c.long()
        x: Tensor = self.unflatten(self.project(torch.cat([z, F.one_hot(c, self.num_classes).to(z.dtype)], dim=1)))
        for bias, deconv in zip(self.class_bias, self.deconvs, strict=True):
            x = deconv(F.relu(x + bias(c)[:, :, None, None]))
        return x

    def forward(self, z: Tensor, c: Tensor) -> Tensor:
        """Images in ``[-1, 1]``: the Bernoulli mean ``sigmoid(logits)`` mapped from ``[0, 1]``."""
        return 2.0 * torch.sigmoid(self.logits(z, c)) - 1.0


class CVAEEncoder(nn.Module):
    """``(x, c) -> (mean, log-variance)`` of the approximate posterior over z."""

    def __init__(
        self, latent_dim: int = 16, num_classes: int = 10, image_size: int = 32, channels: int = 1, width: int = 32
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        side = image_size // 8
        self.conv = nn.Sequential(
            nn.Conv2d(channels, width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(width, 2 * width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Conv2d(2 * width, 4 * width, 4, stride=2, padding=1),
            nn.ReLU(),
            nn.Flatten(),
        )
        self.head = nn.Linear(4 * width * side * side + num_classes, 2 * latent_dim)

    def forward(self, x: Tensor, c: Tensor) -> tuple[Tensor, Tensor]:
        one_hot = F.one_hot(c.long(), self.num_classes).to(x.dtype)
        mean, log_var = self.head(torch.cat([self.conv(x), one_hot], dim=1)).chunk(2, dim=1)
        return mean, log_var.clamp(-10.0, 10.0)


class CVAE(nn.Module):
    """Encoder and decoder, and the negative evidence lower bound that trains them (Kingma & Welling,
    2014; conditioned on the label as in Sohn et al., 2015), with a Bernoulli likelihood of the
    pixel intensities and a standard normal prior."""

    def __init__(
        self, latent_dim: int = 16, num_classes: int = 10, image_size: int = 32, channels: int = 1, width: int = 32
    ) -> None:
        super().__init__()
        self.encoder = CVAEEncoder(latent_dim, num_classes, image_size, channels, width)
        self.decoder = CVAEDecoder(latent_dim, num_classes, image_size, channels, width)

    def loss(self, images: Tensor, labels: Tensor) -> tuple[Tensor, Tensor]:
        """Reconstruction and KL terms per image (nats), for images in ``[-1, 1]``."""
        mean, log_var = self.encoder(images, labels)
        z = mean + torch.randn_like(mean) * (0.5 * log_var).exp()
        target = (images + 1.0) / 2.0
        recon = F.binary_cross_entropy_with_logits(self.decoder.logits(z, labels), target, reduction="sum")
        kl = 0.5 * (mean.square() + log_var.exp() - 1.0 - log_var).sum()
        n = images.shape[0]
        return recon / n, kl / n
