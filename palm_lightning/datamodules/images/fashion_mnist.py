"""Fashion-MNIST, found offline first.

Search order (the first hit wins):

1. ``<data_dir>/FashionMNIST/raw/`` already holds the four IDX files (torchvision's layout);
2. a system copy of the gzipped IDX files (Debian's ``dataset-fashion-mnist`` package puts them in
   ``/usr/share/datasets/fashion-mnist/``): they are decompressed into ``<data_dir>``;
3. with ``download: true``, torchvision downloads them.

Otherwise :class:`DatasetNotFoundError` says where we looked and the two ways to get the data.
"""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path
from typing import Literal

from torch import Tensor
from torchvision.datasets import FashionMNIST

from palm_lightning.datamodules.images.base import DatasetNotFoundError, ImageDataModule

DEBIAN_DIR = "/usr/share/datasets/fashion-mnist"
RAW_FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


class FashionMNISTDataModule(ImageDataModule):
    """Fashion-MNIST (10 classes, 28×28 grayscale; padded to 32×32 by default).

    Args:
        system_dir: a directory holding the gzipped IDX files (Debian's package location by
            default); checked when ``data_dir`` has no data.
        **kwargs: see :class:`~palm_lightning.datamodules.images.base.ImageDataModule`.
    """

    num_classes = 10
    channels = 1
    class_names = (
        "T-shirt/top",
        "Trouser",
        "Pullover",
        "Dress",
        "Coat",
        "Sandal",
        "Shirt",
        "Sneaker",
        "Bag",
        "Ankle boot",
    )

    def __init__(self, *args, system_dir: str = DEBIAN_DIR, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.system_dir = Path(system_dir)

    @property
    def raw_dir(self) -> Path:
        return self.data_dir / "FashionMNIST" / "raw"

    def _has_raw(self) -> bool:
        return all((self.raw_dir / name).is_file() for name in RAW_FILES)

    def prepare_data(self) -> None:
        if self._has_raw():
            return
        if all((self.system_dir / f"{name}.gz").is_file() for name in RAW_FILES):
            self.raw_dir.mkdir(parents=True, exist_ok=True)
            for name in RAW_FILES:
                target = self.raw_dir / name
                partial = target.with_suffix(".partial")
                with gzip.open(self.system_dir / f"{name}.gz", "rb") as src, open(partial, "wb") as dst:
                    shutil.copyfileobj(src, dst)
                partial.replace(target)  # never leave a half-written file under the real name
            return
        if self.download:
            FashionMNIST(str(self.data_dir), train=True, download=True)
            FashionMNIST(str(self.data_dir), train=False, download=True)
            return
        raise DatasetNotFoundError(
            "Fashion-MNIST not found. Looked in:\n"
            f"  - {self.raw_dir}/ (the four IDX files {', '.join(RAW_FILES)})\n"
            f"  - {self.system_dir}/ (the same files, gzipped)\n"
            "Get it either way:\n"
            "  - offline on Debian/Ubuntu: sudo apt-get install -y dataset-fashion-mnist\n"
            "  - from the internet: set `download: true` on the data module "
            "(--data.init_args.download true)"
        )

    def load_split(self, split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        self.prepare_data()
        try:
            dataset = FashionMNIST(str(self.data_dir), train=split == "train", download=False)
        except (RuntimeError, ValueError, OSError) as err:  # torchvision checks existence, not content
            raise DatasetNotFoundError(
                f"Fashion-MNIST files in {self.raw_dir}/ are unreadable (truncated or not IDX: {err}). "
                "Delete that folder and run again to re-extract or re-download them."
            ) from err
        return dataset.data.unsqueeze(1).contiguous(), dataset.targets
