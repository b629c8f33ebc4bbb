"""ConditionalStyleGAN as a LightningModule: counters, EMA, logging, checkpoints, resume."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from palm_lightning.checkpoints import load_network
from palm_lightning.datamodules import FashionMNISTDataModule
from palm_lightning.models import ConditionalStyleGAN

TINY = dict(
    num_classes=10,
    img_resolution=16,
    img_channels=1,
    z_dim=8,
    w_dim=16,
    mapping_layers=2,
    channel_base=64,
    channel_max=16,
    r1_interval=2,
    sample_every_n_iterations=2,
    samples_per_class=2,
)


def tiny_data(root: Path) -> FashionMNISTDataModule:
    return FashionMNISTDataModule(data_dir=str(root), resolution=16, resize_mode="resize", batch_size=8)


def trainer(tmp_path: Path, max_steps: int, **kwargs) -> L.Trainer:
    from lightning.pytorch.loggers import TensorBoardLogger

    return L.Trainer(
        max_steps=max_steps,
        logger=TensorBoardLogger(str(tmp_path / "runs"), name="gan"),
        enable_progress_bar=False,
        enable_model_summary=False,
        log_every_n_steps=1,
        default_root_dir=str(tmp_path),
        **kwargs,
    )


def test_training_updates_counters_ema_and_logs(fmnist_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ConditionalStyleGAN(**TINY)
    g0 = [p.detach().clone() for p in model.generator.parameters()]
    d0 = [p.detach().clone() for p in model.discriminator.parameters()]
    t = trainer(tmp_path, max_steps=8)
    t.fit(model, datamodule=tiny_data(fmnist_root))
    # two optimiser steps per iteration: D then G
    assert int(model.iterations) == 4 and t.global_step == 8
    assert int(model.images_seen) == 32
    assert any(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters()))
    # the EMA copy moved, but lags behind the trained generator
    ema = list(model.generator_ema.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(g0, ema))
    assert any(not torch.equal(a, b) for a, b in zip(ema, model.generator.parameters()))
    assert not any(p.requires_grad for p in model.generator_ema.parameters())
    logged = t.logged_metrics
    for key in ("train/loss_d", "train/loss_g", "train/r1_penalty", "train/kimg"):
        assert key in logged and torch.isfinite(logged[key])
    events = list((tmp_path / "runs" / "gan").rglob("events.out.tfevents*"))
    assert events, "no TensorBoard events written"
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(events[0].parent), size_guidance={"images": 0})
    acc.Reload()
    assert "samples/ema_by_class" in acc.Tags()["images"]
    image = acc.Images("samples/ema_by_class")[-1]
    # one row per class (10), 2 columns, 16 px images with 2 px padding
    assert (image.height, image.width) == (10 * 18 + 2, 2 * 18 + 2)


def test_sample_grid_rows_are_classes() -> None:
    model = ConditionalStyleGAN(**TINY)
    grid = model.sample_grid()
    assert grid.shape == (3, 10 * 18 + 2, 2 * 18 + 2)
    assert grid.min() >= 0 and grid.max() <= 1


def test_ema_update_follows_half_life() -> None:
    model = ConditionalStyleGAN(**{**TINY, "ema_half_life_images": 100, "ema_rampup": None})
    with torch.no_grad():
        for p in model.generator.parameters():
            p.fill_(1.0)
        for p in model.generator_ema.parameters():
            p.fill_(0.0)
    model.update_ema(batch_size=100)  # one half-life: halfway
    for p in model.generator_ema.parameters():
        torch.testing.assert_close(p, torch.full_like(p, 0.5))


def test_checkpoint_loads_as_generator_and_resumes(fmnist_root: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = ConditionalStyleGAN(**TINY)
    t = trainer(tmp_path, max_steps=4)
    t.fit(model, datamodule=tiny_data(fmnist_root))
    ckpt = tmp_path / "gan.ckpt"
    t.save_checkpoint(ckpt)
    generator = load_network(ckpt, kind="generator", expect={"image_shape": (1, 16, 16)})
    z, c = torch.randn(2, 8), torch.tensor([1, 2])
    torch.testing.assert_close(generator(z, c), model.generator_ema(z, c))

    resumed = ConditionalStyleGAN(**TINY)
    t2 = trainer(tmp_path, max_steps=8)
    t2.fit(resumed, datamodule=tiny_data(fmnist_root), ckpt_path=str(ckpt))
    assert int(resumed.iterations) == 4 and t2.global_step == 8


def test_model_data_mismatch_is_named(fmnist_root: Path, tmp_path: Path) -> None:
    model = ConditionalStyleGAN(**{**TINY, "img_resolution": 32})
    with pytest.raises(ValueError, match=r"model/data mismatch.*\(1, 32, 32\).*\(1, 16, 16\)"):
        trainer(tmp_path, max_steps=2).fit(model, datamodule=tiny_data(fmnist_root))
