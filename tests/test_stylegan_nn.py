"""The StyleGAN building blocks, checked against their definitions."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from palm_lightning.nn.protocols import ConditionalGenerator, check_generator
from palm_lightning.nn.stylegan import (
    MappingNetwork,
    MinibatchStd,
    ModulatedConv2d,
    ProjectionDiscriminator,
    StyleGANGenerator,
)

SMALL = dict(z_dim=8, w_dim=16, num_classes=3, channel_base=64, channel_max=16, mapping_layers=2)


def grouped_modconv_reference(layer: ModulatedConv2d, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
    """StyleGAN2's fused form: per-sample modulated weights applied as a grouped convolution."""
    styles = layer.affine(w)
    weight = layer.weight * layer.weight_gain
    n = x.shape[0]
    wn = weight.unsqueeze(0) * styles[:, None, :, None, None]
    if layer.demodulate:
        wn = wn * (wn.square().sum(dim=(2, 3, 4), keepdim=True) + 1e-8).rsqrt()
    out_ch = weight.shape[0]
    out = F.conv2d(x.reshape(1, -1, *x.shape[2:]), wn.reshape(-1, *weight.shape[1:]), padding=layer.padding, groups=n)
    return out.reshape(n, out_ch, *out.shape[2:])


@pytest.mark.parametrize("demodulate", [True, False])
def test_nonfused_modulated_conv_equals_grouped_form(demodulate: bool) -> None:
    torch.manual_seed(0)
    layer = ModulatedConv2d(5, 7, 3, w_dim=6, demodulate=demodulate)
    torch.nn.init.normal_(layer.affine.bias)  # styles far from 1, so modulation matters
    x, w = torch.randn(4, 5, 8, 8), torch.randn(4, 6)
    torch.testing.assert_close(layer(x, w), grouped_modconv_reference(layer, x, w), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("resolution,channels", [(16, 1), (32, 3), (64, 1)])
def test_generator_shapes_range_and_protocol(resolution: int, channels: int) -> None:
    g = StyleGANGenerator(img_resolution=resolution, img_channels=channels, **SMALL).eval()
    assert isinstance(g, ConditionalGenerator)
    check_generator(g)
    z, c = torch.randn(5, 8), torch.tensor([0, 1, 2, 0, 1])
    images = g(z, c)
    assert images.shape == (5, channels, resolution, resolution)
    assert images.min() >= -1 and images.max() <= 1
    assert g.image_shape == (channels, resolution, resolution) and g.latent_dim == 8 and g.num_classes == 3


def test_const_noise_is_deterministic_and_random_noise_is_not() -> None:
    torch.manual_seed(0)
    g = StyleGANGenerator(img_resolution=16, **SMALL)
    for layer in g.modules():
        if hasattr(layer, "noise_strength"):
            layer.noise_strength.data.fill_(0.5)
    z, c = torch.randn(2, 8), torch.tensor([0, 2])
    torch.testing.assert_close(g(z, c), g(z, c))
    assert not torch.allclose(g.generate(z, c, noise_mode="random"), g.generate(z, c, noise_mode="random"))
    assert not torch.allclose(g(z, c, noise_mode="none"), g(z, c, noise_mode="const"))


def test_class_label_changes_the_image() -> None:
    torch.manual_seed(0)
    g = StyleGANGenerator(img_resolution=16, **SMALL)
    z = torch.randn(1, 8).repeat(3, 1)
    images = g(z, torch.tensor([0, 1, 2]))
    assert (images[0] - images[1]).abs().mean() > 1e-3 and (images[1] - images[2]).abs().mean() > 1e-3


def test_truncation_zero_gives_the_class_mean_w() -> None:
    torch.manual_seed(0)
    mapping = MappingNetwork(8, 16, num_classes=3, num_layers=2, w_avg_beta=0.0)
    c = torch.tensor([0, 0, 1, 2])
    w = mapping(torch.randn(4, 8), c, update_w_avg=True)  # beta 0: w_avg := this batch's class means
    torch.testing.assert_close(mapping.w_avg[0], w[:2].mean(0))
    torch.testing.assert_close(mapping.w_avg[2], w[3])
    w0 = mapping(torch.randn(4, 8), c, truncation_psi=0.0)
    torch.testing.assert_close(w0, mapping.w_avg[c])


def test_projection_discriminator_depends_on_the_label() -> None:
    torch.manual_seed(0)
    d = ProjectionDiscriminator(num_classes=3, img_resolution=16, img_channels=1, channel_base=64, channel_max=16)
    x = torch.randn(4, 1, 16, 16)
    out0 = d(x, torch.zeros(4, dtype=torch.long))
    out1 = d(x, torch.ones(4, dtype=torch.long))
    assert out0.shape == (4,)
    assert not torch.allclose(out0, out1)
    with pytest.raises(ValueError, match="class labels"):
        d(x)


def test_minibatch_std_whole_batch_by_hand() -> None:
    # 2 samples, 2 channels, 1×2 pixels; one group holding the whole batch.
    x = torch.tensor(
        [
            [[[1.0, 0.0]], [[2.0, 5.0]]],
            [[[3.0, 4.0]], [[6.0, 5.0]]],
        ]
    )
    out = MinibatchStd(group_size=2)(x)
    assert out.shape == (2, 3, 1, 2)
    torch.testing.assert_close(out[:, :2], x)  # the input channels pass through untouched
    # population std of each (channel, pixel) over the 2 samples = |a − b| / 2: 1, 2, 2, 0;
    # their mean is 5/4 (the zero one is sqrt(1e-8) = 1e-4 in the layer: (1 + 2 + 2 + 1e-4)/4)
    torch.testing.assert_close(out[:, 2], torch.full((2, 1, 2), 1.25), atol=1e-4, rtol=0)


def test_minibatch_std_is_constant_within_each_group_and_uses_only_that_group() -> None:
    # 4 samples of 1 channel at 2×2 pixels, groups of 2. Each sample is a constant image, with
    # values chosen so that the three ways to split 4 samples into pairs give different stds:
    # v = 0, 1, 10, 30 → |Δ|/2 per pair: {0,1}: 0.5, {0,10}: 5, {0,30}: 15, {1,10}: 4.5, {1,30}: 14.5, {10,30}: 10
    values = [0.0, 1.0, 10.0, 30.0]
    x = torch.tensor(values)[:, None, None, None].expand(4, 1, 2, 2).contiguous()
    extra = MinibatchStd(group_size=2)(x)[:, 1]
    assert extra.shape == (4, 2, 2)
    # one value per sample, constant over the image
    assert torch.equal(extra, extra[:, :1, :1].expand(4, 2, 2))
    per_sample = extra[:, 0, 0].tolist()
    pair_std = {frozenset((a, b)): abs(values[a] - values[b]) / 2 for a in range(4) for b in range(4) if a != b}
    partners = {}
    for i in range(4):
        same = [j for j in range(4) if j != i and per_sample[j] == per_sample[i]]
        assert len(same) == 1, f"sample {i} shares its value with {same}: groups of 2 expected"
        partners[i] = same[0]
        # the value is the std of this sample's group, computed by hand
        assert per_sample[i] == pytest.approx(pair_std[frozenset((i, same[0]))], abs=1e-4)
    assert all(partners[partners[i]] == i for i in range(4)), "the groups must partition the batch"
    # changing a sample outside a group leaves that group's value alone
    i, j = 0, partners[0]
    other = next(k for k in range(4) if k not in (i, j))
    y = x.clone()
    y[other] += 7.0
    changed = MinibatchStd(group_size=2)(y)[:, 1, 0, 0]
    assert changed[i] == per_sample[i] and changed[j] == per_sample[j]
    assert changed[other] != per_sample[other]


def test_minibatch_std_group_shrinks_to_divide_the_batch_and_features_split_channels() -> None:
    # batch 3 with group size 4 → one group of 3: population std of (0, 3, 6) = sqrt(6)
    x = torch.tensor([0.0, 3.0, 6.0])[:, None, None, None].expand(3, 1, 1, 1).contiguous()
    out = MinibatchStd(group_size=4)(x)
    torch.testing.assert_close(out[:, 1].flatten(), torch.full((3,), 6.0**0.5))
    # num_features=2 splits the channels into two halves, one std map each
    x2 = torch.zeros(2, 2, 1, 1)
    x2[:, 0, 0, 0] = torch.tensor([0.0, 2.0])  # std 1
    x2[:, 1, 0, 0] = torch.tensor([0.0, 8.0])  # std 4
    out2 = MinibatchStd(group_size=2, num_features=2)(x2)
    assert out2.shape == (2, 4, 1, 1)
    torch.testing.assert_close(out2[:, 2:, 0, 0], torch.tensor([[1.0, 4.0], [1.0, 4.0]]))


def test_bad_resolution_is_refused() -> None:
    with pytest.raises(ValueError, match="power of two"):
        StyleGANGenerator(img_resolution=28, **SMALL)
