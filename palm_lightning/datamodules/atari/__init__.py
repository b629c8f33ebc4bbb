"""Atari data: recorded frames with RAM labels (generator training, probes) and a live game for RL."""

from palm_lightning.datamodules.atari.frames import AtariDataError, AtariFramesDataModule
from palm_lightning.datamodules.atari.game import AtariGameDataModule

__all__ = ["AtariDataError", "AtariFramesDataModule", "AtariGameDataModule"]
