"""Image encoders: the representation PALM learns and the probes evaluate.

The package-wide encoder contract (what a network file of kind ``"encoder"`` holds): an
``nn.Module`` with ``image_shape`` ``(C, H, W)``, ``out_dim`` (feature size) and a ``config`` dict
of its constructor arguments, whose ``forward`` maps images in ``[-1, 1]`` (the ``symmetric``
normalisation of the image DataModules, and the generator's output range) to ``(N, out_dim)``
features.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from palm_lightning.nn.blocks import orthogonal_init_


class DrQEncoder(nn.Module):
    """DrQ-v2's pixel encoder plus a linear head to a compact representation.

    Four 3×3 convolutions of ``channels`` filters (the first with stride 2), ReLU between, as in
    DrQ-v2/URLB; inputs in ``[-1, 1]`` are halved to DrQ's ``[-0.5, 0.5]``. The flattened conv map
    is large (2592 values for 32×32 inputs) and, random or trained, is mostly spatial detail; the
    ``Linear → LayerNorm`` head to ``repr_dim`` (our choice, 256 by default; ``repr_dim=None``
    keeps the flat conv features) gives the Siamese objective, the APT particles and the probes one
    compact representation. Batch norm is avoided on purpose: the acting policy encodes single
    frames and batch statistics would make actions depend on the other environments.

    ``weight_init``: ``"default"`` (PyTorch's) or ``"orthogonal"`` (DrQ-v2's ``weight_init``:
    orthogonal convolutions with ReLU gain and linear layers, zero biases). It is part of
    ``config``, so an untrained copy rebuilt from a network file starts the same way.
    """

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 32, 32),
        channels: int = 32,
        num_layers: int = 4,
        repr_dim: int | None = 256,
        weight_init: str = "default",
    ) -> None:
        super().__init__()
        shape = tuple(int(s) for s in image_shape)  # lists from a YAML file too
        if len(shape) != 3:
            raise ValueError(f"image_shape must be (C, H, W), got {shape}")
        if weight_init not in ("default", "orthogonal"):
            raise ValueError(f"weight_init must be 'default' or 'orthogonal', got {weight_init!r}")
        self.config = {
            "image_shape": shape,
            "channels": channels,
            "num_layers": num_layers,
            "repr_dim": repr_dim,
            "weight_init": weight_init,
        }
        self.image_shape = shape
        self.channels = channels  # of every convolution
        layers: list[nn.Module] = [nn.Conv2d(shape[0], channels, 3, stride=2), nn.ReLU()]
        for _ in range(num_layers - 1):
            layers += [nn.Conv2d(channels, channels, 3, stride=1), nn.ReLU()]
        self.convnet = nn.Sequential(*layers)
        with torch.no_grad():
            conv_dim = self.convnet(torch.zeros(1, *shape)).flatten(1).shape[1]
        self.conv_dim = conv_dim
        self.head = (
            nn.Identity() if repr_dim is None else nn.Sequential(nn.Linear(conv_dim, repr_dim), nn.LayerNorm(repr_dim))
        )
        self.out_dim = conv_dim if repr_dim is None else repr_dim
        if weight_init == "orthogonal":
            orthogonal_init_(self)

    def forward(self, images: Tensor) -> Tensor:
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{type(self).__name__} expects images of shape (N, {', '.join(map(str, self.image_shape))}), "
                f"got {tuple(images.shape)}"
            )
        return self.head(self.convnet(images * 0.5).flatten(1))

    def forward_with_map(self, images: Tensor, map_layers: int) -> tuple[Tensor, Tensor]:
        """The output of :meth:`forward` and, from the same pass, the feature map after the first
        ``map_layers`` convolutions (and their ReLU): ``(N, channels, H', W')``. For local
        objectives (ST-DIM) that score the cells of a conv map."""
        num_convs = len(self.convnet) // 2
        if not 1 <= map_layers <= num_convs:
            raise ValueError(f"map_layers must be in [1, {num_convs}] (the encoder's convolutions), got {map_layers}")
        if tuple(images.shape[1:]) != self.image_shape:
            self(images)  # raises the shape error of forward
        feature_map = self.convnet[: 2 * map_layers](images * 0.5)
        rest = self.convnet[2 * map_layers :](feature_map)
        return self.head(rest.flatten(1)), feature_map


class PixelEncoder(nn.Module):
    """Raw pixels as features (the probe baseline): flattens ``(N, C, H, W)`` to ``(N, C·H·W)``.

    ``pool`` > 1 averages ``pool × pool`` blocks first (``C·H·W / pool²`` features). Why: a linear probe's
    cost grows with the feature size, and on a CPU some probes (AtariARI's 256-way heads per RAM variable)
    cannot afford full-resolution pixels; pooled pixels keep the baseline affordable at a stated resolution.
    """

    def __init__(self, image_shape: tuple[int, int, int] = (1, 32, 32), pool: int = 1) -> None:
        super().__init__()
        shape = tuple(int(s) for s in image_shape)
        if pool < 1 or shape[1] % pool or shape[2] % pool:
            raise ValueError(f"PixelEncoder: pool={pool} must be a positive divisor of the image size {shape[1:]}")
        self.config = {"image_shape": shape, "pool": pool}
        self.image_shape = shape
        self.pool = pool
        self.out_dim = shape[0] * (shape[1] // pool) * (shape[2] // pool)

    def forward(self, images: Tensor) -> Tensor:
        if tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(f"PixelEncoder expects images of shape (N, {self.image_shape}), got {tuple(images.shape)}")
        if self.pool > 1:
            images = F.avg_pool2d(images, self.pool)
        return images.flatten(1)
