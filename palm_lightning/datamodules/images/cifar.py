"""CIFAR-10 and CIFAR-100 through torchvision's own loaders.

The data live in torchvision's layout, ``<data_dir>/cifar-10-batches-py/`` (or
``<data_dir>/cifar-100-python/``), i.e. the folder the official ``*-python.tar.gz`` archive
extracts to. Nothing is fetched unless ``download: true``; otherwise missing or corrupt files
raise :class:`DatasetNotFoundError` naming the folder, the files expected and the fix, instead of
torchvision's bare "Dataset not found or corrupted".
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import CIFAR10, CIFAR100
from torchvision.datasets.utils import check_integrity, download_and_extract_archive

from palm_lightning.datamodules.images.base import DatasetNotFoundError, ImageDataModule


class _CIFARDataModule(ImageDataModule):
    """Shared logic; subclasses name the torchvision class and the dataset's title.

    The expected files and their md5s are read from the torchvision class at call time (not
    copied here), so they always match what torchvision will verify when loading.
    """

    torchvision_class: type[CIFAR10] = CIFAR10
    title: str = ""
    channels = 3

    @property
    def dataset_dir(self) -> Path:
        """The folder torchvision reads: ``<data_dir>/<base_folder>``."""
        return self.data_dir / self.torchvision_class.base_folder

    def _expected_files(self) -> list[tuple[str, str]]:
        cls = self.torchvision_class
        return [(name, md5) for name, md5 in cls.train_list + cls.test_list] + [(cls.meta["filename"], cls.meta["md5"])]

    def _problems(self) -> list[str]:
        """``"<file> (missing)"`` / ``"<file> (corrupt: md5 mismatch)"`` for each bad file; empty if all verify."""
        problems = []
        for name, md5 in self._expected_files():
            path = self.dataset_dir / name
            if not path.is_file():
                problems.append(f"{name} (missing)")
            elif not check_integrity(str(path), md5):
                problems.append(f"{name} (corrupt: md5 mismatch)")
        return problems

    def _not_found(self, problems: list[str]) -> DatasetNotFoundError:
        cls = self.torchvision_class
        expected = ", ".join(name for name, _ in self._expected_files())
        return DatasetNotFoundError(
            f"{self.title} not found or corrupted in {self.dataset_dir}/\n"
            f"  expected files: {expected}\n"
            f"  problems: {'; '.join(problems) or 'torchvision could not read the files'}\n"
            "Get it either way:\n"
            "  - from the internet: set `download: true` on the data module "
            "(--data.init_args.download true)\n"
            f"  - offline: extract the official archive {cls.filename} ({cls.url}) and copy its "
            f"folder {cls.base_folder}/ into {self.data_dir}/"
        )

    def prepare_data(self) -> None:
        """Verify the files (md5, as torchvision does); download the archive only if allowed."""
        problems = self._problems()
        if not problems:
            return
        if self.download:
            cls = self.torchvision_class
            download_and_extract_archive(cls.url, str(self.data_dir), filename=cls.filename, md5=cls.tgz_md5)
            problems = self._problems()
        if problems:
            raise self._not_found(problems)

    def load_split(self, split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        # download=self.download lets setup() alone work as well; it is a no-op once the files
        # verify, so ranks after prepare_data never fetch again.
        try:
            dataset = self.torchvision_class(str(self.data_dir), train=split == "train", download=self.download)
        except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
            raise self._not_found(self._problems()) from error
        self._set_class_names(dataset.classes)
        images = torch.from_numpy(np.ascontiguousarray(dataset.data.transpose(0, 3, 1, 2)))  # NHWC → NCHW
        return images, torch.as_tensor(dataset.targets, dtype=torch.long)

    def _set_class_names(self, names: list) -> None:
        if len(names) == self.num_classes:
            self.class_names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in names)


class CIFAR10DataModule(_CIFARDataModule):
    """CIFAR-10 (10 classes, 32×32 RGB; 50 000 train / 10 000 test).

    Args:
        **kwargs: see :class:`~palm_lightning.datamodules.images.base.ImageDataModule`.
    """

    torchvision_class = CIFAR10
    title = "CIFAR-10"
    num_classes = 10
    class_names = (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )


class CIFAR100DataModule(_CIFARDataModule):
    """CIFAR-100 (100 fine classes, 32×32 RGB; 50 000 train / 10 000 test).

    ``class_names`` are ``"0"``..``"99"`` until the data are loaded, then the dataset's own
    fine-label names (read from its ``meta`` file, so they cannot drift from the labels).

    Args:
        **kwargs: see :class:`~palm_lightning.datamodules.images.base.ImageDataModule`.
    """

    torchvision_class = CIFAR100
    title = "CIFAR-100"
    num_classes = 100
    class_names = tuple(str(i) for i in range(100))
