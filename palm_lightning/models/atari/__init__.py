"""Atari downstream: DrQ(ε) fine-tuning, the AtariARI state probe, and the RAM-supervised control encoder."""

from palm_lightning.models.atari.finetune import AtariFinetune
from palm_lightning.models.atari.state_probe import AtariStateProbe
from palm_lightning.models.atari.state_supervised import AtariStateSupervised

__all__ = ["AtariFinetune", "AtariStateProbe", "AtariStateSupervised"]
