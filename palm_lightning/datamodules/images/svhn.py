"""SVHN (Street View House Numbers, cropped digits) through torchvision's own loader.

The files are torchvision's: ``<data_dir>/train_32x32.mat`` and ``<data_dir>/test_32x32.mat``
(directly in ``data_dir``, as torchvision's ``SVHN(root)`` expects). The ``extra`` split is not
used. Reading ``.mat`` files needs scipy, an optional dependency: a clear ImportError says so.
Nothing is fetched unless ``download: true``; otherwise missing or corrupt files raise
:class:`DatasetNotFoundError` naming the folder, the files expected and the fix.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from torch import Tensor
from torchvision.datasets import SVHN
from torchvision.datasets.utils import check_integrity, download_url

from palm_lightning.datamodules.images.base import DatasetNotFoundError, ImageDataModule

SPLITS: tuple[str, ...] = ("train", "test")


def _require_scipy() -> None:
    """Fail before any download or load: torchvision would only say ``No module named 'scipy'``."""
    if importlib.util.find_spec("scipy") is None:
        raise ImportError(
            "SVHNDataModule reads SVHN's .mat files with scipy, which is not installed: pip install scipy"
        )


class SVHNDataModule(ImageDataModule):
    """SVHN cropped digits (10 classes, 32×32 RGB; 73 257 train / 26 032 test).

    Labels are digits 0..9: the files store digit 0 as label 10, and torchvision maps it to 0.

    Args:
        **kwargs: see :class:`~palm_lightning.datamodules.images.base.ImageDataModule`.
    """

    num_classes = 10
    channels = 3
    class_names = tuple(str(i) for i in range(10))

    @property
    def dataset_dir(self) -> Path:
        """The folder torchvision reads (``data_dir`` itself)."""
        return self.data_dir

    def _problems(self) -> list[str]:
        """``"<file> (missing)"`` / ``"<file> (corrupt: md5 mismatch)"`` for each bad file."""
        problems = []
        for split in SPLITS:
            _, filename, md5 = SVHN.split_list[split]  # read at call time: always what torchvision checks
            path = self.dataset_dir / filename
            if not path.is_file():
                problems.append(f"{filename} (missing)")
            elif not check_integrity(str(path), md5):
                problems.append(f"{filename} (corrupt: md5 mismatch)")
        return problems

    def _not_found(self, problems: list[str]) -> DatasetNotFoundError:
        files = [SVHN.split_list[split][1] for split in SPLITS]
        urls = ", ".join(SVHN.split_list[split][0] for split in SPLITS)
        return DatasetNotFoundError(
            f"SVHN not found or corrupted in {self.dataset_dir}/\n"
            f"  expected files: {', '.join(files)}\n"
            f"  problems: {'; '.join(problems) or 'torchvision could not read the files'}\n"
            "Get it either way:\n"
            "  - from the internet: set `download: true` on the data module "
            "(--data.init_args.download true)\n"
            f"  - offline: copy the official files ({urls}) into {self.dataset_dir}/"
        )

    def prepare_data(self) -> None:
        """Verify both files (md5, as torchvision does); download them only if allowed."""
        _require_scipy()
        problems = self._problems()
        if problems and self.download:
            for split in SPLITS:
                url, filename, md5 = SVHN.split_list[split]
                download_url(url, str(self.dataset_dir), filename, md5)  # skips files that already verify
            problems = self._problems()
        if problems:
            raise self._not_found(problems)

    def load_split(self, split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        _require_scipy()
        try:
            dataset = SVHN(str(self.dataset_dir), split=split, download=self.download)
        except RuntimeError as error:  # torchvision's "Dataset not found or corrupted"
            raise self._not_found(self._problems()) from error
        images = torch.from_numpy(np.ascontiguousarray(dataset.data))  # already (N, 3, 32, 32) uint8
        return images, torch.from_numpy(np.asarray(dataset.labels, dtype=np.int64)).reshape(-1)
