"""palm_lightning: Lightning modules for representation learning through interaction (PALM, EAR).

Entry points: the command line (``python -m palm_lightning fit --config …``), the LightningModules
in :mod:`palm_lightning.models`, the DataModules in :mod:`palm_lightning.datamodules`, and the
network files of :mod:`palm_lightning.checkpoints`.
"""

from __future__ import annotations

from pathlib import Path

from torch import nn

from palm_lightning.checkpoints import CheckpointError, load_network, packaged
from palm_lightning.envs import register_envs  # noqa: F401  (importing envs registers the gymnasium ids)

__version__ = "0.1.0"

SHIPPED_GENERATORS = {
    "fmnist_vaegan": "fmnist_vaegan.pt",
    "fmnist_stylegan": "fmnist_stylegan.pt",
}
"""Generators shipped in ``palm_lightning/weights/``, by name (what ``generator: <name>`` in a config
and ``--generator <name>`` of the tools accept). ``fmnist_vaegan`` (the default): the same
StyleGAN2 generator network trained as a conditional VAE-GAN's decoder, whose encoder makes every
training image reachable from some z, so its samples vary within a class nearly as much as the real
data. ``fmnist_stylegan``: the first conditional StyleGAN2, whose samples vary little within a
class. Both: Fashion-MNIST, 10 classes, 1×32×32, z of size 64 (docs/results/generators.md scores
them)."""
DEFAULT_GENERATOR = "fmnist_vaegan"
"""The name of the generator used when none is given."""
SHIPPED_GENERATOR = SHIPPED_GENERATORS[DEFAULT_GENERATOR]
SHIPPED_CLASSIFIER = "fmnist_classifier.pt"


def shipped_generator_path(name: str = DEFAULT_GENERATOR) -> Path:
    """The network file of the shipped generator called ``name`` (see :data:`SHIPPED_GENERATORS`)."""
    if name not in SHIPPED_GENERATORS:
        raise CheckpointError(
            f"no shipped generator is called {name!r}; the shipped ones are {sorted(SHIPPED_GENERATORS)}"
        )
    return packaged(SHIPPED_GENERATORS[name])


def load_shipped_generator(name: str = DEFAULT_GENERATOR) -> nn.Module:
    """A conditional generator shipped with the package, by name (default :data:`DEFAULT_GENERATOR`;
    EMA weights, 10 Fashion-MNIST classes, 1×32×32 images in [-1, 1], latent size 64), in eval mode
    on the CPU."""
    return load_network(shipped_generator_path(name), kind="generator")


def load_shipped_classifier() -> nn.Module:
    """The reference Fashion-MNIST classifier that scores generators (see tools.generator_quality)."""
    return load_network(packaged(SHIPPED_CLASSIFIER), kind="classifier")


__all__ = ["DEFAULT_GENERATOR", "SHIPPED_GENERATORS", "__version__", "load_network", "load_shipped_classifier"]
__all__ += ["load_shipped_generator", "shipped_generator_path"]
