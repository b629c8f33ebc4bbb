"""Batched image augmentations that run on the training device, one random draw per image.

Inputs are float images ``(N, C, H, W)`` in ``[-1, 1]`` (the ``symmetric`` normalisation of the
image DataModules and the generator's output range); outputs have the same shape, dtype, device
and range. Nothing here loops over images or touches PIL: a machine with few CPU cores cannot afford
per-sample DataLoader transforms, and on a GPU the whole batch is augmented in a few kernels.

Every function takes an optional ``generator``: with one, the draws come from it (on the
generator's device, then moved to the images'), so two calls with equally seeded generators
give the same views; without one, the global RNG of the images' device is used.

The recipes:

* :func:`random_shift` — DrQ's augmentation: replicate-pad by ``pad`` then crop back at a random
  integer offset (DrQ-v2 uses ``pad=4`` on 84×84 frames).
* :func:`random_flip_and_shift` — the light supervised augmentation (flip + 2-pixel shift).
* :func:`simsiam_augment` — SimSiam's small-image recipe (Chen & He 2021, CIFAR; solo-learn's
  ``cifar`` pipeline): random resized crop (scale 0.2–1), horizontal flip, colour jitter with
  p = 0.8, random grayscale with p = 0.2 (3-channel only), no blur at 32×32. Of the jitter only
  brightness and contrast are kept (our choice: they are the two that mean something for the
  grayscale Fashion-MNIST the PALM generator draws; saturation and hue are not implemented).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# ITU-R 601 luma weights, as torchvision's rgb_to_grayscale.
_LUMA = (0.299, 0.587, 0.114)


def _check_images(images: Tensor) -> None:
    if images.ndim != 4:
        raise ValueError(f"expected images of shape (N, C, H, W), got {tuple(images.shape)}")
    if not images.is_floating_point():
        raise TypeError(f"expected float images in [-1, 1], got {images.dtype} (normalise uint8 images first)")


def _uniform(n: int, low: float, high: float, images: Tensor, generator: torch.Generator | None) -> Tensor:
    """``n`` draws from U[low, high) as float32 on the images' device."""
    device = generator.device if generator is not None else images.device
    u = torch.rand(n, generator=generator, device=device).to(images.device)
    return low + (high - low) * u


def _bernoulli(n: int, p: float, images: Tensor, generator: torch.Generator | None) -> Tensor:
    """``n`` booleans, each True with probability ``p``, on the images' device."""
    return _uniform(n, 0.0, 1.0, images, generator) < p


def _grayscale(images: Tensor) -> Tensor:
    """Luma ``(N, 1, H, W)`` of 1- or 3-channel images."""
    if images.shape[1] == 1:
        return images
    if images.shape[1] != 3:
        raise ValueError(f"grayscale needs 1 or 3 channels, got {images.shape[1]}")
    weights = images.new_tensor(_LUMA).view(1, 3, 1, 1)
    return (images * weights).sum(1, keepdim=True)


def random_shift(images: Tensor, pad: int = 4, generator: torch.Generator | None = None) -> Tensor:
    """DrQ's random shift: replicate-pad by ``pad`` pixels, crop ``H × W`` at a random integer
    offset per image. ``pad=0`` returns the images unchanged."""
    _check_images(images)
    if pad < 0:
        raise ValueError(f"pad must be >= 0, got {pad}")
    if pad == 0:
        return images
    n, c, h, w = images.shape
    padded = F.pad(images, (pad,) * 4, mode="replicate")
    offsets = (_uniform(2 * n, 0.0, 2 * pad + 1, images, generator).floor().long().clamp_(max=2 * pad)).view(2, n)
    dx, dy = offsets[0], offsets[1]
    device = images.device
    rows = (dy[:, None] + torch.arange(h, device=device)[None]).view(n, 1, h, 1)
    cols = (dx[:, None] + torch.arange(w, device=device)[None]).view(n, 1, 1, w)
    batch = torch.arange(n, device=device).view(n, 1, 1, 1)
    chan = torch.arange(c, device=device).view(1, c, 1, 1)
    return padded[batch, chan, rows, cols]


def random_flip(images: Tensor, p: float = 0.5, generator: torch.Generator | None = None) -> Tensor:
    """Horizontal flip of each image with probability ``p``."""
    _check_images(images)
    flip = _bernoulli(images.shape[0], p, images, generator)
    return torch.where(flip[:, None, None, None], images.flip(3), images)


def random_flip_and_shift(images: Tensor, max_shift: int = 2, generator: torch.Generator | None = None) -> Tensor:
    """Horizontal flip (p = 0.5) then a random translation by up to ``max_shift`` pixels: the light
    augmentation of the supervised models."""
    return random_shift(random_flip(images, 0.5, generator), max_shift, generator)


def random_resized_crop(
    images: Tensor,
    scale: tuple[float, float] = (0.2, 1.0),
    ratio: tuple[float, float] = (3 / 4, 4 / 3),
    generator: torch.Generator | None = None,
) -> Tensor:
    """Crop a random box of area fraction in ``scale`` and aspect ratio (w/h) in ``ratio`` (drawn
    log-uniformly, as torchvision), and resize it back to ``H × W`` with bilinear interpolation.

    One affine sampling grid per image (``affine_grid`` + ``grid_sample``). Where torchvision
    re-draws a box that does not fit and falls back to a centre crop after ten tries, we clamp the
    box's sides to the image (our choice: one draw, no loop; it only slightly shortens the
    extreme aspect ratios of large crops). Crops are never larger than the image, so resizing
    only upsamples and needs no antialiasing.
    """
    _check_images(images)
    if not 0.0 < scale[0] <= scale[1] <= 1.0:
        raise ValueError(f"scale must satisfy 0 < min <= max <= 1, got {tuple(scale)}")
    if not 0.0 < ratio[0] <= ratio[1]:
        raise ValueError(f"ratio must satisfy 0 < min <= max, got {tuple(ratio)}")
    n, _, h, w = images.shape
    area = _uniform(n, scale[0], scale[1], images, generator)
    log_ratio = _uniform(n, math.log(ratio[0]), math.log(ratio[1]), images, generator)
    aspect = log_ratio.exp() * (h / w)  # w/h in pixels → in fractions of each side
    # Box sides as fractions of the image sides (area fraction = fw · fh).
    fw = (area * aspect).sqrt().clamp(max=1.0)
    fh = (area / aspect).sqrt().clamp(max=1.0)
    # Centre in affine_grid's [-1, 1] coordinates, uniform over positions that keep the box inside.
    cx = _uniform(n, -1.0, 1.0, images, generator) * (1.0 - fw)
    cy = _uniform(n, -1.0, 1.0, images, generator) * (1.0 - fh)
    theta = torch.zeros(n, 2, 3, device=images.device, dtype=images.dtype)
    theta[:, 0, 0], theta[:, 0, 2] = fw, cx
    theta[:, 1, 1], theta[:, 1, 2] = fh, cy
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def random_brightness_contrast(
    images: Tensor,
    brightness: float = 0.4,
    contrast: float = 0.4,
    p: float = 0.8,
    generator: torch.Generator | None = None,
) -> Tensor:
    """torchvision's ``ColorJitter(brightness, contrast)`` applied with probability ``p`` per image
    (SimSiam: ``RandomApply([ColorJitter(0.4, 0.4, 0.4, 0.1)], p=0.8)``), for 1 or 3 channels.

    In ``[0, 1]`` terms: brightness multiplies by ``b ~ U[1 − brightness, 1 + brightness]``,
    contrast blends with the image's mean luma by ``c ~ U[1 − contrast, 1 + contrast]``, each
    followed by a clamp, as torchvision. torchvision applies the jitters in a random order; we
    always apply brightness first (our choice).
    """
    _check_images(images)
    n = images.shape[0]
    apply = _bernoulli(n, p, images, generator)[:, None, None, None]
    b = _uniform(n, max(0.0, 1.0 - brightness), 1.0 + brightness, images, generator).view(n, 1, 1, 1)
    c = _uniform(n, max(0.0, 1.0 - contrast), 1.0 + contrast, images, generator).view(n, 1, 1, 1)
    x = (images + 1.0) * 0.5
    jittered = (x * b.to(x.dtype)).clamp(0.0, 1.0)
    mean = _grayscale(jittered).mean(dim=(1, 2, 3), keepdim=True)
    jittered = (c.to(x.dtype) * jittered + (1.0 - c.to(x.dtype)) * mean).clamp(0.0, 1.0)
    return torch.where(apply, jittered * 2.0 - 1.0, images)


def random_grayscale(images: Tensor, p: float = 0.2, generator: torch.Generator | None = None) -> Tensor:
    """Replace each 3-channel image by its luma (repeated on the channels) with probability ``p``.
    Single-channel images are returned unchanged (no random draw is spent)."""
    _check_images(images)
    if images.shape[1] == 1:
        return images
    gray = _grayscale(images).expand_as(images)
    apply = _bernoulli(images.shape[0], p, images, generator)[:, None, None, None]
    return torch.where(apply, gray, images)


def simsiam_augment(
    images: Tensor,
    crop_scale: tuple[float, float] = (0.2, 1.0),
    flip_p: float = 0.5,
    brightness: float = 0.4,
    contrast: float = 0.4,
    jitter_p: float = 0.8,
    grayscale_p: float = 0.2,
    generator: torch.Generator | None = None,
) -> Tensor:
    """One SimSiam view of every image: resized crop → flip → brightness/contrast jitter →
    grayscale (3-channel only). Call it twice for the two views."""
    images = random_resized_crop(images, crop_scale, generator=generator)
    images = random_flip(images, flip_p, generator)
    images = random_brightness_contrast(images, brightness, contrast, jitter_p, generator)
    return random_grayscale(images, grayscale_p, generator)
