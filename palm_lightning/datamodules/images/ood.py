"""In-distribution vs out-of-distribution test data for OOD detection on frozen encoders.

Two protocols:

- **far OOD** (``out_data`` given): the OOD samples are another dataset — its test split, or all
  its images with ``out_split: all`` (e.g. Fashion-MNIST vs scikit-learn's digits, CIFAR-10 vs SVHN).
- **near OOD** (``in_classes`` given, no ``out_data``): the in-distribution data are ``in_data``
  restricted to ``in_classes``; the OOD samples are ``in_data``'s test images of the other classes
  (e.g. Fashion-MNIST classes 0–4 vs 5–9).

Every image is normalised with ``in_data``'s normalisation, the OOD images included: the encoder
must see both sets exactly as it would see in-distribution data, or the detector would only
detect the difference in preprocessing.
"""

from __future__ import annotations

from typing import Literal

import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader

from palm_lightning.datamodules.images.base import ImageDataModule, UInt8ImageDataset, to_resolution

LUMA = (0.299, 0.587, 0.114)  # ITU-R BT.601 weights, as PIL's convert("L")


def to_channels(images: Tensor, channels: int) -> Tensor:
    """``uint8`` images with ``channels`` channels: RGB → gray by luminance, gray → RGB by repeating."""
    have = images.shape[1]
    if have == channels:
        return images
    if have == 3 and channels == 1:
        weights = torch.tensor(LUMA).view(1, 3, 1, 1)
        return (images.float() * weights).sum(1, keepdim=True).round().clamp(0, 255).to(torch.uint8)
    if have == 1 and channels == 3:
        return images.expand(-1, 3, -1, -1).contiguous()
    raise ValueError(f"cannot convert {have}-channel images to {channels} channels (only RGB ↔ grayscale)")


class OODDataModule(L.LightningDataModule):
    """The test data of OOD detection: in-distribution train (the bank), in-distribution test, OOD test.

    Exposes ``train_set`` (in-distribution training images and labels: what the scorers are fitted
    on; ``in_data``'s ``val_size`` and ``train_fraction`` apply, since ``in_data.setup("fit")``
    makes it), ``in_test_set`` and ``out_test_set`` (:class:`UInt8ImageDataset`), ``image_shape``,
    ``num_classes`` (in-distribution classes), ``normalization`` and :meth:`normalize` (both
    ``in_data``'s). :meth:`test_dataloader` returns ``[in_test, out_test]``: ``dataloader_idx`` 0
    is in-distribution, 1 is OOD.

    Labels: in the near protocol the in-distribution labels are remapped to ``0..len(in_classes)-1``
    in the order of ``in_classes`` (so ``num_classes`` and the labels agree, as class-conditional
    scorers need); OOD samples keep their own dataset's labels, which no metric uses.

    Args:
        in_data: the in-distribution data module (its test split is the in-distribution test set).
        out_data: the OOD data module (far protocol). Its images must have ``in_data``'s shape
            ``(C, H, W)``, unless ``resize`` is true.
        in_classes: the in-distribution classes of ``in_data`` (near protocol).
        out_split: far protocol only: ``test`` (``out_data``'s test split) or ``all`` (train + test,
            whole: no validation split, no ``train_fraction``).
        resize: bring OOD images of another shape to ``in_data``'s: resolution by antialiased
            bilinear resizing, channels by luminance (RGB → gray) or repetition (gray → RGB).
        batch_size: test batch size.
    """

    def __init__(
        self,
        in_data: ImageDataModule,
        out_data: ImageDataModule | None = None,
        in_classes: list[int] | None = None,
        out_split: Literal["test", "all"] = "test",
        resize: bool = False,
        batch_size: int = 512,
    ) -> None:
        super().__init__()
        if (out_data is None) == (in_classes is None):
            raise ValueError(
                "OODDataModule: give exactly one of out_data (far OOD: another dataset) or in_classes "
                "(near OOD: the other classes of in_data are the OOD samples)"
            )
        if out_split not in ("test", "all"):
            raise ValueError(f"OODDataModule: out_split must be 'test' or 'all', got {out_split!r}")
        if batch_size < 1:
            raise ValueError(f"OODDataModule: batch_size must be positive, got {batch_size}")
        self.in_data, self.out_data = in_data, out_data
        self.out_split, self.resize, self.batch_size = out_split, resize, batch_size
        self.in_classes = self._check_classes(in_classes) if in_classes is not None else None
        if out_data is not None:
            self._check_shapes(out_data)
        elif out_split != "test":
            raise ValueError(
                "OODDataModule: out_split applies to out_data (far protocol); the near protocol always "
                "uses in_data's test images of the other classes: remove out_split"
            )
        self.train_set: UInt8ImageDataset | None = None
        self.in_test_set: UInt8ImageDataset | None = None
        self.out_test_set: UInt8ImageDataset | None = None

    def _check_classes(self, in_classes: list[int]) -> list[int]:
        total = self.in_data.num_classes
        classes = [int(c) for c in in_classes]
        bad = [c for c in classes if not 0 <= c < total]
        if bad:
            raise ValueError(
                f"OODDataModule: in_classes {bad} out of range: "
                f"{type(self.in_data).__name__} has classes 0..{total - 1}"
            )
        if not classes or len(set(classes)) != len(classes):
            raise ValueError(f"OODDataModule: in_classes must be distinct and non-empty, got {classes}")
        if len(classes) == total:
            raise ValueError(
                f"OODDataModule: in_classes covers all {total} classes of {type(self.in_data).__name__}, which "
                "leaves no OOD classes: hold some out, or give out_data instead (far protocol)"
            )
        return classes

    def _check_shapes(self, out_data: ImageDataModule) -> None:
        in_shape, out_shape = tuple(self.in_data.image_shape), tuple(out_data.image_shape)
        if in_shape != out_shape and not self.resize:
            fix = "set resize: true (--data.init_args.resize true) to convert the OOD images"
            if in_shape[0] == out_shape[0]:
                fix += f", or set the OOD data module's resolution to {in_shape[-1]}"
            raise ValueError(
                f"OODDataModule: {type(self.in_data).__name__} serves images of shape {in_shape} but "
                f"{type(out_data).__name__} serves {out_shape}: {fix}"
            )
        if in_shape[0] != out_shape[0] and {in_shape[0], out_shape[0]} != {1, 3}:
            raise ValueError(
                f"OODDataModule: cannot convert {out_shape[0]}-channel OOD images to {in_shape[0]} channels"
            )

    # --- what the detector reads ---------------------------------------------------------------
    @property
    def image_shape(self) -> tuple[int, int, int]:
        channels, height, width = self.in_data.image_shape
        return channels, height, width

    @property
    def num_classes(self) -> int:
        return len(self.in_classes) if self.in_classes is not None else self.in_data.num_classes

    @property
    def class_names(self) -> tuple[str, ...]:
        names = self.in_data.class_names
        if self.in_classes is None or len(names) != self.in_data.num_classes:
            return tuple(names)
        return tuple(names[c] for c in self.in_classes)

    @property
    def normalization(self) -> str:
        return self.in_data.normalization

    def normalize(self, images: Tensor) -> Tensor:
        """``in_data``'s normalisation, for in-distribution and OOD images alike."""
        return self.in_data.normalize(images)

    # --- Lightning hooks -----------------------------------------------------------------------
    def prepare_data(self) -> None:
        self.in_data.prepare_data()
        if self.out_data is not None:
            self.out_data.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        """Build the three sets once, whatever the stage (they are all that this module serves)."""
        if self.train_set is not None:
            return
        self.in_data.setup("fit")
        self.in_data.setup("test")
        train, test = self.in_data.train_set, self.in_data.test_set
        assert train is not None and test is not None
        if self.in_classes is not None:
            self.train_set = self._restrict(train)
            self.in_test_set = self._restrict(test)
            is_out = ~torch.isin(test.labels, torch.tensor(self.in_classes))
            self.out_test_set = UInt8ImageDataset(test.images[is_out], test.labels[is_out])
        else:
            self.train_set, self.in_test_set = train, test
            self.out_test_set = UInt8ImageDataset(*self._out_images())

    def _restrict(self, dataset: UInt8ImageDataset) -> UInt8ImageDataset:
        """The samples of ``in_classes``, labels remapped to their position in ``in_classes``."""
        assert self.in_classes is not None
        remap = torch.full((self.in_data.num_classes,), -1, dtype=torch.long)
        remap[torch.tensor(self.in_classes)] = torch.arange(len(self.in_classes))
        keep = remap[dataset.labels] >= 0
        return UInt8ImageDataset(dataset.images[keep], remap[dataset.labels[keep]])

    def _out_images(self) -> tuple[Tensor, Tensor]:
        out = self.out_data
        assert out is not None
        if self.out_split == "all":
            # whole splits, not out.setup("fit"): the OOD set ignores out_data's val_size / train_fraction
            parts = [out._prepared("train"), out._prepared("test")]
            images, labels = torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])
        else:
            out.setup("test")
            assert out.test_set is not None
            images, labels = out.test_set.images, out.test_set.labels
        channels, height, width = self.image_shape
        if tuple(images.shape[1:]) != (channels, height, width):
            images = to_resolution(to_channels(images, channels), height, "resize")
        return images, labels

    def _loader(self, dataset: UInt8ImageDataset | None) -> DataLoader:
        if dataset is None:
            raise RuntimeError("OODDataModule: call setup() before asking for dataloaders")
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=False)

    def test_dataloader(self) -> list[DataLoader]:
        """``[in-distribution test, OOD test]``: ``dataloader_idx`` 0 and 1."""
        return [self._loader(self.in_test_set), self._loader(self.out_test_set)]

    def on_after_batch_transfer(self, batch: tuple[Tensor, Tensor], dataloader_idx: int) -> tuple[Tensor, Tensor]:
        images, labels = batch
        return self.normalize(images), labels
