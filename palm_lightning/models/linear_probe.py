"""Linear probe: a linear classifier on the features of a frozen encoder (a LightningModule)."""

from __future__ import annotations

import math
from pathlib import Path

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from palm_lightning.checkpoints import CheckpointError, build_network, load_network, read_description
from palm_lightning.evaluation.linear import linear_probe_head, linear_probe_optimizer
from palm_lightning.nn.encoders import PixelEncoder

PIXELS = "pixels"
DEFAULT_IMAGE_SHAPE = (1, 32, 32)


def build_encoder(
    encoder: str, random_init: bool = False, image_shape: tuple[int, int, int] | None = None
) -> nn.Module:
    """The encoder a :class:`LinearProbe` evaluates (see its ``encoder``/``random_init``/``image_shape``).

    Raises :class:`~palm_lightning.checkpoints.CheckpointError` for a missing, corrupt or
    wrong-kind file, and :class:`ValueError` when ``image_shape`` contradicts the file's encoder.
    """
    if encoder == PIXELS:
        return PixelEncoder(image_shape or DEFAULT_IMAGE_SHAPE).eval()
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
    if image_shape is not None and tuple(image_shape) != tuple(network.image_shape):
        raise ValueError(
            f"image_shape={tuple(image_shape)} was given, but the encoder in {path} takes images of shape "
            f"{tuple(network.image_shape)}; leave image_shape unset (it is only needed for encoder='pixels')"
        )
    return network


def check_fits_data(module: L.LightningModule, datamodule: object, num_classes: int | None) -> None:
    """Check, at ``setup``, that a probe's frozen encoder fits its data module.

    Shared by the probes (``module`` has ``image_shape`` and the ``encoder`` hyperparameter): the
    encoder's image shape against the data module's, ``num_classes`` (skipped when ``None``)
    against its classes, and — for encoder files — the ``symmetric`` normalisation they were
    trained with. Each error names the fix as a command-line override.
    """
    who = type(module).__name__
    image_shape = tuple(module.image_shape)
    encoder = module.hparams.encoder
    data_shape = getattr(datamodule, "image_shape", None)
    if data_shape is not None and tuple(data_shape) != image_shape:
        c, h, w = image_shape
        fixes = []
        if c != data_shape[0]:
            fixes.append(f"use a dataset with {c} channel{'s' * (c != 1)}")
        if (h, w) != tuple(data_shape[1:]):
            fixes.append(f"set the data resolution to {h} (--data.init_args.resolution {h})")
        fix = " and ".join(fixes)
        if encoder == PIXELS:
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
    if encoder != PIXELS and normalization != "symmetric":
        raise ValueError(
            f"{who}: encoders take images in [-1, 1], but the data module's normalization is "
            f"{normalization!r}: set --data.init_args.normalization symmetric"
        )


class FrozenEncoderMixin:
    """The frozen encoder every probe evaluates (LinearProbe, KNNProbe, OODDetector).

    :meth:`init_frozen_encoder` builds it with :func:`build_encoder`, freezes it and records its
    ``image_shape``; :meth:`train` keeps it in eval mode whatever Lightning asks, so only the
    probe's own parts (a linear head, nothing at all for kNN/OOD) ever switch to training mode.
    """

    encoder: nn.Module
    image_shape: tuple[int, int, int]

    def init_frozen_encoder(self, encoder: str, random_init: bool, image_shape: tuple[int, int, int] | None) -> None:
        self.encoder = build_encoder(str(encoder), random_init, image_shape)
        self.encoder.requires_grad_(False)
        self.encoder.eval()
        self.image_shape = tuple(int(s) for s in self.encoder.image_shape)  # type: ignore[assignment]

    def train(self, mode: bool = True):
        """Switch the probe's own modules; the encoder stays in eval mode."""
        super().train(mode)  # type: ignore[misc]
        self.encoder.eval()
        return self

    def init_accuracies(self, num_classes: int, stages: tuple[str, ...] = ("val", "test")) -> None:
        """Micro-averaged ``<stage>_acc`` metrics, and ``<stage>_acc_top5`` when there are at least
        five classes (top-5 of fewer classes is always 1)."""
        self._top5 = num_classes >= 5
        for stage in stages:
            setattr(self, f"{stage}_acc", MulticlassAccuracy(num_classes=num_classes, average="micro"))
            if self._top5:
                setattr(self, f"{stage}_acc_top5", MulticlassAccuracy(num_classes=num_classes, top_k=5, average="micro"))

    def log_accuracies(self, scores: Tensor, labels: Tensor, stage: str, name: str, prog_bar: bool) -> None:
        """Update and log ``<stage>/<name>`` (and ``<stage>/<name>_top5``) from class scores."""
        acc = getattr(self, f"{stage}_acc")
        acc(scores, labels)
        self.log(f"{stage}/{name}", acc, prog_bar=prog_bar)  # type: ignore[attr-defined]
        if self._top5:
            acc5 = getattr(self, f"{stage}_acc_top5")
            acc5(scores, labels)
            self.log(f"{stage}/{name}_top5", acc5)  # type: ignore[attr-defined]


class LinearProbe(FrozenEncoderMixin, L.LightningModule):
    """Linear-probe evaluation of a frozen image encoder.

    The encoder's features go through ``BatchNorm1d(out_dim, affine=False)`` — a feature
    standardisation with no parameters, as in MAE's linear probe, which makes one learning rate work
    for raw pixels and for learned features alike — and a trainable ``Linear(out_dim, num_classes)``.
    Only that linear layer is trained (AdamW, cosine schedule over
    ``trainer.estimated_stepping_batches``, i.e. over ``max_steps`` when it is set). The encoder is
    frozen: no gradients, features computed under ``torch.no_grad()``, and kept in eval mode even
    when Lightning calls ``train()`` (Lightning's "Found N module(s) in eval mode at the start of
    training" warning is about the encoder, and expected).

    Batches are ``(images, labels)`` with images in ``[-1, 1]`` (the ``symmetric`` normalisation of
    the image DataModules). At ``setup`` the encoder's ``image_shape`` is checked against the
    DataModule's (and ``num_classes`` against its classes); each batch's shape is checked too.

    Logs ``train/loss``, ``train/acc``, ``val/acc``, ``val/acc_top5``, ``test/acc``,
    ``test/acc_top5`` (top-5 only when ``num_classes >= 5``; accuracies are micro averages).

    Checkpoints hold the encoder's weights (they are in the state dict), so
    ``test --ckpt_path`` evaluates exactly the encoder that was probed, random ones included; the
    ``encoder`` file must still exist, since the module is rebuilt from its init arguments first.

    How long to train: a linear head on frozen features needs a given number of optimiser steps,
    not epochs. With the 1%-labels protocol (``train_fraction: 0.01``: ~550 Fashion-MNIST images,
    2 batches of 256) ten epochs would be 20 steps. The shipped config
    (``configs/eval/linear_fmnist.yaml``) therefore trains for ``trainer.max_steps`` (2000, about
    9 epochs of the full 55,000 images) and validates every ``val_check_interval`` steps, so both
    protocols get the same number of steps and the same schedule. If you train by
    ``max_epochs`` instead, raise it accordingly for small ``train_fraction`` (e.g. 1000 for 1%).

    Args:
        encoder: ``"pixels"`` (raw pixels as features:
            :class:`~palm_lightning.nn.encoders.PixelEncoder`, the baseline) or the path of an
            encoder network file (``kind="encoder"``) or of a package Lightning ``.ckpt`` that
            carries one, loaded with :func:`~palm_lightning.checkpoints.load_network`. Missing,
            corrupt or wrong-kind files raise :class:`~palm_lightning.checkpoints.CheckpointError`.
        random_init: build the encoder described by the file (same class and constructor
            arguments) but keep its fresh random initialisation instead of the stored weights —
            the "random encoder" baseline. The draw follows the global seed (``seed_everything``
            in the config). A no-op for ``"pixels"``, which has no weights.
        num_classes: number of classes of the data (checked against the DataModule's).
        image_shape: ``(C, H, W)`` of the images, for ``encoder="pixels"`` (default
            ``(1, 32, 32)``). An encoder file carries its own shape: leave this unset, or give the
            same shape (a different one is a ``ValueError``).
        lr: AdamW learning rate of the linear head (peak of the cosine schedule).
        weight_decay: AdamW weight decay of the linear head.
        min_lr_ratio: the cosine schedule decays from ``lr`` to ``lr * min_lr_ratio``.
        label_smoothing: label smoothing of the cross-entropy loss.
    """

    def __init__(
        self,
        encoder: str = PIXELS,
        random_init: bool = False,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] | None = None,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        min_lr_ratio: float = 0.0,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"num_classes must be at least 2, got {num_classes}")
        if lr <= 0:
            raise ValueError(f"lr must be positive, got {lr}")
        if not 0.0 <= min_lr_ratio <= 1.0:
            raise ValueError(f"min_lr_ratio must be in [0, 1], got {min_lr_ratio}")
        self.save_hyperparameters()
        self.init_frozen_encoder(encoder, random_init, image_shape)
        out_dim = int(self.encoder.out_dim)
        self.head = linear_probe_head(out_dim, num_classes)
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.init_accuracies(num_classes)

    # --- the frozen encoder ----------------------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a probe checkpoint whose head was trained on features of another size, naming both
        sizes, instead of a bare state-dict shape error."""
        weight = checkpoint.get("state_dict", {}).get("head.1.weight")
        if weight is not None and tuple(weight.shape) != tuple(self.head[1].weight.shape):
            raise ValueError(
                f"LinearProbe: the checkpoint's head maps {weight.shape[1]} features to {weight.shape[0]} classes, but "
                f"this probe's encoder ({self.hparams.encoder}) gives {self.head[1].in_features} features for "
                f"{self.hparams.num_classes} classes: pass the encoder and num_classes the probe was trained with"
            )

    def setup(self, stage: str) -> None:
        check_fits_data(self, getattr(self._trainer, "datamodule", None), self.hparams.num_classes)

    def features(self, images: Tensor) -> Tensor:
        """Frozen-encoder features ``(N, out_dim)`` of images ``(N, C, H, W)`` in ``[-1, 1]``."""
        if images.ndim != 4 or tuple(images.shape[1:]) != self.image_shape:
            raise ValueError(
                f"LinearProbe: batch images have shape {tuple(images.shape)}, but the encoder takes "
                f"(N, {', '.join(map(str, self.image_shape))}); check the data module's resolution and channels"
            )
        with torch.no_grad():
            return self.encoder(images).flatten(1).float()

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.head(self.features(images))

    # --- steps -----------------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hparams.label_smoothing)
        self.train_acc(logits, labels)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", self.train_acc)
        return loss

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        images, labels = batch
        self.log_accuracies(self(images), labels, stage, "acc", prog_bar=stage == "val")

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    # --- optimisation ----------------------------------------------------------------------------
    def configure_optimizers(self):
        hp = self.hparams
        total = self.trainer.estimated_stepping_batches
        bounded = math.isfinite(total) and total >= 1
        optimizer, scheduler = linear_probe_optimizer(
            self.head, hp.lr, hp.weight_decay, int(total) if bounded else 1, hp.min_lr_ratio
        )
        if not bounded:  # unbounded training: no schedule to fit
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
