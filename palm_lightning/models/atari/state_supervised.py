"""PALM's encoder trained on the Atari state labels: the supervised upper bound of the AtariARI table.

AtariARI's "supervised" row: the same encoder architecture as the evaluated ones, trained end to end
with the probe's own heads (one linear 256-way classifier per annotated RAM variable) on the train
episodes' state labels. Only the encoder is exported (kind ``"encoder"``), so
:class:`~palm_lightning.models.AtariStateProbe` then fits fresh heads on it, frozen, exactly as on the
self-supervised encoders, and :class:`~palm_lightning.models.AtariFinetune` can start from it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import lightning as L
import torch
from torch import Tensor, nn

from palm_lightning.augment import random_shift
from palm_lightning.checkpoints import ExportableMixin
from palm_lightning.evaluation.state_probe import StateHeads
from palm_lightning.models.atari.state_probe import game_variables, ram_datamodule
from palm_lightning.nn.encoders import DrQEncoder
from palm_lightning.training.config_groups import typed_view

LAYOUT_KEY = "atari_state_variables"
"""Checkpoint entry with each game's label, kept variables and RAM bytes: the heads' shapes, so that
``load_from_checkpoint`` can rebuild them without the data."""


@dataclass(frozen=True)
class AtariStateSupervisedHParams:
    """The module's hyperparameters, typed: its constructor's arguments (the values ``self.hparams`` holds)."""

    image_shape: tuple[int, int, int]
    encoder_channels: int
    encoder_layers: int
    repr_dim: int
    weight_init: Literal["orthogonal", "default"]
    entropy_threshold: float
    variable_reduction: Literal["mean", "sum"]
    lr: float
    weight_decay: float
    lr_schedule: Literal["constant", "cosine"]
    max_shift: int


@dataclass(frozen=True)
class _GameLayout:
    """One game's heads: its class label in the data module, the kept variables and their RAM bytes."""

    label: int
    variables: tuple[str, ...]
    ram_index: tuple[int, ...]


class AtariStateSupervised(ExportableMixin, L.LightningModule):
    """Cross-entropy training of a ``DrQEncoder`` on the RAM state variables of Atari frames.

    Needs an :class:`~palm_lightning.datamodules.AtariFramesDataModule` with ``serve_ram: true``
    (batches ``(images, labels, ram)``; the label is the game). At ``setup`` each game's variables are
    selected as the probe selects them (:func:`~palm_lightning.models.atari.state_probe.game_variables`:
    AtariARI's table minus those below ``entropy_threshold`` nats), and one
    :class:`~palm_lightning.evaluation.state_probe.StateHeads` (a linear 256-way classifier per kept
    variable) is made per game, on the shared encoder. A frame's loss is the cross-entropy of its
    game's variables (mean or sum over them: ``variable_reduction``); a batch's loss is the mean over
    its frames, so games weigh by their frames. Trains on the train episodes (the data module's train
    loader), validates on the val episodes. Logs ``train/loss``, ``train/acc`` (mean over frames of
    the fraction of their variables predicted exactly), ``val/loss``, ``val/acc`` (and ``test/``).

    Choices that are ours, not AtariARI's (whose supervised encoder is trained per game with early
    stopping): one encoder for all the data module's games (the table probes one encoder across
    games), a fixed number of steps, Adam with an optional cosine decay, and no augmentation by default
    (a shift moves the objects whose positions are the labels).

    Args:
        image_shape, encoder_channels, encoder_layers, repr_dim, weight_init: the DrQ encoder, as
            PALM's (``configs/palm_atari.yaml``: 1×64×64, 32 channels, 4 layers, 256, orthogonal).
        entropy_threshold: drop variables below this entropy (nats), as the probe (AtariARI: 0.6).
        variable_reduction: ``"mean"`` (each frame weighs the same, whatever its game's number of
            variables; our default) or ``"sum"`` (each variable weighs the same) over a game's variables.
        lr, weight_decay: Adam's settings (3e-4, AtariARI's probe rate; 0).
        lr_schedule: ``"cosine"`` to 0 over ``trainer.estimated_stepping_batches`` (our default) or
            ``"constant"``.
        max_shift: DrQ random shift of up to this many pixels on the training frames (0: none).
    """

    network_kind = "encoder"

    def __init__(
        self,
        image_shape: tuple[int, int, int] = (1, 64, 64),
        encoder_channels: int = 32,
        encoder_layers: int = 4,
        repr_dim: int = 256,
        weight_init: Literal["orthogonal", "default"] = "orthogonal",
        entropy_threshold: float = 0.6,
        variable_reduction: Literal["mean", "sum"] = "mean",
        lr: float = 3e-4,
        weight_decay: float = 0.0,
        lr_schedule: Literal["constant", "cosine"] = "cosine",
        max_shift: int = 0,
    ) -> None:
        super().__init__()
        if variable_reduction not in ("mean", "sum"):
            raise ValueError(f"variable_reduction must be 'mean' or 'sum', got {variable_reduction!r}")
        if lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {lr_schedule!r}")
        if lr <= 0 or max_shift < 0:
            raise ValueError(f"lr must be positive and max_shift >= 0, got {lr} and {max_shift}")
        self.save_hyperparameters()
        image_shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))  # a YAML list or a tuple
        self.hp = typed_view(AtariStateSupervisedHParams, locals())
        self.encoder = DrQEncoder(
            self.hp.image_shape, encoder_channels, encoder_layers, repr_dim, weight_init=weight_init
        )
        self.heads = nn.ModuleDict()  # one StateHeads per game with kept variables, made at setup
        self.layout: dict[str, _GameLayout] = {}

    def exported_network(self) -> DrQEncoder:
        return self.encoder

    def forward(self, images: Tensor) -> Tensor:
        """The encoder's features ``(N, repr_dim)`` of images in ``[-1, 1]``."""
        return self.encoder(images)

    # --- the heads, from the data or from a checkpoint -------------------------------------------
    def build_heads(self, layout: dict[str, _GameLayout]) -> None:
        """Make one ``StateHeads`` per game that has variables (a layout already built must match)."""
        if self.layout:
            if layout != self.layout:
                raise ValueError(
                    "AtariStateSupervised: the data's games or kept variables differ from the heads already "
                    f"built ({sorted(layout)} vs {sorted(self.layout)}): use the data settings it was trained with"
                )
            return
        self.layout = layout
        for rom, game in layout.items():
            if game.variables:
                self.heads[rom] = StateHeads(self.encoder.out_dim, len(game.variables)).to(self.device)

    def setup(self, stage: str) -> None:
        datamodule = ram_datamodule(self)
        if tuple(datamodule.image_shape) != self.hp.image_shape:
            raise ValueError(
                f"AtariStateSupervised: model.image_shape is {self.hp.image_shape} but the Atari frames are "
                f"{tuple(datamodule.image_shape)}: set --data.init_args.screen_size {self.hp.image_shape[-1]}"
            )
        layout = {}
        for label, rom in enumerate(datamodule.roms):
            kept = game_variables(datamodule, label, rom, self.hp.entropy_threshold)
            layout[rom] = _GameLayout(label, kept.names, tuple(int(i) for i in kept.ram_index))
        if not any(game.variables for game in layout.values()):
            raise ValueError(
                f"AtariStateSupervised: no game has a variable with entropy >= {self.hp.entropy_threshold}: "
                "nothing to train on"
            )
        self.build_heads(layout)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        super().on_save_checkpoint(checkpoint)
        checkpoint[LAYOUT_KEY] = {
            rom: {"label": g.label, "variables": list(g.variables), "ram_index": list(g.ram_index)}
            for rom, g in self.layout.items()
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Rebuild the heads before Lightning loads the state dict (``load_from_checkpoint`` has no data)."""
        saved = checkpoint.get(LAYOUT_KEY, {})
        self.build_heads(
            {
                rom: _GameLayout(int(g["label"]), tuple(g["variables"]), tuple(int(i) for i in g["ram_index"]))
                for rom, g in saved.items()
            }
        )

    # --- training and evaluation -----------------------------------------------------------------
    def state_loss(self, images: Tensor, labels: Tensor, ram: Tensor) -> tuple[Tensor, Tensor]:
        """Loss (mean over the frames of games with heads) and mean exact-value accuracy of a batch."""
        features = self.encoder(images)
        total = features.new_zeros(())
        correct = features.new_zeros(())
        frames = 0
        for rom, game in self.layout.items():
            rows = labels == game.label
            n = int(rows.sum())
            if rom not in self.heads or n == 0:
                continue
            heads: Any = self.heads[rom]
            targets = ram[rows][:, list(game.ram_index)].long()
            logits = heads(features[rows])  # (n, V, 256)
            loss = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="sum")
            hits = (logits.argmax(-1) == targets).float()
            if self.hp.variable_reduction == "mean":
                loss = loss / len(game.variables)
            total = total + loss
            correct = correct + hits.mean(1).sum()
            frames += n
        frames = max(frames, 1)
        return total / frames, correct / frames

    def _batch(self, batch: tuple[Tensor, ...]) -> tuple[Tensor, Tensor, Tensor]:
        if len(batch) != 3:
            raise ValueError("AtariStateSupervised reads the RAM in each batch: set --data.init_args.serve_ram true")
        images, labels, ram = batch
        return images, labels, ram

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        images, labels, ram = self._batch(batch)
        if self.hp.max_shift:
            images = random_shift(images, self.hp.max_shift)
        loss, accuracy = self.state_loss(images, labels, ram)
        self.log("train/loss", loss, prog_bar=True)
        self.log("train/acc", accuracy)
        return loss

    def _evaluate(self, batch: tuple[Tensor, ...], stage: str) -> None:
        loss, accuracy = self.state_loss(*self._batch(batch))
        self.log(f"{stage}/loss", loss)
        self.log(f"{stage}/acc", accuracy, prog_bar=stage == "val")

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def configure_optimizers(self) -> Any:
        optimizer = torch.optim.Adam(self.parameters(), lr=self.hp.lr, weight_decay=self.hp.weight_decay)
        if self.hp.lr_schedule == "constant":
            return optimizer
        steps = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=steps)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
