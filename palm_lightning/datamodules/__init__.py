"""LightningDataModules: static image datasets and experience streams fed by an agent."""

from palm_lightning.datamodules.atari import AtariDataError, AtariFramesDataModule
from palm_lightning.datamodules.atari_game import AtariGameDataModule
from palm_lightning.datamodules.cifar import CIFAR10DataModule, CIFAR100DataModule
from palm_lightning.datamodules.digits import DigitsDataModule
from palm_lightning.datamodules.experience import ExperienceDataModule, ExperienceStream
from palm_lightning.datamodules.fashion_mnist import FashionMNISTDataModule
from palm_lightning.datamodules.images import DatasetNotFoundError, ImageDataModule
from palm_lightning.datamodules.latent_manifold import LatentManifoldDataModule
from palm_lightning.datamodules.meta_tasks import MetaTaskDataModule
from palm_lightning.datamodules.multitask import MultiTaskDataModule
from palm_lightning.datamodules.ood import OODDataModule
from palm_lightning.datamodules.pearl import PEARLDataModule
from palm_lightning.datamodules.replay import ReplayBuffer
from palm_lightning.datamodules.svhn import SVHNDataModule

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
