"""Static labelled image datasets (Fashion-MNIST, CIFAR, SVHN, digits) and the OOD pairing of two of them."""

from palm_lightning.datamodules.images.base import DatasetNotFoundError, ImageDataModule
from palm_lightning.datamodules.images.cifar import CIFAR10DataModule, CIFAR100DataModule
from palm_lightning.datamodules.images.digits import DigitsDataModule
from palm_lightning.datamodules.images.fashion_mnist import FashionMNISTDataModule
from palm_lightning.datamodules.images.ood import OODDataModule
from palm_lightning.datamodules.images.svhn import SVHNDataModule

__all__ = ["CIFAR10DataModule", "CIFAR100DataModule", "DatasetNotFoundError", "DigitsDataModule"]
__all__ += ["FashionMNISTDataModule", "ImageDataModule", "OODDataModule", "SVHNDataModule"]
