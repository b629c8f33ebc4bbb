"""LightningDataModules: static image datasets (and, later, experience streams)."""

from palm_lightning.datamodules.cifar import CIFAR10DataModule, CIFAR100DataModule
from palm_lightning.datamodules.fashion_mnist import FashionMNISTDataModule
from palm_lightning.datamodules.images import DatasetNotFoundError, ImageDataModule
from palm_lightning.datamodules.svhn import SVHNDataModule

__all__ = [
    "CIFAR100DataModule",
    "CIFAR10DataModule",
    "DatasetNotFoundError",
    "FashionMNISTDataModule",
    "ImageDataModule",
    "SVHNDataModule",
]
