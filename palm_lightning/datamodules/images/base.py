"""Shared base for the static image DataModules (Fashion-MNIST, CIFAR-10/100, SVHN).

Each dataset is read once through torchvision's real loader, converted to one ``uint8`` tensor
``(N, C, H, W)`` at the target resolution, and held in memory. Batches are then plain tensor
slices: no per-sample PIL work, which matters with few CPU cores and makes the data identical for
every consumer (GAN training, classifiers, probes). Normalisation happens per batch in
:meth:`ImageDataModule.on_after_batch_transfer`, so it runs on the training device.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Literal

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

Normalization = Literal["symmetric", "standard", "none"]
ResizeMode = Literal["pad", "resize"]


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is absent from every place we looked; the message says where and how to get it."""


class UInt8ImageDataset(Dataset):
    """Images held as one ``uint8`` tensor ``(N, C, H, W)`` plus integer labels."""

    def __init__(self, images: Tensor, labels: Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if labels.shape[0] != images.shape[0]:
            raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.images[index], self.labels[index]


def to_resolution(images: Tensor, resolution: int, mode: ResizeMode) -> Tensor:
    """Bring ``uint8`` images ``(N, C, H, W)`` to ``resolution``² by zero-padding or resizing.

    ``pad`` keeps every pixel (28×28 Fashion-MNIST → 32×32 with a 2-pixel black border, which is
    the dataset's own background); ``resize`` uses antialiased bilinear interpolation.
    """
    h, w = images.shape[-2:]
    if (h, w) == (resolution, resolution):
        return images
    if mode == "pad":
        if h > resolution or w > resolution:
            raise ValueError(f"cannot pad {h}×{w} images to {resolution}×{resolution}; use resize_mode: resize")
        top, left = (resolution - h) // 2, (resolution - w) // 2
        return F.pad(images, (left, resolution - w - left, top, resolution - h - top))
    out = []
    for chunk in images.split(4096):
        x = F.interpolate(chunk.float(), size=(resolution, resolution), mode="bilinear", antialias=True)
        out.append(x.round().clamp(0, 255).to(torch.uint8))
    return torch.cat(out)


class ImageDataModule(L.LightningDataModule):
    """Base for labelled image datasets held in memory as ``uint8``.

    Subclasses implement :meth:`prepare_data` (find or fetch the files) and :meth:`load_split`
    (return ``uint8 (N, C, H, W)`` images and labels for ``"train"`` or ``"test"``), and set the
    class attributes ``num_classes``, ``channels`` and ``class_names``.

    Batches are ``(images, labels)`` with float images normalised by ``normalization``:
    ``symmetric`` maps [0, 255] → [−1, 1] (what the generator produces), ``standard`` subtracts the
    dataset's per-channel mean and divides by its std, ``none`` gives [0, 1].

    Args:
        data_dir: where the dataset lives (or will be put).
        resolution: side length of the square images served.
        resize_mode: ``pad`` (zero-pad smaller images) or ``resize`` (interpolate).
        normalization: see above.
        batch_size: per-device batch size.
        num_workers: DataLoader workers (0 is fastest for in-memory tensors).
        val_size: images held out of the training split for validation (int) or a fraction.
        train_fraction: keep this fraction of the remaining training images, class-balanced
            (1.0 = all; 0.01 = the 1%-labels protocol).
        seed: seed of the validation split and of the training subset.
        download: fetch the data from the internet when it is not found locally.
    """

    num_classes: int = 0
    channels: int = 0
    class_names: tuple[str, ...] = ()

    def __init__(
        self,
        data_dir: str = "data",
        resolution: int = 32,
        resize_mode: ResizeMode = "pad",
        normalization: Normalization = "symmetric",
        batch_size: int = 128,
        num_workers: int = 0,
        val_size: int | float = 0,
        train_fraction: float = 1.0,
        seed: int = 0,
        download: bool = False,
    ) -> None:
        super().__init__()
        if not 0.0 < train_fraction <= 1.0:
            raise ValueError(f"train_fraction must be in (0, 1], got {train_fraction}")
        if resolution < 1:
            raise ValueError(f"resolution must be positive, got {resolution}")
        self.data_dir = Path(data_dir).expanduser()
        self.resolution = resolution
        self.resize_mode = resize_mode
        self.normalization = normalization
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.val_size = val_size
        self.train_fraction = train_fraction
        self.seed = seed
        self.download = download
        self.train_set: UInt8ImageDataset | None = None
        self.val_set: UInt8ImageDataset | None = None
        self.test_set: UInt8ImageDataset | None = None
        self._channel_stats: tuple[Tensor, Tensor] | None = None

    # --- what subclasses provide ---------------------------------------------------------------
    def load_split(self, split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        """Return ``(uint8 images (N, C, H, W), int64 labels (N,))`` of the raw split."""
        raise NotImplementedError

    # --- shape information (used by models to check they fit the data) -----------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self.channels, self.resolution, self.resolution)

    # --- Lightning hooks -----------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if stage in (None, "fit", "validate") and self.train_set is None:
            images, labels = self._prepared("train")
            generator = torch.Generator().manual_seed(self.seed)
            order = torch.randperm(len(labels), generator=generator)
            n_val = round(self.val_size * len(labels)) if isinstance(self.val_size, float) else self.val_size
            if not 0 <= n_val < len(labels):
                raise ValueError(f"val_size={self.val_size} leaves no training images ({len(labels)} in all)")
            val_idx, train_idx = order[:n_val], order[n_val:]
            train_idx = self._class_balanced_subset(train_idx, labels, generator)
            self.train_set = UInt8ImageDataset(images[train_idx], labels[train_idx])
            self.val_set = UInt8ImageDataset(images[val_idx], labels[val_idx]) if n_val else None
        if stage in (None, "test", "predict") and self.test_set is None:
            self.test_set = UInt8ImageDataset(*self._prepared("test"))

    def _prepared(self, split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        images, labels = self.load_split(split)
        if images.shape[1] != self.channels:
            raise ValueError(f"{type(self).__name__}: expected {self.channels} channels, got {images.shape[1]}")
        return to_resolution(images, self.resolution, self.resize_mode), labels.long()

    def _class_balanced_subset(self, idx: Tensor, labels: Tensor, generator: torch.Generator) -> Tensor:
        if self.train_fraction >= 1.0:
            return idx
        keep = []
        for k in range(self.num_classes):
            members = idx[labels[idx] == k]
            n = max(1, math.floor(len(members) * self.train_fraction))
            keep.append(members[torch.randperm(len(members), generator=generator)[:n]])
        return torch.cat(keep).sort().values

    def _loader(self, dataset: UInt8ImageDataset | None, shuffle: bool, drop_last: bool = False) -> DataLoader:
        if dataset is None:
            raise RuntimeError(f"{type(self).__name__}: split not set up (call setup() first, or set val_size > 0)")
        return DataLoader(
            dataset,
            batch_size=self.batch_size,
            shuffle=shuffle,
            drop_last=drop_last,
            num_workers=self.num_workers,
            persistent_workers=self.num_workers > 0,
        )

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, shuffle=True, drop_last=True)

    def val_dataloader(self) -> DataLoader:
        if self.val_set is None:  # no held-out split: validate on the test set
            self.setup("test")
            return self._loader(self.test_set, shuffle=False)
        return self._loader(self.val_set, shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, shuffle=False)

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        images, labels = batch
        return self.normalize(images), labels

    # --- normalisation -------------------------------------------------------------------------
    def normalize(self, images: Tensor) -> Tensor:
        """``uint8`` (or float in [0, 255]) images → float images under ``self.normalization``."""
        x = images.float() / 255.0
        if self.normalization == "symmetric":
            return x * 2.0 - 1.0
        if self.normalization == "standard":
            mean, std = self.channel_stats()
            return (x - mean.to(x.device)[:, None, None]) / std.to(x.device)[:, None, None]
        return x

    def channel_stats(self) -> tuple[Tensor, Tensor]:
        """Per-channel mean and std of the training images in [0, 1] (computed once)."""
        if self._channel_stats is None:
            if self.train_set is None:
                self.setup("fit")
            assert self.train_set is not None
            x = self.train_set.images.float() / 255.0
            self._channel_stats = (x.mean(dim=(0, 2, 3)), x.std(dim=(0, 2, 3)))
        return self._channel_stats
