"""The frozen encoder every probe evaluates, and the checks that it fits the probe's data.

:class:`FrozenEncoder` is an ``nn.Module`` that holds one encoder network — raw pixels, a network
file or a package ``.ckpt`` (trained weights, or the same architecture freshly initialised), or a
network already in memory — and keeps it frozen: no gradients, eval mode whatever ``.train()`` is
called with, features computed under ``torch.no_grad()``. :class:`~palm_lightning.models.LinearProbe`,
:class:`~palm_lightning.models.KNNProbe` and :class:`~palm_lightning.models.OODDetector` hold one
as ``self.encoder``; ``finetune=True`` turns the freezing off for a module that trains the encoder
further (e.g. RL fine-tuning from a pretrained encoder).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from palm_lightning.checkpoints import CheckpointError, build_network, load_network, read_description
from palm_lightning.nn.encoders import PixelEncoder

PIXELS = "pixels"
DEFAULT_IMAGE_SHAPE = (1, 32, 32)


def build_encoder(
    encoder: str, random_init: bool = False, image_shape: tuple[int, int, int] | None = None, pixel_pool: int = 1
) -> nn.Module:
    """The encoder network a probe evaluates (see :class:`FrozenEncoder`'s arguments), in eval mode.

    Raises :class:`~palm_lightning.checkpoints.CheckpointError` for a missing, corrupt or
    wrong-kind file, and :class:`ValueError` when ``image_shape`` contradicts the file's encoder.
    """
    if encoder == PIXELS:
        return PixelEncoder(image_shape or DEFAULT_IMAGE_SHAPE, pixel_pool).eval()
    if pixel_pool != 1:
        raise ValueError(f"pixel_pool={pixel_pool} only applies to encoder='pixels', not {encoder}; leave it at 1")
    path = Path(encoder).expanduser()
    if random_init:
        description = read_description(path)
        found = description.get("kind")
        if found != "encoder":
            raise CheckpointError(f"{path} holds a {found!r} network, but a 'encoder' was expected")
        network = build_network(description, source=str(path), load_weights=False).eval()
    else:
        network = load_network(path, kind="encoder")
    for attr in ("image_shape", "out_dim"):
        if getattr(network, attr, None) is None:
            raise CheckpointError(
                f"{path}: {type(network).__name__} has no `{attr}` attribute; it does not follow the encoder "
                "contract of palm_lightning.nn.encoders"
            )
    network_shape: Any = network.image_shape  # the encoder contract's (checked above); nn.Module has no such field
    if image_shape is not None and tuple(image_shape) != tuple(network_shape):
        raise ValueError(
            f"image_shape={tuple(image_shape)} was given, but the encoder in {path} takes images of shape "
            f"{tuple(network_shape)}; leave image_shape unset (it is only needed for encoder='pixels')"
        )
    return network


class FrozenEncoder(nn.Module):
    """An encoder network held frozen: what a probe evaluates (and what fine-tuning starts from).

    Built from ``encoder`` with :func:`build_encoder` (a string or path) or wrapped as given (an
    ``nn.Module`` that follows the encoder contract of :mod:`palm_lightning.nn.encoders`:
    ``image_shape`` and ``out_dim`` attributes). Unless ``finetune`` is set, its parameters do not
    require gradients, :meth:`forward` runs under ``torch.no_grad()``, and the module stays in eval
    mode whatever ``.train()`` is called with — so a LightningModule that holds it can switch its
    own parts to training mode without touching the encoder (Lightning's "Found N module(s) in eval
    mode at the start of training" warning is about this encoder, and expected).

    The state dict is the network's own (``convnet.0.weight``, not ``network.convnet.0.weight``):
    a probe's checkpoint names the encoder's weights ``encoder.<name>``, as before this class
    existed, and ``FrozenEncoder.load_state_dict`` takes a bare network state dict.

    Args:
        encoder: ``"pixels"`` (raw pixels as features:
            :class:`~palm_lightning.nn.encoders.PixelEncoder`, the baseline), the path of an encoder
            network file (``kind="encoder"``) or of a package Lightning ``.ckpt`` that carries one
            (loaded with :func:`~palm_lightning.checkpoints.load_network`; missing, corrupt or
            wrong-kind files raise :class:`~palm_lightning.checkpoints.CheckpointError`), or an
            encoder ``nn.Module``.
        random_init: build the encoder described by the file (same class and constructor
            arguments) but keep its fresh random initialisation instead of the stored weights —
            the "random encoder" baseline; the draw follows the global seed. A no-op for
            ``"pixels"`` (no weights) and for a module.
        image_shape: ``(C, H, W)`` of the images, for ``encoder="pixels"`` (default
            ``(1, 32, 32)``). A file carries its own shape: leave this unset, or give the same
            shape (a different one is a ``ValueError``).
        finetune: train the encoder instead: parameters require gradients, ``.train()`` applies,
            :meth:`forward` keeps the graph.
        pixel_pool: for ``"pixels"``, average ``pixel_pool × pixel_pool`` blocks before flattening
            (:class:`~palm_lightning.nn.encoders.PixelEncoder`'s ``pool``); 1 elsewhere.

    Attributes:
        network: the encoder network.
        image_shape: ``(C, H, W)`` the network takes.
        out_dim: feature size; :meth:`forward` returns ``(N, out_dim)`` ``float32``.
        source: the ``encoder`` string it was built from (``None`` for a module).
    """

    def __init__(
        self,
        encoder: str | Path | nn.Module = PIXELS,
        random_init: bool = False,
        image_shape: tuple[int, int, int] | None = None,
        finetune: bool = False,
        pixel_pool: int = 1,
    ) -> None:
        super().__init__()
        if isinstance(encoder, nn.Module):
            missing = [a for a in ("image_shape", "out_dim") if getattr(encoder, a, None) is None]
            if missing:
                raise TypeError(
                    f"FrozenEncoder: {type(encoder).__name__} has no {' or '.join(f'`{a}`' for a in missing)} "
                    "attribute; it does not follow the encoder contract of palm_lightning.nn.encoders"
                )
            encoder_shape: Any = encoder.image_shape  # the encoder contract's (checked above)
            if image_shape is not None and tuple(image_shape) != tuple(encoder_shape):
                raise ValueError(
                    f"image_shape={tuple(image_shape)} was given, but the encoder takes images of shape "
                    f"{tuple(encoder_shape)}"
                )
            self.source: str | None = None
            network = encoder
        else:
            self.source = str(encoder)
            network = build_encoder(self.source, random_init, image_shape, pixel_pool)
        self.network = network
        self.finetune = finetune
        contract: Any = network  # image_shape and out_dim, the encoder contract (checked above)
        self.image_shape: tuple[int, ...] = tuple(int(s) for s in contract.image_shape)
        self.out_dim = int(contract.out_dim)
        self.network.requires_grad_(finetune)
        self.train(finetune)
        self.register_state_dict_post_hook(_drop_network_prefix)
        self.register_load_state_dict_pre_hook(_add_network_prefix)

    @property
    def is_pixels(self) -> bool:
        """Built from ``"pixels"``: raw pixels as features (any normalisation, no weights)."""
        return self.source == PIXELS

    def train(self, mode: bool = True) -> FrozenEncoder:
        """Follow ``mode`` only when fine-tuning; a frozen encoder stays in eval mode."""
        return super().train(mode and self.finetune)

    def check_images(self, images: Tensor, who: str = "FrozenEncoder") -> None:
        """Raise a ``ValueError`` naming both shapes unless ``images`` is ``(N, *image_shape)``."""
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"{who}: batch images have shape {tuple(images.shape)}, but the encoder takes "
                f"(N, {', '.join(map(str, self.image_shape))}); check the data module's resolution and channels"
            )

    def forward(self, images: Tensor) -> Tensor:
        """Features ``(N, out_dim)`` (``float32``) of images ``(N, C, H, W)`` in ``[-1, 1]``."""
        self.check_images(images)
        with torch.set_grad_enabled(self.finetune and torch.is_grad_enabled()):
            return self.network(images).flatten(1).float()

    def check_fits_data(self, datamodule: object, num_classes: int | None, who: str) -> None:
        """Check, at ``setup``, that this encoder fits a probe's data module.

        The encoder's image shape against the data module's, ``num_classes`` (skipped when
        ``None``) against its classes, and — for encoder files — the ``symmetric`` normalisation
        they were trained with. Each error starts with ``who`` (the probe's class name) and names
        the fix as a command-line override.
        """
        image_shape = self.image_shape
        data_shape = getattr(datamodule, "image_shape", None)
        if data_shape is not None and tuple(data_shape) != image_shape:
            c, h, w = image_shape
            fixes = []
            if c != data_shape[0]:
                fixes.append(f"use a dataset with {c} channel{'s' * (c != 1)}")
            if (h, w) != tuple(data_shape[1:]):
                fixes.append(f"set the data resolution to {h} (--data.init_args.resolution {h})")
            fix = " and ".join(fixes)
            if self.is_pixels:
                fix += f", or set the probe's --model.init_args.image_shape {list(data_shape)}"
            raise ValueError(
                f"{who}: the encoder takes images of shape {image_shape}, but "
                f"{type(datamodule).__name__} serves {tuple(data_shape)}: {fix}"
            )
        data_classes = getattr(datamodule, "num_classes", 0)
        if num_classes is not None and data_classes and data_classes != num_classes:
            raise ValueError(
                f"{who}: num_classes={num_classes}, but {type(datamodule).__name__} has "
                f"{data_classes} classes: set --model.init_args.num_classes {data_classes}"
            )
        normalization = getattr(datamodule, "normalization", "symmetric")
        if not self.is_pixels and normalization != "symmetric":
            raise ValueError(
                f"{who}: encoders take images in [-1, 1], but the data module's normalization is "
                f"{normalization!r}: set --data.init_args.normalization symmetric"
            )


def _drop_network_prefix(module: nn.Module, state_dict: dict, prefix: str, local_metadata: dict) -> None:
    """State-dict post-hook of :class:`FrozenEncoder`: ``<prefix>network.X`` is saved as ``<prefix>X``."""
    inner = prefix + "network."
    for key in [k for k in state_dict if k.startswith(inner)]:
        state_dict[prefix + key[len(inner) :]] = state_dict.pop(key)


def _add_network_prefix(module: nn.Module, state_dict: dict, prefix: str, *args: object) -> None:
    """Load-state-dict pre-hook of :class:`FrozenEncoder`, the inverse of :func:`_drop_network_prefix`."""
    for key in [k for k in state_dict if k.startswith(prefix)]:
        state_dict[prefix + "network." + key[len(prefix) :]] = state_dict.pop(key)


if TYPE_CHECKING:  # a mixin for LightningModules: type-checked as one, a plain class at run time
    import lightning as L

    _ModuleBase = L.LightningModule
else:
    _ModuleBase = object


class ProbeAccuracyMixin(_ModuleBase):
    """The accuracy metrics of the classification probes (LinearProbe, KNNProbe), for LightningModules."""

    def init_accuracies(self, num_classes: int, stages: tuple[str, ...] = ("val", "test")) -> None:
        """Micro-averaged ``<stage>_acc`` metrics, and ``<stage>_acc_top5`` when there are at least
        five classes (top-5 of fewer classes is always 1)."""
        self._top5 = num_classes >= 5
        for stage in stages:
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes=num_classes, average="micro"))
            if self._top5:
                setattr(
                    self, f"{stage}_acc_top5", MulticlassAccuracy(num_classes=num_classes, top_k=5, average="micro")
                )

    def log_accuracies(self, scores: Tensor, labels: Tensor, stage: str, name: str, prog_bar: bool) -> None:
        """Update and log ``<stage>/<name>`` (and ``<stage>/<name>_top5``) from class scores."""
        acc = getattr(self, f"{stage}_acc")
        acc(scores, labels)
        self.log(f"{stage}/{name}", acc, prog_bar=prog_bar)
        if self._top5:
            acc5 = getattr(self, f"{stage}_acc_top5")
            acc5(scores, labels)
            self.log(f"{stage}/{name}_top5", acc5)
