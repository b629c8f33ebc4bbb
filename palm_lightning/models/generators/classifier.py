"""Supervised training of the reference classifier (a LightningModule)."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torchmetrics.classification import MulticlassAccuracy

from palm_lightning.augment import random_flip_and_shift  # re-exported: it used to live here
from palm_lightning.checkpoints import ExportableMixin
from palm_lightning.nn.classifier import ConvClassifier
from palm_lightning.training.config_groups import typed_view


@dataclass(frozen=True)
class ImageClassifierHParams:
    """The classifier's hyperparameters, typed: its constructor's arguments (the values
    ``self.hparams`` holds)."""

    in_channels: int
    num_classes: int
    widths: tuple[int, int, int]
    feature_dim: int
    dropout: float
    lr: float
    momentum: float
    weight_decay: float
    label_smoothing: float
    augment: bool


class ImageClassifier(ExportableMixin, L.LightningModule):
    """Cross-entropy training of :class:`~palm_lightning.nn.classifier.ConvClassifier`.

    SGD with Nesterov momentum and a cosine schedule over ``trainer.max_epochs``; light
    augmentation (flip + 2-pixel shift) when ``augment``. Logs ``train/loss``, ``val/acc``,
    ``test/acc`` (torchmetrics). Checkpoints carry the network (kind ``"classifier"``).
    """

    network_kind = "classifier"

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        widths: tuple[int, int, int] = (16, 32, 64),
        feature_dim: int = 256,
        dropout: float = 0.3,
        lr: float = 0.05,
        momentum: float = 0.9,
        weight_decay: float = 5e-4,
        label_smoothing: float = 0.0,
        augment: bool = True,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.hp = typed_view(ImageClassifierHParams, locals())
        self.network = ConvClassifier(in_channels, num_classes, widths, feature_dim, dropout)
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def exported_network(self) -> ConvClassifier:
        return self.network

    def forward(self, images: Tensor) -> Tensor:
        return self.network(images)

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        if self.hp.augment:
            images = random_flip_and_shift(images)
        logits = self.network(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hp.label_smoothing)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(1) == labels).float().mean())
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        self.val_acc(self.network(images), labels)
        self.log("val/acc", self.val_acc, prog_bar=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        self.test_acc(self.network(images), labels)
        self.log("test/acc", self.test_acc)

    def configure_optimizers(self):
        optimizer = torch.optim.SGD(
            self.parameters(),
            lr=self.hp.lr,
            momentum=self.hp.momentum,
            nesterov=True,
            weight_decay=self.hp.weight_decay,
        )
        epochs = max(1, int(self.trainer.max_epochs or 1))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=epochs)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "epoch"}}
