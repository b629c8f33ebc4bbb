"""scikit-learn's bundled handwritten digits: an offline far-OOD set for Fashion-MNIST.

``sklearn.datasets.load_digits`` ships inside the scikit-learn wheel (UCI's optical recognition
of handwritten digits: 1797 images of 8×8, values 0–16), so this data module never needs a file or
a network. The images are scaled to ``uint8`` (× 255/16, rounded), resized to
``resolution − 2·border`` and zero-padded by ``border`` (2) on each side: at 32×32 that is the
layout of Fashion-MNIST's padded images (28×28 content in a black 2-pixel border). Without the
border (``border: 0``, the digit fills the frame) any detector separates the two sets by the
border pixels alone — raw pixels with the Mahalanobis scorer then reach AUROC 1.0 — which is not
the far-OOD question.

There is no official split: :meth:`DigitsDataModule.load_split` returns a fixed split, drawn once
with seed 0 whatever the data module's ``seed`` — half the images (898) are ``"train"``, the rest
(899) ``"test"``. As an OOD set, ``OODDataModule(out_split="all")`` uses all 1797.
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import Tensor

from palm_lightning.datamodules.images.base import DatasetNotFoundError, ImageDataModule, ResizeMode, to_resolution

SPLIT_SEED = 0  # the train/test split is part of the dataset's definition: it never follows `seed`
MAX_VALUE = 16  # load_digits' pixel range is 0..16


def load_digits_uint8() -> tuple[Tensor, Tensor]:
    """All 1797 digits as ``uint8 (N, 1, 8, 8)`` in 0–255 and ``int64`` labels 0–9."""
    try:
        from sklearn.datasets import load_digits
    except ImportError as error:
        raise DatasetNotFoundError(
            "The handwritten digits are read from scikit-learn's bundled copy, but scikit-learn is not "
            f"installed ({error}): pip install scikit-learn"
        ) from error
    bunch = load_digits()
    images = np.rint(np.asarray(bunch.images, dtype=np.float64) * (255.0 / MAX_VALUE)).clip(0, 255)
    return torch.from_numpy(images.astype(np.uint8)).unsqueeze(1).contiguous(), torch.as_tensor(
        bunch.target, dtype=torch.long
    )


class DigitsDataModule(ImageDataModule):
    """scikit-learn's handwritten digits (10 classes, 8×8 grayscale, resized to 32×32 by default).

    ``data_dir`` and ``download`` are accepted for a uniform interface and ignored: the data come
    with scikit-learn. A missing scikit-learn raises :class:`DatasetNotFoundError`.

    Args:
        border: width of the black frame around the resized digit (0: the digit fills the image).
        resize_mode: how the 8×8 digits are brought to ``resolution − 2·border`` (``resize``;
            8×8 cannot be padded to a useful size).
        **kwargs: see :class:`~palm_lightning.datamodules.images.base.ImageDataModule`.
    """

    num_classes = 10
    channels = 1
    class_names = tuple(str(i) for i in range(10))

    def __init__(self, *args, border: int = 2, resize_mode: ResizeMode = "resize", **kwargs) -> None:
        super().__init__(*args, resize_mode=resize_mode, **kwargs)  # type: ignore[misc]  # a 3rd positional arg would be resize_mode: callers pass keywords
        if not 0 <= 2 * border < self.resolution:
            raise ValueError(
                f"DigitsDataModule: border={border} leaves no room for the digit at resolution={self.resolution} "
                f"(need 0 <= border < {(self.resolution + 1) // 2})"
            )
        self.border = border
        self._all: tuple[Tensor, Tensor] | None = None

    def _prepared(self, split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        """Resize to ``resolution − 2·border``, then zero-pad to ``resolution`` (module docstring)."""
        if self.border == 0:
            return super()._prepared(split)
        images, labels = self.load_split(split)
        images = to_resolution(images, self.resolution - 2 * self.border, self.resize_mode)
        return to_resolution(images, self.resolution, "pad"), labels.long()

    def prepare_data(self) -> None:
        """Nothing to fetch; fail early (with the fix) if scikit-learn is missing."""
        self._load_all()

    def _load_all(self) -> tuple[Tensor, Tensor]:
        if self._all is None:
            self._all = load_digits_uint8()
        return self._all

    def load_split(self, split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        """The fixed half split (see the module docstring): ``"train"`` 898 images, ``"test"`` 899."""
        if split not in ("train", "test"):
            raise ValueError(f"DigitsDataModule: split must be 'train' or 'test', got {split!r}")
        images, labels = self._load_all()
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(SPLIT_SEED))
        half = len(labels) // 2
        index = order[:half] if split == "train" else order[half:]
        return images[index], labels[index]
