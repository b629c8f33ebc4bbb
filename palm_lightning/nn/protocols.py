"""The conditional-generator protocol: what the latent environment needs from a decoder.

Any ``nn.Module`` (or callable) with these members plugs in — the package's StyleGAN, your own
GAN, a VAE decoder, a diffusion sampler wrapped to be deterministic::

    class MyGenerator(nn.Module):
        latent_dim = 128                 # size of z
        num_classes = 10                 # labels c are integers in [0, num_classes)
        image_shape = (3, 32, 32)        # (C, H, W) of the output

        def forward(self, z: Tensor, c: Tensor) -> Tensor:
            ...                          # (N, latent_dim), (N,) -> (N, C, H, W) in [-1, 1]

:func:`check_generator` validates an object against the protocol (attributes, then one probe
forward) and raises :class:`GeneratorProtocolError` naming what is wrong.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch
from torch import Tensor


class GeneratorProtocolError(TypeError):
    """An object does not follow the conditional-generator protocol."""


@runtime_checkable
class ConditionalGenerator(Protocol):
    """``(z, c) → image``: latents ``(N, latent_dim)`` and labels ``(N,)`` → ``(N, *image_shape)``
    images in ``[-1, 1]``. Deterministic for a given ``(z, c)`` (the environment relies on it)."""

    @property
    def latent_dim(self) -> int: ...

    @property
    def num_classes(self) -> int: ...

    @property
    def image_shape(self) -> tuple[int, int, int]: ...

    def __call__(self, z: Tensor, c: Tensor) -> Tensor: ...


def check_generator(generator: object, probe: bool = True, device: torch.device | str | None = None) -> None:
    """Raise :class:`GeneratorProtocolError` unless ``generator`` follows the protocol.

    With ``probe=True`` one forward on two random latents checks the output's shape, dtype,
    finiteness and range.
    """
    name = type(generator).__name__
    missing = [a for a in ("latent_dim", "num_classes", "image_shape") if not hasattr(generator, a)]
    if missing or not callable(generator):
        raise GeneratorProtocolError(
            f"{name} is not a conditional generator: missing {', '.join(missing) or '__call__'}. "
            "It needs latent_dim (int), num_classes (int), image_shape ((C, H, W)) and "
            "forward(z, c) -> images in [-1, 1]; see palm_lightning.nn.protocols."
        )
    duck: Any = generator  # has the three attributes (checked above)
    latent_dim, num_classes, image_shape = duck.latent_dim, duck.num_classes, duck.image_shape
    if not isinstance(latent_dim, int) or latent_dim < 1:
        raise GeneratorProtocolError(f"{name}.latent_dim must be a positive int, got {latent_dim!r}")
    if not isinstance(num_classes, int) or num_classes < 1:
        raise GeneratorProtocolError(f"{name}.num_classes must be a positive int, got {num_classes!r}")
    if len(tuple(image_shape)) != 3 or not all(isinstance(s, int) and s > 0 for s in image_shape):
        raise GeneratorProtocolError(f"{name}.image_shape must be (C, H, W) of positive ints, got {image_shape!r}")
    if not probe:
        return
    if device is None:
        params = list(generator.parameters()) if hasattr(generator, "parameters") else []
        device = params[0].device if params else "cpu"
    z = torch.randn(2, latent_dim, device=device)
    c = torch.tensor([0, num_classes - 1], device=device)
    with torch.no_grad():
        out = generator(z, c)
    expected = (2, *tuple(image_shape))
    if not isinstance(out, Tensor) or tuple(out.shape) != expected:
        got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
        raise GeneratorProtocolError(f"{name}(z, c) must return a tensor of shape {expected}, got {got}")
    if not out.is_floating_point() or not torch.isfinite(out).all():
        raise GeneratorProtocolError(f"{name}(z, c) returned non-finite or non-float images")
    if out.min() < -1.0 - 1e-4 or out.max() > 1.0 + 1e-4:
        raise GeneratorProtocolError(
            f"{name}(z, c) must return images in [-1, 1], got range [{out.min():.3f}, {out.max():.3f}]"
        )
