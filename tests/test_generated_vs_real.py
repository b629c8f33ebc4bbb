"""GeneratedVsRealGrid: one row per class, generated samples left, real images right; from explicit
data (image datasets, Atari frames, (image, label) pairs) or from PALM's DataModule in a real fit."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import lightning as L
import pytest
import torch

from palm_lightning.callbacks import GeneratedVsRealGrid, real_images_by_class
from palm_lightning.datamodules import FashionMNISTDataModule, LatentManifoldDataModule
from palm_lightning.datamodules.atari.frames import AtariFramesDataset
from palm_lightning.datamodules.images.base import UInt8ImageDataset
from palm_lightning.envs.latent_manifold import to_uint8
from palm_lightning.models import PALM
from tests.palm_fixtures import tiny_data_kwargs, tiny_generator, tiny_generator_file, tiny_palm_kwargs

SIDE = 16  # the tiny generator's images: 3 classes, 1×16×16


def labelled_images(per_class: int, classes: int = 3, side: int = SIDE) -> tuple[torch.Tensor, torch.Tensor]:
    """Image i of class k is filled with the value 10·k + i (so a tile names its class and index)."""
    labels = torch.arange(classes).repeat_interleave(per_class)
    values = 10 * labels + torch.arange(per_class).repeat(classes)
    return values.view(-1, 1, 1, 1).expand(-1, 1, side, side).to(torch.uint8).contiguous(), labels


def tile(grid: torch.Tensor, row: int, column: int, side: int = SIDE) -> torch.Tensor:
    """The ``(row, column)`` image of a ``make_grid(padding=1)`` picture, back in ``uint8``."""
    top, left = 1 + row * (side + 1), 1 + column * (side + 1)
    return (grid[:1, top : top + side, left : left + side] * 255).round().to(torch.uint8)


def no_datamodule() -> L.Trainer:
    return SimpleNamespace(datamodule=None)  # type: ignore[return-value]


def test_rows_are_classes_generated_left_real_right():
    generator = tiny_generator()
    images, labels = labelled_images(per_class=5)
    callback = GeneratedVsRealGrid(generator, UInt8ImageDataset(images, labels), samples_per_class=2)
    grid = callback.grid(no_datamodule())
    assert grid.shape == (3, 3 * (SIDE + 1) + 1, 5 * (SIDE + 1) + 1)  # 3 classes; 2 + gap + 2 columns
    torch.manual_seed(123)  # the callback draws with its own seed, not the global one
    with torch.no_grad():
        z = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
        expected = to_uint8(generator(z, torch.arange(3).repeat_interleave(2)).clamp(-1, 1))
    for k in range(3):
        for i in range(2):
            assert torch.equal(tile(grid, k, i), expected[2 * k + i])  # left: G(z, c = k)
            real = tile(grid, k, 3 + i)
            assert int(real[0, 0, 0]) // 10 == k and torch.equal(real, real[:1, :1, :1].expand_as(real))
        assert torch.equal(tile(grid, k, 2), torch.full((1, SIDE, SIDE), 128, dtype=torch.uint8))  # the gap
    assert torch.equal(callback.grid(no_datamodule()), grid)  # the same picture every time


def test_atari_frames_pairs_and_missing_classes():
    images, labels = labelled_images(per_class=3, classes=2)  # no image of class 2
    n = labels.numel()
    frames = AtariFramesDataset(images, labels, torch.zeros(n, 128, dtype=torch.uint8), labels, torch.arange(n))
    picked = real_images_by_class(frames, num_classes=3, per_class=2, split="train", seed=0)
    assert [p.shape[0] for p in picked] == [2, 2, 0]
    assert all((p // 10 == k).all() for k, p in enumerate(picked))
    grid = GeneratedVsRealGrid(tiny_generator(), frames, samples_per_class=2).grid(no_datamodule())
    assert torch.equal(tile(grid, 2, 3), torch.full((1, SIDE, SIDE), 128, dtype=torch.uint8))  # grey: no real image
    # a plain dataset of (image in [-1, 1], label) pairs
    pairs = [(images[i].float() / 127.5 - 1, int(labels[i])) for i in range(n)]
    from_pairs = real_images_by_class(pairs, num_classes=2, per_class=3, split="train", seed=0)
    assert sorted(from_pairs[1][:, 0, 0, 0].tolist()) == [10, 11, 12]


def test_real_images_of_another_size_are_refused():
    images, labels = labelled_images(per_class=2, side=8)
    callback = GeneratedVsRealGrid(tiny_generator(), UInt8ImageDataset(images, labels), samples_per_class=2)
    with pytest.raises(ValueError, match=r"\(1, 8, 8\).*\(1, 16, 16\)"):
        callback.grid(no_datamodule())


def test_palm_fit_logs_the_grid_from_its_generator_and_probe_images(tmp_path: Path, fmnist_root: Path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    probe = FashionMNISTDataModule(data_dir=str(fmnist_root), resolution=SIDE, resize_mode="resize")
    data = LatentManifoldDataModule(
        **tiny_data_kwargs(tiny_generator_file(tmp_path)), probe_data=probe, probe_bank_size=60, probe_query_size=30
    )
    logger = L.pytorch.loggers.TensorBoardLogger(tmp_path, name="tb")
    trainer = L.Trainer(
        max_steps=3,
        accelerator="cpu",
        logger=logger,
        callbacks=[GeneratedVsRealGrid(samples_per_class=3, every_n_train_steps=2)],
        limit_val_batches=0,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
    )
    trainer.fit(PALM(**tiny_palm_kwargs()), data)
    events = EventAccumulator(logger.log_dir)
    events.Reload()
    images = events.Images("samples/generated_vs_real")
    assert [image.step for image in images] == [0, 2]  # at the start, then every 2 updates
    assert (images[0].height, images[0].width) == (3 * (SIDE + 1) + 1, 7 * (SIDE + 1) + 1)
    assert "samples/generated_vs_real/rows/text_summary" in events.Tags()["tensors"]
