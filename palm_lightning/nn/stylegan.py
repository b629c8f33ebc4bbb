"""A compact class-conditional StyleGAN2 (generator and projection discriminator).

Plain ``nn.Module`` building blocks; the training logic lives in
:class:`palm_lightning.models.generators.stylegan.ConditionalStyleGAN`.

What is kept from StyleGAN2 (Karras et al., 2020): a mapping network z → w with a learning-rate
multiplier and a tracked ``w_avg`` for the truncation trick; a learned constant input; modulated /
demodulated 3×3 convolutions; per-layer noise with learned strength; skip-style ``toRGB`` outputs
summed across resolutions; equalised learning rate everywhere; a residual discriminator with a
minibatch-standard-deviation layer.

What is ours (documented choices, all parameters):

- Conditioning of the generator: the class label goes through a learned embedding that is
  second-moment normalised and concatenated with the normalised z before the mapping MLP (as in
  StyleGAN2-ADA's conditional configuration). The discriminator conditions by *projection*
  (Miyato & Koyama, 2018): ``D(x, c) = ψ(φ(x)) + ⟨embed(c), φ(x)⟩``.
- Modulated convolution uses the "non-fused" form (scale the input channels, convolve with the
  shared weight, rescale the output channels by the demodulation coefficients). It is
  mathematically identical to the grouped-convolution form and much faster on CPU.
- Upsampling is bilinear ×2 before the convolution and downsampling is 2×2 average pooling,
  in place of StyleGAN2's FIR-filtered transposed convolutions: simpler, and adequate at ≤ 64 px.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import cast

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NOISE_MODES = ("random", "const", "none")


def normalize_2nd_moment(x: Tensor, dim: int = 1, eps: float = 1e-8) -> Tensor:
    """Scale ``x`` to unit root-mean-square along ``dim`` (StyleGAN's pixel norm for latents)."""
    return x * (x.square().mean(dim=dim, keepdim=True) + eps).rsqrt()


def channels_for(resolution: int, channel_base: int, channel_max: int) -> int:
    """StyleGAN's channel schedule: ``min(channel_base // resolution, channel_max)``."""
    return max(1, min(channel_base // resolution, channel_max))


class EqualizedLinear(nn.Module):
    """Linear layer with equalised learning rate (weights scaled at run time, not at init)."""

    def __init__(
        self,
        in_features: int,
        out_features: int,
        bias: bool = True,
        bias_init: float = 0.0,
        lr_multiplier: float = 1.0,
        activation: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_features, in_features) / lr_multiplier)
        self.bias = nn.Parameter(torch.full((out_features,), float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier
        self.activation = activation

    def forward(self, x: Tensor) -> Tensor:
        bias = self.bias * self.bias_gain if self.bias is not None else None
        x = F.linear(x, self.weight * self.weight_gain, bias)
        if self.activation:
            x = F.leaky_relu(x, 0.2) * math.sqrt(2.0)
        return x


class EqualizedConv2d(nn.Module):
    """Plain (unmodulated) conv with equalised learning rate, used by the discriminator."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        bias: bool = True,
        activation: bool = False,
        down: bool = False,
    ) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2
        self.activation = activation
        self.down = down

    def forward(self, x: Tensor) -> Tensor:
        x = F.conv2d(x, self.weight * self.weight_gain, self.bias, padding=self.padding)
        if self.down:
            x = F.avg_pool2d(x, 2)
        if self.activation:
            x = F.leaky_relu(x, 0.2) * math.sqrt(2.0)
        return x


class MappingNetwork(nn.Module):
    """z (+ class embedding) → w through an MLP; tracks ``w_avg`` for truncation.

    Args:
        z_dim: size of the input latent z.
        w_dim: size of the intermediate latent w.
        num_classes: number of class labels (0 = unconditional).
        num_layers: depth of the MLP.
        lr_multiplier: StyleGAN's 0.01: the mapping learns 100× slower than the synthesis net.
        w_avg_beta: decay of the running mean of w used by the truncation trick.
    """

    w_avg: Tensor  # buffer (registered in __init__)

    def __init__(
        self,
        z_dim: int,
        w_dim: int,
        num_classes: int,
        num_layers: int = 4,
        lr_multiplier: float = 0.01,
        w_avg_beta: float = 0.995,
    ) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_classes = z_dim, w_dim, num_classes
        self.w_avg_beta = w_avg_beta
        self.embed = EqualizedLinear(num_classes, w_dim) if num_classes > 0 else None
        in_features = z_dim + (w_dim if num_classes > 0 else 0)
        layers = []
        for i in range(num_layers):
            layers.append(
                EqualizedLinear(
                    in_features if i == 0 else w_dim,
                    w_dim,
                    lr_multiplier=lr_multiplier,
                    activation=True,
                )
            )
        self.net = nn.Sequential(*layers)
        # One running mean of w per class: truncating towards the *class* mean keeps the class
        # identity, which truncating towards the global mean would blur.
        self.register_buffer("w_avg", torch.zeros(max(num_classes, 1), w_dim))

    def forward(
        self, z: Tensor, c: Tensor | None = None, truncation_psi: float = 1.0, update_w_avg: bool = False
    ) -> Tensor:
        x = normalize_2nd_moment(z)
        class_index = torch.zeros(z.shape[0], dtype=torch.long, device=z.device)
        if self.embed is not None:
            if c is None:
                raise ValueError("this mapping network is class-conditional: pass class labels c")
            class_index = c.long()
            one_hot = F.one_hot(class_index, self.num_classes).to(z.dtype)
            x = torch.cat([x, normalize_2nd_moment(self.embed(one_hot))], dim=1)
        w = self.net(x)
        if update_w_avg:
            with torch.no_grad():
                sums = torch.zeros_like(self.w_avg).index_add_(0, class_index, w.detach().float())
                counts = torch.bincount(class_index, minlength=self.w_avg.shape[0]).unsqueeze(1)
                seen = counts.squeeze(1) > 0
                means = sums[seen] / counts[seen]
                self.w_avg[seen] = torch.lerp(means, self.w_avg[seen], self.w_avg_beta)
        if truncation_psi != 1.0:
            w = torch.lerp(self.w_avg[class_index].to(w.dtype), w, truncation_psi)
        return w


class ModulatedConv2d(nn.Module):
    """StyleGAN2's modulated (and optionally demodulated) convolution, non-fused form."""

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        w_dim: int,
        demodulate: bool = True,
        up: bool = False,
    ) -> None:
        super().__init__()
        self.affine = EqualizedLinear(w_dim, in_channels, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(out_channels, in_channels, kernel_size, kernel_size))
        self.weight_gain = 1.0 / math.sqrt(in_channels * kernel_size * kernel_size)
        self.padding = kernel_size // 2
        self.demodulate = demodulate
        self.up = up

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        styles = self.affine(w)  # (N, in)
        weight = self.weight * self.weight_gain
        if self.up:
            x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = x * styles[:, :, None, None]
        x = F.conv2d(x, weight, padding=self.padding)
        if self.demodulate:
            # d[n, o] = 1 / sqrt(sum_{i,k} (w[o,i,k] * s[n,i])^2)
            demod = (styles.square() @ weight.square().sum(dim=(2, 3)).t() + 1e-8).rsqrt()
            x = x * demod[:, :, None, None]
        return x


class SynthesisLayer(nn.Module):
    """Modulated conv → per-pixel noise (learned strength) → bias → leaky ReLU."""

    noise_const: Tensor  # buffer (registered in __init__)

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: bool = False) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, out_channels, 3, w_dim, up=up)
        self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))

    def forward(self, x: Tensor, w: Tensor, noise_mode: str = "random") -> Tensor:
        x = self.conv(x, w)
        if noise_mode == "random":
            noise = torch.randn(x.shape[0], 1, x.shape[2], x.shape[3], device=x.device, dtype=x.dtype)
            x = x + noise * self.noise_strength
        elif noise_mode == "const":
            x = x + self.noise_const.to(x.dtype) * self.noise_strength
        x = x + self.bias[None, :, None, None]
        return F.leaky_relu(x, 0.2) * math.sqrt(2.0)


class ToRGB(nn.Module):
    """1×1 modulated conv without demodulation, producing an image residual at this resolution."""

    def __init__(self, in_channels: int, img_channels: int, w_dim: int) -> None:
        super().__init__()
        self.conv = ModulatedConv2d(in_channels, img_channels, 1, w_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(img_channels))

    def forward(self, x: Tensor, w: Tensor) -> Tensor:
        return self.conv(x, w) + self.bias[None, :, None, None]


class SynthesisBlock(nn.Module):
    """One resolution of the synthesis network: (upsample) conv, conv, toRGB skip."""

    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int) -> None:
        super().__init__()
        self.is_first = in_channels == 0
        if self.is_first:
            self.const = nn.Parameter(torch.randn(out_channels, resolution, resolution))
            self.conv0 = None
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=True)
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution)
        self.torgb = ToRGB(out_channels, img_channels, w_dim)
        self.num_ws = 2 if self.is_first else 3  # w's consumed (convs + toRGB)

    def forward(self, x: Tensor | None, img: Tensor | None, ws: Tensor, noise_mode: str) -> tuple[Tensor, Tensor]:
        i = 0
        if self.is_first:
            x = self.const.unsqueeze(0).expand(ws.shape[0], -1, -1, -1)
        else:
            assert x is not None and self.conv0 is not None
            x = self.conv0(x, ws[:, i], noise_mode)
            i += 1
        x = self.conv1(x, ws[:, i], noise_mode)
        i += 1
        y = self.torgb(x, ws[:, i])
        if img is not None:
            img = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
            y = y + img
        return x, y


class SynthesisNetwork(nn.Module):
    """w⁺ (one w per layer) → image, from a learned 4×4 constant up to ``img_resolution``."""

    def __init__(
        self,
        w_dim: int,
        img_resolution: int,
        img_channels: int,
        channel_base: int = 512,
        channel_max: int = 128,
    ) -> None:
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise ValueError(f"img_resolution must be a power of two ≥ 4, got {img_resolution}")
        self.resolutions = [2**i for i in range(2, int(math.log2(img_resolution)) + 1)]
        blocks: list[SynthesisBlock] = []
        in_ch = 0
        for res in self.resolutions:
            out_ch = channels_for(res, channel_base, channel_max)
            blocks.append(SynthesisBlock(in_ch, out_ch, w_dim, res, img_channels))
            in_ch = out_ch
        self.blocks = nn.ModuleList(blocks)
        # Consecutive blocks share one w at the boundary (the toRGB of block k and conv0 of k+1).
        self.num_ws = sum(b.num_ws for b in blocks) - (len(blocks) - 1)

    def forward(self, ws: Tensor, noise_mode: str = "random") -> Tensor:
        if noise_mode not in NOISE_MODES:
            raise ValueError(f"noise_mode must be one of {NOISE_MODES}, got {noise_mode!r}")
        x = img = None
        w_index = 0
        for block in cast("Iterable[SynthesisBlock]", self.blocks):
            x, img = block(x, img, ws[:, w_index : w_index + block.num_ws], noise_mode)
            w_index += block.num_ws - 1
        assert img is not None
        return img


class StyleGANGenerator(nn.Module):
    """Class-conditional StyleGAN2 generator following the package's generator protocol.

    ``forward(z, c)`` returns images in ``[-1, 1]`` of shape ``(N, *image_shape)``; ``c`` holds
    integer class labels. :meth:`mapping` and :meth:`synthesis` are exposed separately so the
    latent environment can work in w-space and training can see the raw (unclamped) output.

    Args:
        z_dim: latent size (the protocol's ``latent_dim``).
        w_dim: intermediate latent size.
        num_classes: number of class labels.
        img_resolution: output side length, a power of two (32 for the Fashion-MNIST default).
        img_channels: 1 for grayscale, 3 for RGB.
        mapping_layers: depth of the mapping MLP.
        channel_base, channel_max: channels per resolution ``min(channel_base // res, channel_max)``.
    """

    def __init__(
        self,
        z_dim: int = 64,
        w_dim: int = 128,
        num_classes: int = 10,
        img_resolution: int = 32,
        img_channels: int = 1,
        mapping_layers: int = 4,
        channel_base: int = 512,
        channel_max: int = 128,
    ) -> None:
        super().__init__()
        self.config = dict(
            z_dim=z_dim,
            w_dim=w_dim,
            num_classes=num_classes,
            img_resolution=img_resolution,
            img_channels=img_channels,
            mapping_layers=mapping_layers,
            channel_base=channel_base,
            channel_max=channel_max,
        )
        self.z_dim, self.w_dim = z_dim, w_dim
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, channel_base, channel_max)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, w_dim, num_classes, mapping_layers)
        self._num_classes = num_classes
        self._image_shape = (img_channels, img_resolution, img_resolution)

    # --- generator protocol -------------------------------------------------------------------
    @property
    def latent_dim(self) -> int:
        return self.z_dim

    @property
    def num_classes(self) -> int:
        return self._num_classes

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return self._image_shape

    def forward(self, z: Tensor, c: Tensor, truncation_psi: float = 1.0, noise_mode: str = "const") -> Tensor:
        """Decode latents ``z`` (N, z_dim) with labels ``c`` (N,) into images in ``[-1, 1]``.

        ``noise_mode='const'`` by default so the same ``(z, c)`` always gives the same image,
        which the latent environment relies on; training uses ``'random'``.
        """
        return self.generate(z, c, truncation_psi, noise_mode).clamp(-1.0, 1.0)

    # --- StyleGAN specifics -------------------------------------------------------------------
    def broadcast(self, w: Tensor) -> Tensor:
        """(N, w_dim) → (N, num_ws, w_dim): the same w for every layer."""
        return w.unsqueeze(1).expand(-1, self.num_ws, -1)

    def generate(
        self,
        z: Tensor,
        c: Tensor,
        truncation_psi: float = 1.0,
        noise_mode: str = "random",
        update_w_avg: bool = False,
    ) -> Tensor:
        """Raw (unclamped) synthesis output, as the discriminator sees it during training."""
        w = self.mapping(z, c, truncation_psi=truncation_psi, update_w_avg=update_w_avg)
        return self.synthesis(self.broadcast(w), noise_mode=noise_mode)


class MinibatchStd(nn.Module):
    """Append the across-group standard deviation as a feature map (StyleGAN's mbstd layer)."""

    def __init__(self, group_size: int = 4, num_features: int = 1) -> None:
        super().__init__()
        self.group_size, self.num_features = group_size, num_features

    def forward(self, x: Tensor) -> Tensor:
        n, c, h, w = x.shape
        g = min(self.group_size, n)
        while n % g:
            g -= 1
        f = self.num_features
        y = x.reshape(g, -1, f, c // f, h, w)
        y = (y - y.mean(dim=0)).square().mean(dim=0)
        y = (y + 1e-8).sqrt().mean(dim=(2, 3, 4)).reshape(-1, f, 1, 1)
        y = y.repeat(g, 1, h, w)
        return torch.cat([x, y], dim=1)


class DiscriminatorBlock(nn.Module):
    """Residual block: conv, conv + 2× down, with a 1×1 downsampled skip; sum scaled by 1/√2."""

    def __init__(self, in_channels: int, out_channels: int) -> None:
        super().__init__()
        self.conv0 = EqualizedConv2d(in_channels, in_channels, 3, activation=True)
        self.conv1 = EqualizedConv2d(in_channels, out_channels, 3, activation=True, down=True)
        self.skip = EqualizedConv2d(in_channels, out_channels, 1, bias=False, down=True)

    def forward(self, x: Tensor) -> Tensor:
        return (self.skip(x) + self.conv1(self.conv0(x))) * math.sqrt(0.5)


class ProjectionDiscriminator(nn.Module):
    """Residual class-conditional discriminator with a projection head.

    Returns one logit per image: ``out(φ(x)) + ⟨embed(c), φ(x)⟩ / √dim``.
    """

    def __init__(
        self,
        num_classes: int = 10,
        img_resolution: int = 32,
        img_channels: int = 1,
        channel_base: int = 512,
        channel_max: int = 128,
        mbstd_group_size: int = 4,
    ) -> None:
        super().__init__()
        self.num_classes = num_classes
        resolutions = [2**i for i in range(int(math.log2(img_resolution)), 2, -1)]  # 32,16,8

        def ch(r: int) -> int:
            return channels_for(r, channel_base, channel_max)

        self.from_rgb = EqualizedConv2d(img_channels, ch(img_resolution), 1, activation=True)
        self.blocks = nn.Sequential(*[DiscriminatorBlock(ch(r), ch(r // 2)) for r in resolutions])
        top = ch(4)
        self.mbstd = MinibatchStd(mbstd_group_size)
        self.conv = EqualizedConv2d(top + 1, top, 3, activation=True)
        self.fc = EqualizedLinear(top * 16, top, activation=True)
        self.out = EqualizedLinear(top, 1)
        self.embed = EqualizedLinear(num_classes, top, bias=False) if num_classes > 0 else None
        self.feature_dim = top

    def forward(self, img: Tensor, c: Tensor | None = None) -> Tensor:
        x = self.blocks(self.from_rgb(img))
        x = self.conv(self.mbstd(x))
        h = self.fc(x.flatten(1))
        logit = self.out(h).squeeze(1)
        if self.embed is not None:
            if c is None:
                raise ValueError("this discriminator is class-conditional: pass class labels c")
            e = self.embed(F.one_hot(c.long(), self.num_classes).to(h.dtype))
            logit = logit + (e * h).sum(dim=1) / math.sqrt(self.feature_dim)
        return logit
