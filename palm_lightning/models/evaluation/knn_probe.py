"""kNN probe: weighted k-nearest-neighbour classification on the features of a frozen encoder."""

from __future__ import annotations

from dataclasses import dataclass

import lightning as L
from torch import Tensor

from palm_lightning.evaluation.features import encode, extract_features
from palm_lightning.evaluation.knn import knn_votes
from palm_lightning.models.evaluation.frozen_encoder import PIXELS, FrozenEncoder, ProbeAccuracyMixin
from palm_lightning.training.config_groups import typed_view


@dataclass(frozen=True)
class KNNProbeHParams:
    """The probe's hyperparameters, typed: its constructor's arguments (the values
    ``self.hparams`` holds)."""

    encoder: str
    random_init: bool
    num_classes: int
    image_shape: tuple[int, int, int] | None
    k: int
    temperature: float


class KNNProbe(ProbeAccuracyMixin, L.LightningModule):
    """kNN-probe evaluation of a frozen image encoder: nothing is trained.

    Run it with ``test`` (or ``validate``), not ``fit``::

        python -m palm_lightning test --config configs/eval/knn_fmnist.yaml --model.init_args.encoder X.ckpt

    At the start of the test (validation) epoch the bank is built: the features of every image of
    ``trainer.datamodule.train_set`` (set up with ``setup("fit")`` if needed, so the data module's
    ``val_size`` and ``train_fraction`` apply: ``train_fraction: 0.01`` is the 1%-labels protocol),
    normalised with ``datamodule.normalize``. Each test batch is then classified by the weighted
    vote of its ``k`` most cosine-similar bank features (:func:`~palm_lightning.evaluation.knn_votes`,
    InstDisc's weights ``exp(similarity / temperature)``).

    Logs ``test/knn_acc`` and ``test/knn_acc_top5`` (``val/...`` under ``validate``; top-5 only when
    ``num_classes >= 5``; micro averages). Under DDP every rank builds the full bank (the features
    of the whole training split, cheap next to the queries) and the accuracies are synchronised by
    torchmetrics.

    Args:
        encoder, random_init, image_shape: the frozen encoder, as for
            :class:`~palm_lightning.models.LinearProbe` (``"pixels"``, a network file or a package
            ``.ckpt``; ``random_init`` keeps the architecture and draws fresh weights).
        num_classes: classes of the data (checked against the data module's).
        k: neighbours that vote (20, as InstDisc and solo-learn).
        temperature: softness of the vote weights (0.07).
    """

    def __init__(
        self,
        encoder: str = PIXELS,
        random_init: bool = False,
        num_classes: int = 10,
        image_shape: tuple[int, int, int] | None = None,
        k: int = 20,
        temperature: float = 0.07,
    ) -> None:
        super().__init__()
        if num_classes < 2:
            raise ValueError(f"KNNProbe: num_classes must be at least 2, got {num_classes}")
        if k < 1 or temperature <= 0:
            raise ValueError(f"KNNProbe: k must be positive and temperature > 0, got k={k}, temperature={temperature}")
        self.save_hyperparameters()
        self.hp = typed_view(KNNProbeHParams, locals())
        self.encoder = FrozenEncoder(encoder, random_init, image_shape)
        self.image_shape = self.encoder.image_shape
        self.init_accuracies(num_classes)
        self.bank: Tensor | None = None
        self.bank_labels: Tensor | None = None

    def setup(self, stage: str) -> None:
        datamodule = getattr(self._trainer, "datamodule", None)
        self.encoder.check_fits_data(datamodule, self.hp.num_classes, type(self).__name__)

    def build_bank(self) -> None:
        """Features and labels of the data module's whole training split, on this module's device."""
        datamodule = getattr(self._trainer, "datamodule", None)
        if datamodule is None or not hasattr(datamodule, "train_set") or not hasattr(datamodule, "normalize"):
            raise TypeError(
                "KNNProbe needs an image data module (e.g. palm_lightning.datamodules.FashionMNISTDataModule) "
                "with `train_set` and `normalize`: pass it as `datamodule=` or in the config's `data:`"
            )
        if datamodule.train_set is None:
            datamodule.setup("fit")
        train = datamodule.train_set
        labels = train.labels
        if len(labels) and int(labels.max()) >= self.hp.num_classes:
            raise ValueError(
                f"KNNProbe: the training labels go up to {int(labels.max())} but num_classes={self.hp.num_classes}"
            )
        self.bank = extract_features(self.encoder, train.images, datamodule.normalize, device=self.device).to(
            self.device
        )
        self.bank_labels = labels.to(self.device)

    def on_validation_epoch_start(self) -> None:
        self.build_bank()

    def on_test_epoch_start(self) -> None:
        self.build_bank()

    def _evaluate(self, batch: tuple[Tensor, Tensor], stage: str) -> None:
        assert self.bank is not None and self.bank_labels is not None
        images, labels = batch
        votes = knn_votes(
            self.bank, self.bank_labels, encode(self.encoder, images), self.hp.num_classes,
            self.hp.k, self.hp.temperature,
        )  # fmt: skip
        self.log_accuracies(votes, labels, stage, "knn_acc", prog_bar=True)

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def _release_bank(self) -> None:
        self.bank = self.bank_labels = None  # hundreds of MB for a 60 000-image pixel bank

    def on_validation_epoch_end(self) -> None:
        self._release_bank()

    def on_test_epoch_end(self) -> None:
        self._release_bank()
