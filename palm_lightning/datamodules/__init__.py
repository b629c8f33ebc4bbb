"""LightningDataModules, by domain: ``images`` (static labelled datasets), ``streams`` (experience fed
by an agent) and ``atari``. Every class is also importable from here."""

from palm_lightning.datamodules.atari import AtariDataError, AtariFramesDataModule, AtariGameDataModule
from palm_lightning.datamodules.images import (
    CIFAR10DataModule,
    CIFAR100DataModule,
    DatasetNotFoundError,
    DigitsDataModule,
    FashionMNISTDataModule,
    ImageDataModule,
    OODDataModule,
    SVHNDataModule,
)
from palm_lightning.datamodules.streams import (
    ExperienceDataModule,
    ExperienceStream,
    LatentManifoldDataModule,
    MetaTaskDataModule,
    MultiTaskDataModule,
    PEARLDataModule,
    ReplayBuffer,
)

__all__ = [
    "AtariDataError",
    "AtariFramesDataModule",
    "AtariGameDataModule",
    "CIFAR10DataModule",
    "CIFAR100DataModule",
    "DatasetNotFoundError",
    "DigitsDataModule",
    "ExperienceDataModule",
    "ExperienceStream",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "LatentManifoldDataModule",
    "MetaTaskDataModule",
    "MultiTaskDataModule",
    "OODDataModule",
    "PEARLDataModule",
    "ReplayBuffer",
    "SVHNDataModule",
]
