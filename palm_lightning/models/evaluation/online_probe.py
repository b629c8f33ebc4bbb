"""The online kNN probe of the pretraining modules: how good the representation is, during training.

One implementation for every module that learns an image encoder (PALM and its variants, SimSiam
on real images): at every validation, labelled real images are encoded with the current encoder
and each query is classified by the weighted vote of its ``k`` most cosine-similar bank features
(:func:`~palm_lightning.evaluation.knn.knn_classify`, InstDisc's weights
``exp(similarity / temperature)``). Nothing is trained, so the accuracy follows the feature
geometry itself, and it is logged under one name, :attr:`OnlineKNNProbe.probe_metric`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torch import Tensor

from palm_lightning.evaluation.knn import knn_classify
from palm_lightning.training.typed_lightning import all_gather_tensor

if TYPE_CHECKING:  # a mixin for LightningModules: type-checked as one, a plain class at run time
    import lightning as L

    _ModuleBase = L.LightningModule
else:
    _ModuleBase = object


class OnlineKNNProbe(_ModuleBase):
    """Mixin for LightningModules: the online kNN probe as their validation loop.

    Put it before ``L.LightningModule`` in the bases (it provides ``validation_step``,
    ``on_validation_epoch_start`` and ``on_validation_epoch_end``) and call
    :meth:`init_online_probe` in ``__init__``.

    The subclass provides:

    * :meth:`probe_features` ``(images) -> (B, D)``: the representation being learned, of one
      validation batch of images (whatever the data module serves: float in ``[-1, 1]``, or
      ``uint8`` if the subclass converts them). The mixin calls it under ``torch.no_grad()`` and
      casts the result to ``float32``. It is a separate method, not ``forward``, because what is
      probed is the encoder's output, not whatever the module's ``forward`` returns.
    * optionally :meth:`probe_bank` ``() -> (features (N, D), labels (N,))``: the labelled bank,
      computed by the module itself (e.g. from the training split of its data module). By default
      it returns ``None``, and the bank is validation dataloader 0.
    * an ``updates`` buffer (a 0-d integer tensor counting optimiser updates): the step at which
      the sanity-check probe is logged (Lightning's ``global_step`` is used if there is none).

    Batches are ``(images, labels)``. Where the bank comes from decides what the dataloaders are:

    * ``probe_bank()`` returns ``None`` (PALM): two validation dataloaders, index 0 the labelled
      bank (e.g. training-split images), index 1 the labelled queries.
    * ``probe_bank()`` returns a bank (SimSiam on real images): every validation batch, from any
      dataloader, is a query.

    At the end of the validation epoch the accuracy of the queries is logged as
    :attr:`probe_metric` (``probe/knn_acc``): with ``self.log(..., prog_bar=True,
    rank_zero_only=True)``, and during Lightning's sanity check — whose logs Lightning drops — with
    the logger directly at step ``updates`` (0 before training), so that the curve starts before
    the first update. Under DDP the dataloader features and labels are all-gathered, so every rank
    classifies the whole query set against the whole bank; a ``probe_bank()`` bank is not gathered
    (each rank must return the full bank). The number of classes is the largest label seen + 1.
    """

    probe_metric = "probe/knn_acc"

    def init_online_probe(self, k: int = 20, temperature: float = 0.07) -> None:
        """Set the probe's ``k`` (neighbours that vote) and vote ``temperature``; call in ``__init__``."""
        if k < 1 or temperature <= 0:
            raise ValueError(
                f"{type(self).__name__}: the online kNN probe needs k >= 1 and temperature > 0, "
                f"got k={k}, temperature={temperature}"
            )
        self.online_probe_k = int(k)
        self.online_probe_temperature = float(temperature)
        self._reset_online_probe()

    # --- what the subclass provides -----------------------------------------------------------
    def probe_features(self, images: Tensor) -> Tensor:
        """Features ``(B, D)`` of a batch of validation images (called under ``torch.no_grad()``)."""
        raise NotImplementedError(f"{type(self).__name__} must define probe_features(images) -> (B, D) features")

    def probe_bank(self) -> tuple[Tensor, Tensor] | None:
        """The labelled bank ``(features (N, D), labels (N,))`` on this module's device, or ``None``:
        validation dataloader 0 is the bank. Called under ``torch.no_grad()`` at the end of every
        validation epoch that has batches."""
        return None

    # --- the validation hooks -----------------------------------------------------------------
    def _reset_online_probe(self) -> None:
        self._probe_batches: dict[int, list[tuple[Tensor, Tensor]]] = {}

    def on_validation_epoch_start(self) -> None:
        super().on_validation_epoch_start()
        self._reset_online_probe()

    def validation_step(self, batch: tuple[Tensor, Tensor], batch_idx: int, dataloader_idx: int = 0) -> None:
        images, labels = batch
        with torch.no_grad():
            features = self.probe_features(images)
        if features.ndim != 2 or features.shape[0] != labels.shape[0]:
            raise ValueError(
                f"{type(self).__name__}.probe_features must return (B, D) features, one row per image: got "
                f"{tuple(features.shape)} for {labels.shape[0]} images"
            )
        self._probe_batches.setdefault(dataloader_idx, []).append((features.detach().float(), labels))

    def on_validation_epoch_end(self) -> None:
        super().on_validation_epoch_end()
        batches, self._probe_batches = self._probe_batches, {}
        if not batches:
            return
        with torch.no_grad():
            bank = self.probe_bank()
        if bank is None:
            if not set(batches) <= {0, 1}:
                raise RuntimeError(
                    f"{type(self).__name__}: the online kNN probe takes two validation dataloaders (0: bank, "
                    f"1: queries), got batches from dataloaders {sorted(batches)}"
                )
            if not batches.get(0) or not batches.get(1):
                return
            bank_features, bank_labels = self._gather_probe_batches(batches[0])
            queries, query_labels = self._gather_probe_batches(batches[1])
        else:
            queries, query_labels = self._gather_probe_batches([b for idx in sorted(batches) for b in batches[idx]])
            bank_features, bank_labels = bank[0].to(queries.device).float(), bank[1].to(queries.device)
        accuracy = self.online_probe_accuracy(bank_features, bank_labels, queries, query_labels)
        self._log_online_probe(accuracy)

    # --- the probe itself ---------------------------------------------------------------------
    def online_probe_accuracy(self, bank: Tensor, bank_labels: Tensor, queries: Tensor, query_labels: Tensor) -> Tensor:
        """Fraction of ``queries (Q, D)`` whose kNN vote in ``bank (N, D)`` is their label."""
        num_classes = int(max(bank_labels.max(), query_labels.max())) + 1
        predictions = knn_classify(
            bank, bank_labels, queries, num_classes, self.online_probe_k, self.online_probe_temperature
        )
        return (predictions == query_labels.to(predictions.device)).float().mean()

    def _gather_probe_batches(self, batches: list[tuple[Tensor, Tensor]]) -> tuple[Tensor, Tensor]:
        """This rank's features and labels, concatenated; under DDP, all ranks' (all_gather)."""
        features = torch.cat([f for f, _ in batches])
        labels = torch.cat([y for _, y in batches])
        if self.trainer.world_size > 1:
            features = all_gather_tensor(self, features).flatten(0, -2)
            labels = all_gather_tensor(self, labels).flatten()
        return features, labels

    def _log_online_probe(self, accuracy: Tensor) -> None:
        trainer = self.trainer
        if trainer.sanity_checking:
            # Lightning drops logs during the sanity check; the probe before training is worth keeping.
            if self.logger is not None and trainer.is_global_zero:
                updates = getattr(self, "updates", None)
                step = int(updates) if updates is not None else int(trainer.global_step)
                self.logger.log_metrics({self.probe_metric: float(accuracy)}, step=step)
        else:
            self.log(self.probe_metric, accuracy, prog_bar=True, rank_zero_only=True)
