"""PALM's encoder trained with labels: the upper bound of the probe table.

The same ``DrQEncoder`` as PALM and the SimSiam baseline, plus a linear classifier, trained with
cross-entropy on labelled real images. Only the encoder is exported (kind ``"encoder"``): the
probes then fit their own head on it, exactly as on the self-supervised encoders.
"""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torchmetrics.classification import MulticlassAccuracy

from palm_lightning.augment import random_flip_and_shift
from palm_lightning.checkpoints import ExportableMixin
from palm_lightning.nn.encoders import DrQEncoder
from palm_lightning.training.config_groups import typed_view


@dataclass(frozen=True)
class SupervisedEncoderHParams:
    """The module's hyperparameters, typed: its constructor's arguments (the values
    ``self.hparams`` holds)."""

    image_shape: tuple[int, int, int]
    encoder_channels: int
    encoder_layers: int
    repr_dim: int
    num_classes: int
    lr: float
    weight_decay: float
    augment: bool
    max_shift: int
    label_smoothing: float


class SupervisedEncoder(ExportableMixin, L.LightningModule):
    """Cross-entropy training of a ``DrQEncoder`` with a linear head.

    Adam with a cosine decay to 0 over ``trainer.estimated_stepping_batches`` (works with
    ``max_steps`` or ``max_epochs``); optional light augmentation on the device (horizontal flip
    and a shift of up to ``max_shift`` pixels). Logs ``train/loss``, ``train/acc``, ``val/acc``
    and ``test/acc``.

    Args:
        image_shape, encoder_channels, encoder_layers, repr_dim: the DrQ encoder, as PALM's.
        num_classes: classes of the data.
        lr, weight_decay: Adam's settings (1e-3; 0): Adam's usual rate, not tuned for this upper
            bound (PALM's representation learns at 1e-4).
        augment, max_shift: flip + shift augmentation (on; 2 pixels).
        label_smoothing: of the cross-entropy (0).
    """

    network_kind = "encoder"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 32, 32),
        encoder_channels: int = 32,
        encoder_layers: int = 4,
        repr_dim: int = 256,
        num_classes: int = 10,
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        augment: bool = True,
        max_shift: int = 2,
        label_smoothing: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.hp = typed_view(SupervisedEncoderHParams, locals())
        self.encoder = DrQEncoder(image_shape, encoder_channels, encoder_layers, repr_dim)
        self.head = nn.Linear(self.encoder.out_dim, num_classes)
        self.val_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")
        self.test_acc = MulticlassAccuracy(num_classes=num_classes, average="micro")

    def exported_network(self) -> DrQEncoder:
        return self.encoder

    def forward(self, images: Tensor) -> Tensor:
        """Class logits."""
        return self.head(self.encoder(images))

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        shape = getattr(dm, "image_shape", None)
        if shape is not None and tuple(shape) != tuple(self.hp.image_shape):
            raise ValueError(
                f"model.image_shape is {tuple(self.hp.image_shape)} but the data's images are "
                f"{tuple(shape)}: set --model.init_args.image_shape {list(shape)}"
            )
        classes = getattr(dm, "num_classes", None)
        if classes and classes != self.hp.num_classes:
            raise ValueError(f"model.num_classes is {self.hp.num_classes} but the data has {classes} classes")

    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, labels = batch
        if self.hp.augment:
            images = random_flip_and_shift(images, self.hp.max_shift)
        logits = self(images)
        loss = F.cross_entropy(logits, labels, label_smoothing=self.hp.label_smoothing)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", (logits.argmax(1) == labels).float().mean())
        return loss

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        self.val_acc(self(images), labels)
        self.log("val/acc", self.val_acc, prog_bar=True)

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        images, labels = batch
        self.test_acc(self(images), labels)
        self.log("test/acc", self.test_acc)

    def configure_optimizers(self):
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hp.lr, weight_decay=self.hp.weight_decay)
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
