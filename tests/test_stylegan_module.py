"""ConditionalStyleGAN as a LightningModule: counters, EMA, logging, checkpoints, resume."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from palm_lightning.checkpoints import load_network
from palm_lightning.datamodules import FashionMNISTDataModule
from palm_lightning.models import ConditionalStyleGAN
from tests.palm_fixtures import trainer as quiet_trainer

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

    logger = TensorBoardLogger(str(tmp_path / "runs"), name="gan")
    options = {"logger": logger, "enable_checkpointing": True, "log_every_n_steps": 1, **kwargs}
    return quiet_trainer(tmp_path, max_steps, **options)


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
    assert any(not torch.equal(a, b) for a, b in zip(g0, model.generator.parameters(), strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(d0, model.discriminator.parameters(), strict=True))
    # the EMA copy moved, but lags behind the trained generator
    ema = list(model.generator_ema.parameters())
    assert any(not torch.equal(a, b) for a, b in zip(g0, ema, strict=True))
    assert any(not torch.equal(a, b) for a, b in zip(ema, model.generator.parameters(), strict=True))
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


def grid_cell(grid: torch.Tensor, row: int, col: int, size: int = 16, padding: int = 2) -> torch.Tensor:
    """The image at (row, col) of a make_grid grid, channel 0 (grayscale images are tripled)."""
    top, left = padding + row * (size + padding), padding + col * (size + padding)
    return grid[0, top : top + size, left : left + size]


@pytest.mark.parametrize("psi", [None, 0.5])
def test_sample_grid_rows_are_classes(psi) -> None:
    torch.manual_seed(0)
    model = ConditionalStyleGAN(**TINY)
    g = model.generator_ema
    with torch.no_grad():  # a non-zero class mean w, so that truncation changes the images
        g.mapping.w_avg.normal_()
    grid = model.sample_grid() if psi is None else model.sample_grid(truncation_psi=psi)
    assert grid.shape == (3, 10 * 18 + 2, 2 * 18 + 2)
    assert grid.min() >= 0 and grid.max() <= 1
    assert torch.equal(grid[0], grid[1]) and torch.equal(grid[1], grid[2])  # grayscale, tripled
    z = model.sample_z
    assert z.shape == (2, 8)
    # cell (row i, column j) is the EMA generator's image of latent j with class i
    for i in range(10):
        direct = g(z, torch.full((2,), i), truncation_psi=1.0 if psi is None else psi)
        for j in range(2):
            torch.testing.assert_close(grid_cell(grid, i, j), ((direct[j, 0] + 1) / 2).clamp(0, 1), atol=1e-5, rtol=0)
    # and the rows really differ (a grid of one class repeated would not pass the loop above)
    assert (grid_cell(grid, 0, 0) - grid_cell(grid, 1, 0)).abs().mean() > 1e-3
    if psi is not None:
        assert not torch.allclose(grid, model.sample_grid(truncation_psi=1.0))


def test_sample_grid_asks_one_class_per_row_and_the_fixed_latents_per_column(monkeypatch) -> None:
    model = ConditionalStyleGAN(**TINY)
    g = model.generator_ema
    calls = []

    def spy(z, c, *args, **kwargs):
        calls.append((z.clone(), c.clone()))
        # image = class index everywhere (scaled into [-1, 1]): rows are checkable by value
        return (c.float() / 9 * 2 - 1)[:, None, None, None].expand(z.shape[0], 1, 16, 16)

    monkeypatch.setattr(g, "forward", spy)
    grid = model.sample_grid()
    z = torch.cat([zz for zz, _ in calls])
    c = torch.cat([cc for _, cc in calls])
    assert c.tolist() == [i for i in range(10) for _ in range(2)]  # row-major: 2 columns per class
    torch.testing.assert_close(z, model.sample_z.repeat(10, 1))  # the same fixed latents on every row
    for i in range(10):
        for j in range(2):
            torch.testing.assert_close(grid_cell(grid, i, j), torch.full((16, 16), i / 9))


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


# --- mode-seeking loss and lazy R1 ------------------------------------------------------------


def test_mode_seeking_loss_by_hand() -> None:
    from palm_lightning.models.generators.stylegan import mode_seeking_loss

    # pair 1: images differ by 0.5 on every pixel, latents by 1 on every coordinate → ratio 1/2;
    # pair 2: images differ by 0.25, latents by 2 → ratio 1/8. Loss = mean(1/ratio) = (2 + 8) / 2.
    a = torch.zeros(2, 1, 2, 2)
    b = torch.stack([torch.full((1, 2, 2), 0.5), torch.full((1, 2, 2), -0.25)])
    za = torch.zeros(2, 3)
    zb = torch.stack([torch.ones(3), torch.full((3,), -2.0)])
    assert mode_seeking_loss(a, b, za, zb, eps=0.0).item() == pytest.approx(5.0)
    # distances are averaged per element: a single differing pixel counts a quarter
    b1 = torch.zeros(1, 1, 2, 2)
    b1[0, 0, 0, 0] = 1.0
    assert mode_seeking_loss(a[:1], b1, za[:1], zb[:1], eps=0.0).item() == pytest.approx(4.0)


def test_mode_seeking_loss_rewards_image_distance_in_proportion_to_latent_distance() -> None:
    from palm_lightning.models.generators.stylegan import mode_seeking_loss

    torch.manual_seed(0)
    a, b = torch.rand(4, 1, 4, 4), torch.rand(4, 1, 4, 4)
    za, zb = torch.randn(4, 5), torch.randn(4, 5)
    base = mode_seeking_loss(a, b, za, zb, eps=0.0)
    # images 10× further apart for the same latents: 10× smaller loss (it is an inverse ratio)
    assert mode_seeking_loss(a, a + 10 * (b - a), za, zb, eps=0.0).item() == pytest.approx(base.item() / 10, rel=1e-5)
    # images and latents both 3× further apart: same ratio, same loss
    assert mode_seeking_loss(a, a + 3 * (b - a), za, za + 3 * (zb - za), eps=0.0).item() == pytest.approx(
        base.item(), rel=1e-5
    )
    # a collapsed generator (same image for both latents) is penalised by 1/eps
    assert mode_seeking_loss(a, a.clone(), za, zb, eps=1e-5).item() == pytest.approx(1e5)
    # low when images differ a lot: 1 per unit of image distance per latent distance
    assert mode_seeking_loss(a, a + 100.0, za, za + 1.0, eps=0.0).item() == pytest.approx(0.01)
    # direction: a gradient step on the loss pushes the two images apart
    b_var = b.clone().requires_grad_(True)
    mode_seeking_loss(a, b_var, za, zb).backward()
    with torch.no_grad():
        moved = b_var - 1e-3 * b_var.grad
    assert (moved - a).abs().mean() > (b - a).abs().mean()
    assert mode_seeking_loss(a, moved, za, zb).item() < mode_seeking_loss(a, b, za, zb).item()


class LinearDiscriminator(torch.nn.Module):
    """D(x, c) = ⟨a, x⟩ + b: its input gradient is ``a`` for every image, so the R1 penalty is
    ‖a‖² and its gradient with respect to ``a`` is known by hand."""

    def __init__(self, pixels: int) -> None:
        super().__init__()
        self.a = torch.nn.Parameter(torch.linspace(-0.5, 0.5, pixels))
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        return img.flatten(1) @ self.a + self.b


def discriminator_gradients(
    r1_gamma: float, r1_interval: int, iterations: int
) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Train a tiny GAN with learning rate 0 (so every iteration sees the same networks) and
    record the gradient of the discriminator's ``a`` at each discriminator step."""
    from torch.optim.optimizer import register_optimizer_step_pre_hook
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = ConditionalStyleGAN(
        **{
            **TINY,
            "lr": 0.0,
            "r1_gamma": r1_gamma,
            "r1_interval": r1_interval,
            "mode_seeking_weight": 0.0,
            "sample_every_n_iterations": 10_000,
        }
    )
    model.discriminator = LinearDiscriminator(16 * 16)
    a = model.discriminator.a
    recorded: list[torch.Tensor] = []

    def before_step(optimizer, args, kwargs):
        if any(p is a for group in optimizer.param_groups for p in group["params"]):
            recorded.append(a.grad.detach().clone())

    data = TensorDataset(torch.rand(8 * iterations, 1, 16, 16) * 2 - 1, torch.arange(8 * iterations) % 10)
    handle = register_optimizer_step_pre_hook(before_step)
    try:
        L.Trainer(
            max_steps=2 * iterations,
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
        ).fit(model, DataLoader(data, batch_size=8, shuffle=False))
    finally:
        handle.remove()
    assert len(recorded) == iterations
    return recorded, a.detach().clone()


def test_lazy_r1_is_applied_every_interval_and_scaled_by_it() -> None:
    gamma, interval, iterations = 0.4, 3, 7
    with_r1, a = discriminator_gradients(gamma, interval, iterations)
    without, a0 = discriminator_gradients(0.0, interval, iterations)
    torch.testing.assert_close(a, a0)  # lr 0: the same discriminator all along
    # γ/2 · interval · ‖∇ₓD‖² = γ/2 · interval · ‖a‖² adds γ · interval · a to the gradient of a,
    # on iterations 0, 3, 6 only; the logistic part is the same in both runs (same seed, same nets)
    for it, (g, g0) in enumerate(zip(with_r1, without, strict=True)):
        extra = gamma * interval * a if it % interval == 0 else torch.zeros_like(a)
        torch.testing.assert_close(g - g0, extra, atol=1e-5, rtol=1e-4, msg=f"iteration {it}")
