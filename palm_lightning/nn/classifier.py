"""A small supervised CNN: the reference classifier that scores generated images.

Its penultimate layer is the feature space of the Fréchet distance
(:mod:`palm_lightning.metrics.frechet`), in the spirit of FID but with a network trained on the
dataset itself, which is what can be done offline for Fashion-MNIST.
"""

from __future__ import annotations

from torch import Tensor, nn


def conv_bn_relu(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1, bias=False),
        nn.BatchNorm2d(out_channels),
        nn.ReLU(inplace=True),
    )


class ConvClassifier(nn.Module):
    """VGG-style CNN: three stages (two 3×3 conv-BN-ReLU each, then 2×2 max-pool), global
    average pooling, a ``feature_dim`` hidden layer and a linear head.

    Args:
        in_channels: image channels (1 for Fashion-MNIST).
        num_classes: output classes.
        widths: channels of the three stages.
        feature_dim: size of the penultimate features (used for the Fréchet distance).
        dropout: dropout before the head.
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: tuple[int, int, int] = (16, 32, 64),
        feature_dim: int = 256,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.config = dict(
            in_channels=in_channels,
            num_classes=num_classes,
            widths=tuple(widths),
            feature_dim=feature_dim,
            dropout=dropout,
        )
        layers: list[nn.Module] = []
        c = in_channels
        for w in widths:
            layers += [conv_bn_relu(c, w), conv_bn_relu(w, w), nn.MaxPool2d(2)]
            c = w
        self.body = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.neck = nn.Sequential(nn.Linear(c, feature_dim), nn.ReLU(inplace=True))
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.in_channels = in_channels

    def features(self, x: Tensor) -> Tensor:
        """Penultimate features ``(N, feature_dim)``."""
        return self.neck(self.body(x))

    def forward(self, x: Tensor) -> Tensor:
        return self.head(self.features(x))
