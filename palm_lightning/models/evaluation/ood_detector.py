"""OOD detection with a frozen encoder: fit scorers on in-distribution features, score test sets."""

from __future__ import annotations

from collections.abc import Sequence

import lightning as L
import torch
from torch import Tensor

from palm_lightning.evaluation.features import encode, extract_features
from palm_lightning.evaluation.ood_metrics import ood_metrics
from palm_lightning.evaluation.ood_scorers import SCORERS, KNNDistanceScorer, OODScorer
from palm_lightning.models.evaluation.frozen_encoder import PIXELS, FrozenEncoder
from palm_lightning.training.typed_lightning import all_gather_tensor


def make_scorer(name: str, knn_k: int) -> OODScorer:
    """The scorer called ``name`` in :data:`~palm_lightning.evaluation.SCORERS`."""
    if name not in SCORERS:
        raise ValueError(f"unknown OOD scorer {name!r}; known scorers: {', '.join(sorted(SCORERS))}")
    return KNNDistanceScorer(k=knn_k) if SCORERS[name] is KNNDistanceScorer else SCORERS[name]()


class OODDetector(L.LightningModule):
    """Out-of-distribution detection on the features of a frozen encoder: nothing is trained.

    Needs an :class:`~palm_lightning.datamodules.OODDataModule` and runs with ``test``::

        python -m palm_lightning test --config configs/eval/ood_fmnist.yaml --model.init_args.encoder X.ckpt

    At the start of the test epoch every scorer is fitted on the features (and labels) of the
    in-distribution training images, ``datamodule.train_set``. The test loaders are the
    in-distribution test set (``dataloader_idx`` 0) and the OOD set (1); their scores are gathered
    and, at the end of the epoch, :func:`~palm_lightning.evaluation.ood_metrics` (in-distribution =
    positive) is logged as ``test/<scorer>/auroc``, ``.../aupr_in``, ``.../aupr_out`` and
    ``.../fpr95``. They are epoch-level metrics, so Lightning's results table (and the list that
    ``trainer.test`` returns, one dict per test loader) shows the same values under both loaders;
    TensorBoard gets them once. Under DDP the scores are all-gathered (the distributed sampler may repeat a few
    samples to even out the ranks); every rank fits the scorers on the full bank.

    Args:
        encoder, random_init, image_shape: the frozen encoder, as for
            :class:`~palm_lightning.models.LinearProbe`.
        scorers: names from :data:`~palm_lightning.evaluation.SCORERS`: ``knn`` (−distance to the
            k-th nearest training feature, Sun et al. 2022) and ``mahalanobis`` (class means and a
            shared covariance, Lee et al. 2018).
        knn_k: the ``k`` of the ``knn`` scorer (50, as Sun et al. on CIFAR-10).
    """

    def __init__(
        self,
        encoder: str = PIXELS,
        random_init: bool = False,
        image_shape: tuple[int, int, int] | None = None,
        scorers: Sequence[str] = ("knn", "mahalanobis"),
        knn_k: int = 50,
    ) -> None:
        super().__init__()
        scorers = list(scorers)
        if not scorers:
            raise ValueError(f"OODDetector: give at least one scorer; known scorers: {', '.join(sorted(SCORERS))}")
        if len(set(scorers)) != len(scorers):
            raise ValueError(f"OODDetector: scorers {scorers} has duplicates")
        self.scorers: dict[str, OODScorer] = {name: make_scorer(name, knn_k) for name in scorers}
        self.save_hyperparameters()
        self.encoder = FrozenEncoder(encoder, random_init, image_shape)
        self.image_shape = self.encoder.image_shape
        self._scores: dict[str, dict[int, list[Tensor]]] = {}

    def _ood_datamodule(self):
        datamodule = getattr(self._trainer, "datamodule", None)
        missing = [a for a in ("train_set", "in_test_set", "out_test_set", "normalize") if not hasattr(datamodule, a)]
        if missing:
            raise TypeError(
                f"OODDetector needs an OODDataModule (palm_lightning.datamodules.OODDataModule: in-distribution "
                f"train/test and OOD test sets), got {type(datamodule).__name__} without {', '.join(missing)}"
            )
        return datamodule

    def setup(self, stage: str) -> None:
        self.encoder.check_fits_data(self._ood_datamodule(), None, type(self).__name__)

    def on_test_epoch_start(self) -> None:
        datamodule = self._ood_datamodule()
        if datamodule.train_set is None:
            datamodule.setup("test")
        train = datamodule.train_set
        features = extract_features(self.encoder, train.images, datamodule.normalize, device=self.device).to(
            self.device
        )
        labels = train.labels.to(self.device)
        for scorer in self.scorers.values():
            scorer.fit(features, labels)
        self._scores = {name: {0: [], 1: []} for name in self.scorers}

    def test_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        if dataloader_idx not in (0, 1):
            raise RuntimeError(
                f"OODDetector: expected 2 test loaders (in-distribution, OOD), got index {dataloader_idx}"
            )
        images, _ = batch
        features = encode(self.encoder, images)
        for name, scorer in self.scorers.items():
            self._scores[name][dataloader_idx].append(scorer.score(features))

    def _gather(self, scores: list[Tensor]) -> Tensor:
        gathered = torch.cat(scores) if scores else torch.zeros(0, device=self.device)
        if self.trainer.world_size > 1:
            gathered = all_gather_tensor(self, gathered).flatten()
        return gathered.cpu()

    def on_test_epoch_end(self) -> None:
        for name, by_loader in self._scores.items():
            metrics = ood_metrics(self._gather(by_loader[0]), self._gather(by_loader[1]))
            for key, value in metrics.items():
                self.log(f"test/{name}/{key}", value)
        self._scores = {}
