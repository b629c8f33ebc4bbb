"""The generator protocol: any (z, c) -> image module plugs in; anything else is named and refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from palm_lightning.nn.protocols import GeneratorProtocolError, check_generator


class LinearDecoder(nn.Module):
    """A user's own conditional generator: not a StyleGAN, follows the protocol."""

    latent_dim = 4
    num_classes = 2
    image_shape = (1, 8, 8)

    def __init__(self, scale: float = 1.0) -> None:
        super().__init__()
        self.net = nn.Linear(4 + 2, 64)
        self.scale = scale

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        x = torch.cat([z, nn.functional.one_hot(c, 2).float()], dim=1)
        return (self.scale * torch.tanh(self.net(x))).view(-1, 1, 8, 8)


def test_a_user_generator_passes() -> None:
    check_generator(LinearDecoder())


def test_missing_attribute_is_named() -> None:
    class NoShape(nn.Module):
        latent_dim, num_classes = 4, 2

        def forward(self, z, c):
            return z

    with pytest.raises(GeneratorProtocolError, match="image_shape"):
        check_generator(NoShape())


def test_wrong_output_shape_is_named() -> None:
    g = LinearDecoder()
    g.image_shape = (1, 4, 16)
    with pytest.raises(GeneratorProtocolError, match=r"\(2, 1, 4, 16\)"):
        check_generator(g)


def test_out_of_range_output_is_refused() -> None:
    with pytest.raises(GeneratorProtocolError, match=r"\[-1, 1\]"):
        check_generator(LinearDecoder(scale=5.0))


def test_bad_latent_dim_is_refused() -> None:
    g = LinearDecoder()
    g.latent_dim = 0
    with pytest.raises(GeneratorProtocolError, match="latent_dim"):
        check_generator(g)
