"""SimSiam on real images: the self-supervised baseline PALM claims to match.

The same encoder as PALM (``DrQEncoder``), the same heads and loss (:func:`simsiam_forward`),
the same optimiser and learning rate by default; only the data differ: two augmented views of
real images from any :class:`~palm_lightning.datamodules.images.base.ImageDataModule` instead of a pair
of generated frames. The checkpoints export the encoder (kind ``"encoder"``), so the linear probe
reads them exactly as PALM's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import lightning as L
import torch
from torch import Tensor

from palm_lightning.augment import simsiam_augment
from palm_lightning.checkpoints import ExportableMixin
from palm_lightning.models.evaluation.online_probe import OnlineKNNProbe
from palm_lightning.nn.encoders import DrQEncoder
from palm_lightning.nn.heads import Predictor, Projector
from palm_lightning.nn.siamese import simsiam_forward
from palm_lightning.training.config_groups import typed_view
from palm_lightning.training.typed_lightning import attached_datamodule


@dataclass(frozen=True)
class SimSiamImagesHParams:
    """SimSiam's hyperparameters, typed: its constructor's arguments (the values
    ``self.hparams`` holds)."""

    image_shape: tuple[int, int, int]
    encoder_channels: int
    encoder_layers: int
    repr_dim: int
    projector_hidden: int
    projector_dim: int
    predictor_hidden: int
    optimizer: Literal["adam", "sgd"]
    lr: float
    momentum: float
    weight_decay: float
    lr_schedule: Literal["constant", "cosine"]
    crop_scale: tuple[float, float]
    flip_p: float
    brightness: float
    contrast: float
    jitter_p: float
    grayscale_p: float
    knn_bank_size: int
    knn_k: int
    knn_temperature: float
    knn_bank_shuffle: bool


class SimSiamImages(OnlineKNNProbe, ExportableMixin, L.LightningModule):
    """SimSiam (Chen & He, 2021) on two augmented views of every real image of a batch.

    Augmentation runs on the device in :meth:`training_step` (:meth:`augment`, SimSiam's
    small-image recipe by default), not in the DataLoader. One optimiser step per batch, so
    ``trainer.max_steps`` counts updates as PALM's does (``charts/updates`` is logged too).

    Optimiser: by default Adam at 1e-4 with a constant rate, PALM's ``repr_lr``: matched to PALM
    for a like-for-like comparison, not SimSiam's own recipe (SGD, momentum 0.9, lr 0.03·B/256,
    weight decay 5e-4, cosine), which ``optimizer: sgd``, ``lr``, ``weight_decay`` and
    ``lr_schedule: cosine`` reproduce (except SimSiam's fixed predictor rate).

    Validation is the online weighted kNN probe of every pretraining module
    (:class:`~palm_lightning.models.evaluation.online_probe.OnlineKNNProbe`, logged as ``probe/knn_acc`` as
    PALM's): the validation images of the DataModule (its test split when ``val_size`` is 0)
    classified against a bank (:meth:`probe_bank`) of the first ``knn_bank_size`` training images
    (a random subset when the data module shuffles its training split once, as the ImageDataModules
    do; ``knn_bank_shuffle`` draws a fixed random subset instead, for training splits stored class by
    class, as AtariFramesDataModule's game by game).

    Args:
        image_shape, encoder_channels, encoder_layers, repr_dim: the DrQ encoder, as PALM's.
        projector_hidden, projector_dim, predictor_hidden: SimSiam's heads, as PALM's.
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        lr, momentum, weight_decay: optimiser settings (1e-4, 0.9, 0).
        lr_schedule: ``"constant"`` (as PALM) or ``"cosine"`` to 0 over the run's steps.
        crop_scale, flip_p, brightness, contrast, jitter_p, grayscale_p: the recipe of
            :func:`~palm_lightning.augment.simsiam_augment` (SimSiam: 0.2–1, 0.5, 0.4, 0.4, 0.8, 0.2).
        knn_bank_size, knn_k, knn_temperature: the online probe (10 000 images, 20, 0.07: PALM's).
        knn_bank_shuffle: draw the bank as a random subset of the training split (fixed by the data
            module's ``seed``) instead of its first images (off: the first images, as before).
    """

    updates: Tensor  # buffer (registered in __init__)

    network_kind = "encoder"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 32, 32),
        encoder_channels: int = 32,
        encoder_layers: int = 4,
        repr_dim: int = 256,
        projector_hidden: int = 512,
        projector_dim: int = 256,
        predictor_hidden: int = 64,
        optimizer: Literal["adam", "sgd"] = "adam",
        lr: float = 1e-4,
        momentum: float = 0.9,
        weight_decay: float = 0.0,
        lr_schedule: Literal["constant", "cosine"] = "constant",
        crop_scale: tuple[float, float] = (0.2, 1.0),
        flip_p: float = 0.5,
        brightness: float = 0.4,
        contrast: float = 0.4,
        jitter_p: float = 0.8,
        grayscale_p: float = 0.2,
        knn_bank_size: int = 10_000,
        knn_k: int = 20,
        knn_temperature: float = 0.07,
        knn_bank_shuffle: bool = False,
    ) -> None:
        super().__init__()
        if optimizer not in ("adam", "sgd"):
            raise ValueError(f"optimizer must be 'adam' or 'sgd', got {optimizer!r}")
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        self.save_hyperparameters()
        self.hp = typed_view(SimSiamImagesHParams, locals())
        self.encoder = DrQEncoder(image_shape, encoder_channels, encoder_layers, repr_dim)
        self.projector = Projector(self.encoder.out_dim, projector_hidden, projector_dim)
        self.predictor = Predictor(projector_dim, predictor_hidden)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.init_online_probe(knn_k, knn_temperature)

    def exported_network(self) -> DrQEncoder:
        return self.encoder

    def forward(self, images: Tensor) -> Tensor:
        return self.encoder(images)

    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        if dm is None:
            return
        if not hasattr(dm, "normalize") or not hasattr(dm, "image_shape"):
            raise TypeError(
                f"SimSiamImages trains on labelled real images: use an ImageDataModule (e.g. "
                f"palm_lightning.datamodules.FashionMNISTDataModule) as data, not {type(dm).__name__}"
            )
        if tuple(dm.image_shape) != tuple(self.hp.image_shape):
            raise ValueError(
                f"model.image_shape is {tuple(self.hp.image_shape)} but the data's images are "
                f"{tuple(dm.image_shape)}: set --model.init_args.image_shape {list(dm.image_shape)}"
            )

    def configure_optimizers(self):
        hp = self.hp
        if hp.optimizer == "sgd":
            optimizer: torch.optim.Optimizer = torch.optim.SGD(
                self.parameters(), lr=hp.lr, momentum=hp.momentum, weight_decay=hp.weight_decay
            )
        else:
            optimizer = torch.optim.Adam(self.parameters(), lr=hp.lr, weight_decay=hp.weight_decay)
        if hp.lr_schedule == "constant":
            return optimizer
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    # --- subclassing point --------------------------------------------------------------------
    def augment(self, images: Tensor) -> Tensor:
        """One random view of every image (float ``(N, C, H, W)`` in ``[-1, 1]``)."""
        hp = self.hp
        return simsiam_augment(
            images, hp.crop_scale, hp.flip_p, hp.brightness, hp.contrast, hp.jitter_p, hp.grayscale_p
        )

    # --- training -----------------------------------------------------------------------------
    def training_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> Tensor:
        images, _ = batch  # the labels never reach the objective
        view1, view2 = self.augment(images), self.augment(images)
        loss, logs = simsiam_forward(self.encoder, self.projector, self.predictor, view1, view2)
        self.updates += 1
        logs["charts/updates"] = self.updates.float()
        self.log_dict(logs, on_step=True, on_epoch=False)
        self.log("train/loss", loss.detach(), prog_bar=True)
        return loss

    # --- the online kNN probe (OnlineKNNProbe) -----------------------------------------------
    def probe_features(self, images: Tensor) -> Tensor:
        """The encoder's features ``(B, repr_dim)`` of validation images in ``[-1, 1]``."""
        return self.encoder(images)

    def probe_bank(self) -> tuple[Tensor, Tensor]:
        """Features and labels of the first ``knn_bank_size`` training images, or of a fixed random
        ``knn_bank_size`` of them with ``knn_bank_shuffle`` (every validation batch is then a query)."""
        dm = attached_datamodule(self)
        train = dm.train_set
        if train is None:
            raise RuntimeError("the DataModule has no training split set up for the kNN bank")
        index: Tensor | slice = slice(0, self.hp.knn_bank_size)
        if self.hp.knn_bank_shuffle:
            generator = torch.Generator().manual_seed(int(getattr(dm, "seed", 0)))
            index = torch.randperm(len(train.labels), generator=generator)[: self.hp.knn_bank_size]
        images, labels = train.images[index], train.labels[index]
        features = [self.probe_features(dm.normalize(chunk.to(self.device))).float() for chunk in images.split(1024)]
        return torch.cat(features), labels.to(self.device)
