"""AtariARI state probe: linear classifiers of RAM state variables on a frozen encoder's features."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import lightning as L
import torch
from lightning.pytorch.utilities import rank_zero_info
from torch import Tensor, nn

from palm_lightning.evaluation.atari_ram import CATEGORIES, game_annotations
from palm_lightning.evaluation.features import extract_features
from palm_lightning.evaluation.state_probe import (
    StateHeads,
    StateVariables,
    category_means,
    fit_state_heads,
    kept_variables,
    weighted_f1,
)
from palm_lightning.models.evaluation.frozen_encoder import PIXELS, FrozenEncoder
from palm_lightning.nn.feature_standardizer import FeatureStandardizer
from palm_lightning.training.config_groups import typed_view


def ram_datamodule(module: L.LightningModule) -> Any:
    """The trainer's data module, checked to be an :class:`~palm_lightning.datamodules.AtariFramesDataModule`
    serving RAM (what the state probe and the supervised upper bound read); errors name the module."""
    who = type(module).__name__
    datamodule: Any = getattr(module._trainer, "datamodule", None)
    missing = [a for a in ("split_set", "roms", "normalize", "serve_ram") if not hasattr(datamodule, a)]
    if missing:
        raise TypeError(
            f"{who} needs palm_lightning.datamodules.AtariFramesDataModule (frames with RAM), got "
            f"{type(datamodule).__name__} without {', '.join(missing)}"
        )
    if not datamodule.serve_ram:
        raise ValueError(f"{who} reads the RAM in each batch: set --data.init_args.serve_ram true")
    return datamodule


def game_variables(datamodule: Any, label: int, rom: str, entropy_threshold: float) -> StateVariables:
    """The scored variables of one game (class ``label`` of the data module): AtariARI's table minus
    those whose entropy over all of the game's frames (train, val and test) is below the threshold."""
    ram = torch.cat([s.ram[s.labels == label] for s in (datamodule.split_set(n) for n in ("train", "val", "test"))])
    return kept_variables(game_annotations(rom), ram, entropy_threshold)


@dataclass(frozen=True)
class AtariStateProbeHParams:
    """The probe's hyperparameters, typed: its constructor's arguments (the values ``self.hparams`` holds)."""

    encoder: str
    random_init: bool
    image_shape: tuple[int, int, int] | None
    pixel_pool: int
    games: list[str] | None
    entropy_threshold: float
    lr: float
    batch_size: int
    max_epochs: int
    patience: int
    standardize: bool
    feature_batch_size: int
    seed: int


@dataclass
class _GameProbe:
    """What the probe learned about one game: its kept variables, their RAM indices, the heads."""

    label: int
    variables: list[str]
    ram_index: Tensor
    categories: dict[str, str]
    dropped: dict[str, float]
    heads: StateHeads | None = None
    epochs: int = 0
    standardizer: FeatureStandardizer | None = None

    def standardized(self, features: Tensor) -> Tensor:
        """Features scaled by this game's train statistics (``standardize``), else as given."""
        return features if self.standardizer is None else self.standardizer(features)


class AtariStateProbe(L.LightningModule):
    """AtariARI's evaluation of a frozen encoder: can a linear map read the game state from it?

    Needs an :class:`~palm_lightning.datamodules.AtariFramesDataModule` with ``serve_ram: true``
    and runs with ``test`` (or ``validate``), not ``fit`` — like
    :class:`~palm_lightning.models.KNNProbe`, its training is part of the evaluation::

        python -m palm_lightning test --config configs/eval/atari_probe.yaml --model.init_args.encoder X.ckpt

    At the start of the test (validation) epoch, for each game: the RAM variables of AtariARI's
    table (:mod:`palm_lightning.evaluation.atari_ram`) whose value entropy over the game's frames is
    below ``entropy_threshold`` nats are dropped; the frozen encoder's features of the train and val
    episodes are computed once and cached; one linear 256-way classifier per remaining variable is
    trained on the cached train features with early stopping on val
    (:func:`~palm_lightning.evaluation.state_probe.fit_state_heads`). The test (val) batches then
    stream through the encoder once; at the end each variable's weighted F1 is logged
    (``test/<game>/<variable>_f1``), its mean within each AtariARI category
    (``test/<game>/<category>_f1``), the mean of the category means (``test/<game>/f1``, AtariARI's
    reported number) and the mean over games (``test/f1``). :attr:`results` holds the same numbers
    plus the dropped variables and their entropies.

    Choices that are ours, not AtariARI's: the frame split (the data module's), whole-frame shuffled
    epochs, best-validation weights per variable, no LR decay on plateaus, and ``standardize``
    (off by default, as in AtariARI: features go to the classifiers as the encoder gives them).

    Args:
        encoder, random_init, image_shape: the frozen encoder, as for
            :class:`~palm_lightning.models.LinearProbe` (``"pixels"``, a network file or a package
            ``.ckpt``; ``random_init`` keeps the architecture with fresh weights; ``image_shape``
            only for ``"pixels"``, e.g. ``[1, 64, 64]``).
        pixel_pool: for ``"pixels"``, average ``pixel_pool × pixel_pool`` blocks first. Our choice for
            the CPU table: 2 (64×64 frames → 1 024 features). At full resolution (4 096 features) the
            60 heads of 256 classes take many hours of one CPU thread for the recipe's epochs, 2×2
            pooling a quarter of that; the full-resolution row is for a GPU.
        games: ROM ids or gymnasium names to probe (``None``: every game of the data module).
        entropy_threshold: drop variables whose value entropy (nats) is below this (AtariARI: 0.6).
        lr, batch_size, max_epochs, patience: the classifiers' Adam learning rate (AtariARI's paper:
            3e-4), batch size (64), epoch limit (100) and early-stopping patience in epochs (15).
        standardize: scale features by their train mean and std before the classifiers.
        feature_batch_size: frames per chunk when caching features.
        seed: initialisation and shuffling of the classifiers.
    """

    def __init__(
        self,
        encoder: str = PIXELS,
        random_init: bool = False,
        image_shape: tuple[int, int, int] | None = None,
        pixel_pool: int = 1,
        games: list[str] | None = None,
        entropy_threshold: float = 0.6,
        lr: float = 3e-4,
        batch_size: int = 64,
        max_epochs: int = 100,
        patience: int = 15,
        standardize: bool = False,
        feature_batch_size: int = 1024,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if lr <= 0 or batch_size < 1 or max_epochs < 1 or patience < 1:
            raise ValueError(
                f"lr, batch_size, max_epochs and patience must be positive, got {lr}, {batch_size}, {max_epochs}, "
                f"{patience}"
            )
        self.save_hyperparameters()
        if image_shape is not None:  # a YAML list or a tuple
            image_shape = (int(image_shape[0]), int(image_shape[1]), int(image_shape[2]))
        self.hp = typed_view(AtariStateProbeHParams, locals())
        self.encoder = FrozenEncoder(encoder, random_init, self.hp.image_shape, pixel_pool=pixel_pool)
        self.heads = nn.ModuleDict()
        self.probes: dict[str, _GameProbe] = {}
        self.results: dict[str, Any] = {}
        self._outputs: dict[str, tuple[list[Tensor], list[Tensor]]] = {}

    # --- data ------------------------------------------------------------------------------------
    def _datamodule(self) -> Any:
        return ram_datamodule(self)

    def setup(self, stage: str) -> None:
        datamodule = self._datamodule()
        frames, encoder = tuple(datamodule.image_shape), tuple(self.encoder.image_shape)
        if frames != encoder:  # checked here: the Atari data's size option is screen_size, not resolution
            fix = f"--data.init_args.screen_size {encoder[-1]}" if frames[0] == encoder[0] else "another encoder"
            if self.encoder.is_pixels:
                fix += f", or --model.init_args.image_shape {list(frames)}"
            raise ValueError(
                f"AtariStateProbe: the encoder takes images of shape {encoder}, but the Atari frames are "
                f"{frames}: set {fix}"
            )
        self.encoder.check_fits_data(datamodule, None, type(self).__name__)

    def _games(self, datamodule: Any) -> list[tuple[int, str]]:
        from palm_lightning.datamodules.atari.frames import rom_id

        roms: tuple[str, ...] = datamodule.roms
        wanted = roms if self.hp.games is None else tuple(rom_id(g) for g in self.hp.games)
        absent = [g for g in wanted if g not in roms]
        if absent:
            raise ValueError(f"AtariStateProbe: games {absent} are not in the data module's games {list(roms)}")
        for rom in wanted:
            game_annotations(rom)  # a KeyError listing the annotated games
        return [(roms.index(rom), rom) for rom in wanted]

    # --- fitting the classifiers on cached features ----------------------------------------------
    def _features(self, images: Tensor, datamodule: Any) -> Tensor:
        """Frozen-encoder features of ``uint8`` frames, computed once, chunk by chunk, on this device."""
        return extract_features(
            self.encoder, images, datamodule.normalize, self.hp.feature_batch_size, device=self.device
        ).to(self.device)

    def fit_probes(self) -> None:
        """Train every game's classifiers on cached train features (early stopping on val).

        Runs at the start of Lightning's test/validation epoch, which is under ``inference_mode``:
        gradients are switched back on here, and the features are computed inside, so that they are
        ordinary tensors the classifiers can be trained on.
        """
        with torch.inference_mode(False), torch.enable_grad():
            self._fit_probes()

    def _fit_probes(self) -> None:
        datamodule = self._datamodule()
        splits = {name: datamodule.split_set(name) for name in ("train", "val", "test")}
        self.probes = {}
        self.heads = nn.ModuleDict()
        games = self._games(datamodule)
        for index, (label, rom) in enumerate(games, 1):
            rows = {name: s.labels == label for name, s in splits.items()}
            kept = game_variables(datamodule, label, rom, self.hp.entropy_threshold)
            probe = _GameProbe(
                label=label,
                variables=list(kept.names),
                ram_index=kept.ram_index,
                categories=kept.categories,
                dropped=kept.dropped,
            )
            self.probes[rom] = probe
            if not probe.variables:
                continue
            started = time.monotonic()
            train, val = splits["train"], splits["val"]
            train_x = self._features(train.images[rows["train"]], datamodule)
            if self.hp.standardize:
                probe.standardizer = FeatureStandardizer(train_x.shape[1]).to(train_x.device)
                probe.standardizer.fit(train_x)
            heads, epochs = fit_state_heads(
                probe.standardized(train_x),
                train.ram[rows["train"]][:, probe.ram_index].long().to(self.device),
                probe.standardized(self._features(val.images[rows["val"]], datamodule)),
                val.ram[rows["val"]][:, probe.ram_index].long().to(self.device),
                lr=self.hp.lr,
                batch_size=self.hp.batch_size,
                max_epochs=self.hp.max_epochs,
                patience=self.hp.patience,
                seed=self.hp.seed,
            )
            probe.heads, probe.epochs = heads, epochs
            self.heads[rom] = heads
            # a line per game: the heads train for minutes to an hour (raw pixels) before the test epoch logs
            rank_zero_info(
                f"AtariStateProbe: {rom} ({index}/{len(games)}): {len(probe.variables)} variables, "
                f"{epochs} epochs, {time.monotonic() - started:.0f} s"
            )

    # --- evaluation ------------------------------------------------------------------------------
    def on_validation_epoch_start(self) -> None:
        self.fit_probes()
        self._outputs = {}

    def on_test_epoch_start(self) -> None:
        self.fit_probes()
        self._outputs = {}

    def _evaluate(self, batch: tuple[Tensor, ...]) -> None:
        if len(batch) != 3:
            raise ValueError("AtariStateProbe reads the RAM in each batch: set --data.init_args.serve_ram true")
        images, labels, ram = batch
        self.encoder.check_images(images, type(self).__name__)
        features = self.encoder(images)
        for rom, probe in self.probes.items():
            rows = labels == probe.label
            if probe.heads is None or not bool(rows.any()):
                continue
            predictions, targets = self._outputs.setdefault(rom, ([], []))
            predictions.append(probe.heads.predict(probe.standardized(features[rows])).cpu())
            targets.append(ram[rows][:, probe.ram_index.to(ram.device)].long().cpu())

    def validation_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch)

    def test_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> None:
        self._evaluate(batch)

    def _report(self, stage: str) -> None:
        results: dict[str, Any] = {}
        overall = []
        for rom, probe in self.probes.items():
            game: dict[str, Any] = {"dropped": probe.dropped, "epochs": probe.epochs, "f1": {}}
            predictions, targets = self._outputs.get(rom, ([], []))
            if predictions:
                p, t = torch.cat(predictions), torch.cat(targets)
                game["f1"] = {n: weighted_f1(p[:, i], t[:, i]) for i, n in enumerate(probe.variables)}
            by_category = category_means(game["f1"], probe.categories)
            game["categories"] = {c: by_category[c] for c in CATEGORIES if c in by_category}
            if game["categories"]:
                game["mean_f1"] = sum(game["categories"].values()) / len(game["categories"])
                overall.append(game["mean_f1"])
                self.log(f"{stage}/{rom}/f1", game["mean_f1"])
            for name, score in game["f1"].items():
                self.log(f"{stage}/{rom}/{name}_f1", score)
            for category, score in game["categories"].items():
                self.log(f"{stage}/{rom}/{category}_f1", score)
            results[rom] = game
        if overall:
            results["mean_f1"] = sum(overall) / len(overall)
            self.log(f"{stage}/f1", results["mean_f1"], prog_bar=True)
        self.results = results

    def on_validation_epoch_end(self) -> None:
        self._report("val")

    def on_test_epoch_end(self) -> None:
        self._report("test")

    def training_step(self, batch: Any, batch_idx: int) -> Tensor:
        raise RuntimeError(
            "AtariStateProbe trains its classifiers inside `test`/`validate` (on cached features): run "
            "`python -m palm_lightning test --config configs/eval/atari_probe.yaml`, not `fit`"
        )

    def configure_optimizers(self) -> None:
        """Nothing for Lightning to optimise: the classifiers are fitted in :meth:`fit_probes`."""
        return None
