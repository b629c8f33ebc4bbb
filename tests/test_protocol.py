"""The generator protocol: any (z, c) -> image module plugs in; anything else is named and refused."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from palm_lightning.nn.protocols import (
    ConditionalGenerator,
    GeneratorProtocolError,
    WSpaceGenerator,
    check_generator,
    check_w_space_generator,
)


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


def test_a_module_without_forward_names_it() -> None:
    class NoForward(nn.Module):
        latent_dim, num_classes, image_shape = 4, 2, (1, 8, 8)

    with pytest.raises(GeneratorProtocolError, match="NoForward is not a conditional generator: missing forward"):
        check_generator(NoForward())


def test_a_forward_that_fails_on_the_probe_is_named() -> None:
    class OneArgument(LinearDecoder):
        def forward(self, z: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
            return z

    with pytest.raises(GeneratorProtocolError, match=r"OneArgument\(z, c\) failed on two random latents .*TypeError"):
        check_generator(OneArgument())


# --- the w-space protocol -----------------------------------------------------------------------


class WLinearDecoder(LinearDecoder):
    """A user's generator with a w-space of its own: w = tanh(A [z, onehot(c)]), image = B w."""

    w_dim = 6

    def __init__(self) -> None:
        super().__init__()
        self.mapping = WMapping()
        self.synthesis_net = nn.Linear(6, 64)

    def broadcast(self, w: torch.Tensor) -> torch.Tensor:
        return w

    def synthesis(self, ws: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        return torch.tanh(self.synthesis_net(ws)).view(-1, 1, 8, 8)


class WMapping(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Linear(4 + 2, 6)
        self.register_buffer("w_avg", torch.zeros(2, 6))

    def forward(self, z: torch.Tensor, c: torch.Tensor, truncation_psi: float = 1.0) -> torch.Tensor:
        w = torch.tanh(self.net(torch.cat([z, nn.functional.one_hot(c, 2).float()], dim=1)))
        return torch.lerp(self.w_avg[c], w, truncation_psi)


def test_w_space_generators_pass() -> None:
    from tests.palm_fixtures import tiny_generator

    for generator in (WLinearDecoder(), tiny_generator()):
        check_generator(generator)
        check_w_space_generator(generator)
        assert isinstance(generator, WSpaceGenerator)
    assert isinstance(LinearDecoder(), ConditionalGenerator) and not isinstance(LinearDecoder(), WSpaceGenerator)


def test_w_space_names_every_missing_member() -> None:
    missing = "LinearDecoder has no w-space: missing w_dim, mapping, synthesis, broadcast"
    with pytest.raises(GeneratorProtocolError, match=missing):
        check_w_space_generator(LinearDecoder())
    g = WLinearDecoder()
    del g.mapping.w_avg  # a mapping without the per-class mean w
    with pytest.raises(GeneratorProtocolError, match=r"missing mapping\.w_avg\. latent_space='w' needs"):
        check_w_space_generator(g)


def test_w_space_shapes_are_checked() -> None:
    g = WLinearDecoder()
    g.mapping.w_avg = torch.zeros(1, 6)  # one mean for all classes: not per-class
    per_class = r"w_avg must be a \(num_classes, w_dim\) = \(2, 6\) tensor of per-class mean w's, got \(1, 6\)"
    with pytest.raises(GeneratorProtocolError, match=per_class):
        check_w_space_generator(g)
    g = WLinearDecoder()
    g.mapping.forward = lambda z, c, truncation_psi=1.0: torch.zeros(z.shape[0], 3)  # 3-d w's, not w_dim = 6
    with pytest.raises(GeneratorProtocolError, match=r"must return \(2, w_dim\) = \(2, 6\), got \(2, 3\)"):
        check_w_space_generator(g)
    g = WLinearDecoder()
    g.synthesis = lambda ws, noise_mode="const": torch.zeros(ws.shape[0], 1, 4, 4)  # type: ignore[method-assign]
    with pytest.raises(GeneratorProtocolError, match=r"synthesis\(broadcast\(w\)\) must return images \(2, 1, 8, 8\)"):
        check_w_space_generator(g)
