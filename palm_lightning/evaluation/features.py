"""Features of a frozen encoder, computed in chunks: the input of every downstream evaluation.

The probes and OOD scorers compare whole splits (a 60 000-image bank against 10 000 queries), so
the images stay ``uint8`` in memory and are normalised and encoded one chunk at a time: a float
copy of a whole split would cost four times its memory for nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn


def encode(encoder: nn.Module, images: Tensor) -> Tensor:
    """``float32`` features ``(N, D)`` of already normalised images, on the images' device.

    The shape is checked against ``encoder.image_shape`` (the package's encoder contract) before
    the encoder runs, so a resolution or channel mismatch names both shapes instead of failing
    deep inside a convolution or a matmul.
    """
    expected = getattr(encoder, "image_shape", None)
    if images.ndim != 4 or (expected is not None and tuple(images.shape[1:]) != tuple(expected)):
        wanted = f"(N, {', '.join(map(str, expected))})" if expected is not None else "(N, C, H, W)"
        raise ValueError(
            f"{type(encoder).__name__} takes images of shape {wanted}, got {tuple(images.shape)}: check the "
            "data module's resolution and channels (or the encoder's image_shape)"
        )
    return encoder(images).flatten(1).float()


def _default_device(encoder: nn.Module) -> torch.device:
    parameter = next(iter(encoder.parameters()), None)
    return parameter.device if parameter is not None else torch.device("cpu")


def extract_features(
    encoder: nn.Module,
    images: Tensor,
    normalize: Callable[[Tensor], Tensor],
    batch_size: int = 1024,
    device: torch.device | str | None = None,
) -> Tensor:
    """Encode ``uint8`` images ``(N, C, H, W)`` chunk by chunk; return ``float32 (N, D)`` on the CPU.

    Args:
        encoder: a frozen encoder (e.g. from :func:`~palm_lightning.models.evaluation.linear_probe.build_encoder`).
            It runs in eval mode (its previous mode is restored afterwards) without gradients.
        images: e.g. ``datamodule.train_set.images``; only one chunk at a time is moved to ``device``.
        normalize: maps a ``uint8`` chunk to the encoder's input range, e.g. ``datamodule.normalize``
            (the same normalisation the data module applies to its batches).
        batch_size: images per chunk.
        device: where the encoder runs; default: the device of its parameters (CPU if it has none).
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    device = torch.device(device) if device is not None else _default_device(encoder)
    was_training = encoder.training
    encoder.eval()
    chunks = []
    try:
        # no_grad rather than inference_mode: the features may be kept as module state (a kNN bank)
        # and used later outside inference mode, which inference tensors forbid.
        with torch.no_grad():
            for chunk in images.split(batch_size):
                chunks.append(encode(encoder, normalize(chunk.to(device))).cpu())
    finally:
        encoder.train(was_training)
    if not chunks:  # no images: an empty (0, D) result still has the right width
        out_dim = getattr(encoder, "out_dim", 0)
        return torch.zeros(0, int(out_dim), dtype=torch.float32)
    return torch.cat(chunks)
