"""palm_lightning: Lightning modules for representation learning through interaction (PALM, EAR).

Entry points: the command line (``python -m palm_lightning fit --config …``), the LightningModules
in :mod:`palm_lightning.models`, the DataModules in :mod:`palm_lightning.datamodules`, and the
network files of :mod:`palm_lightning.checkpoints`.
"""

from __future__ import annotations

from torch import nn

from palm_lightning.checkpoints import load_network, packaged
from palm_lightning.envs import register_envs  # noqa: F401  (importing envs registers the gymnasium ids)

__version__ = "0.1.0"

SHIPPED_GENERATOR = "fmnist_stylegan.pt"
SHIPPED_CLASSIFIER = "fmnist_classifier.pt"


def load_shipped_generator() -> nn.Module:
    """The conditional StyleGAN2 trained on Fashion-MNIST that ships with the package (EMA
    weights, 10 classes, 1×32×32 images in [-1, 1], latent size 64), in eval mode on the CPU."""
    return load_network(packaged(SHIPPED_GENERATOR), kind="generator")


def load_shipped_classifier() -> nn.Module:
    """The reference Fashion-MNIST classifier that scores generators (see tools.generator_quality)."""
    return load_network(packaged(SHIPPED_CLASSIFIER), kind="classifier")


__all__ = ["__version__", "load_network", "load_shipped_classifier", "load_shipped_generator"]
