"""Linear probe: a linear classifier on the features of a frozen encoder (a LightningModule)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import lightning as L
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from palm_lightning.evaluation.linear import linear_probe_head, linear_probe_optimizer
from palm_lightning.models.evaluation.frozen_encoder import PIXELS, FrozenEncoder, ProbeAccuracyMixin
from palm_lightning.training.config_groups import typed_view


@dataclass(frozen=True)
class LinearProbeHParams:
    """The probe's hyperparameters, typed: its constructor's arguments (the values
    ``self.hparams`` holds)."""

    encoder: str
    random_init: bool
    num_classes: int
    image_shape: tuple[int, int, int] | None
    lr: float
    weight_decay: float
    min_lr_ratio: float
    label_smoothing: float


class LinearProbe(ProbeAccuracyMixin, L.LightningModule):
    """Linear-probe evaluation of a frozen image encoder.

    The encoder's features go through ``BatchNorm1d(out_dim, affine=False)`` — a feature
    standardisation with no parameters, as in MAE's linear probe, which makes one learning rate work
    for raw pixels and for learned features alike — and a trainable ``Linear(out_dim, num_classes)``.
    Only that linear layer is trained (AdamW, cosine schedule over
    ``trainer.estimated_stepping_batches``, i.e. over ``max_steps`` when it is set). The encoder
    (``self.encoder``, a :class:`~palm_lightning.models.evaluation.frozen_encoder.FrozenEncoder`) is frozen:
    no gradients, features computed under ``torch.no_grad()``, and kept in eval mode even when
    Lightning calls ``train()`` (Lightning's "Found N module(s) in eval mode at the start of
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
        self.hp = typed_view(LinearProbeHParams, locals())
        self.encoder = FrozenEncoder(encoder, random_init, image_shape)
        self.image_shape = self.encoder.image_shape
        out_dim = self.encoder.out_dim
        self.head = linear_probe_head(out_dim, num_classes)
        self.train_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.init_accuracies(num_classes)

    # --- the frozen encoder ----------------------------------------------------------------------
    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Refuse a probe checkpoint whose head was trained on features of another size, naming both
        sizes, instead of a bare state-dict shape error."""
        weight = checkpoint.get("state_dict", {}).get("head.1.weight")
        linear = self.head[1]
        assert isinstance(linear, nn.Linear)  # linear_probe_head's second layer
        if weight is not None and tuple(weight.shape) != tuple(linear.weight.shape):
            raise ValueError(
                f"LinearProbe: the checkpoint's head maps {weight.shape[1]} features to {weight.shape[0]} classes, but "
                f"this probe's encoder ({self.hp.encoder}) gives {linear.in_features} features for "
                f"{self.hp.num_classes} classes: pass the encoder and num_classes the probe was trained with"
            )

    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None)
        self.encoder.check_fits_data(datamodule, self.hp.num_classes, type(self).__name__)

    def features(self, images: Tensor) -> Tensor:
        """Frozen-encoder features ``(N, out_dim)`` of images ``(N, C, H, W)`` in ``[-1, 1]``."""
        self.encoder.check_images(images, "LinearProbe")
        return self.encoder(images)

    def forward(self, images: Tensor) -> Tensor:
        """Class logits ``(N, num_classes)``."""
        return self.head(self.features(images))

    # --- steps -----------------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hp.label_smoothing)
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
        hp = self.hp
        total = self.trainer.estimated_stepping_batches
        bounded = math.isfinite(total) and total >= 1
        optimizer, scheduler = linear_probe_optimizer(
            self.head, hp.lr, hp.weight_decay, int(total) if bounded else 1, hp.min_lr_ratio
        )
        if not bounded:  # unbounded training: no schedule to fit
            return optimizer
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
