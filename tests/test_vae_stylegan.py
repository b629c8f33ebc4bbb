"""VAEStyleGAN: the StyleGAN generator trained as a conditional VAE-GAN's decoder."""

from __future__ import annotations

import importlib
from pathlib import Path

import lightning as L
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from palm_lightning.checkpoints import CheckpointError, describe, load_network
from palm_lightning.models import VAEStyleGAN
from palm_lightning.nn.latent_encoder import ConditionalLatentEncoder, clamp_passing_gradient, gaussian_kl
from tests.palm_fixtures import trainer as quiet_trainer
from tests.test_stylegan_module import TINY, tiny_data


def fit(model: VAEStyleGAN, root: Path, tmp_path: Path, max_steps: int) -> L.Trainer:
    logger = TensorBoardLogger(str(tmp_path / "runs"), name="vaegan")
    trainer = quiet_trainer(tmp_path, max_steps, logger=logger, enable_checkpointing=True, log_every_n_steps=1)
    trainer.fit(model, datamodule=tiny_data(root))
    return trainer


def test_gaussian_kl_matches_closed_form() -> None:
    mean = torch.tensor([[0.0, 1.0], [2.0, -1.0]])
    log_variance = torch.tensor([[0.0, 0.0], [1.0, -2.0]])
    var = log_variance.exp()
    expected = 0.5 * (var + mean**2 - 1 - log_variance).sum(1)
    assert torch.allclose(gaussian_kl(mean, log_variance), expected)
    assert gaussian_kl(torch.zeros(3, 4), torch.zeros(3, 4)).abs().max() == 0


def test_encoder_shapes_and_label_dependence() -> None:
    torch.manual_seed(0)
    encoder = ConditionalLatentEncoder(z_dim=8, num_classes=10, img_resolution=16, img_channels=1, width=8)
    images = torch.rand(4, 1, 16, 16) * 2 - 1
    mean, log_variance = encoder(images, torch.tensor([0, 1, 2, 3]))
    assert mean.shape == log_variance.shape == (4, 8)
    other, _ = encoder(images, torch.tensor([5, 1, 2, 3]))
    assert not torch.allclose(mean[0], other[0]) and torch.allclose(mean[1:], other[1:])
    with pytest.raises(ValueError, match="power of two"):
        ConditionalLatentEncoder(z_dim=8, num_classes=10, img_resolution=24)


@pytest.mark.parametrize("options", [{}, {"mode_seeking_weight": 0.5, "foreground_weight": 10.0}])
def test_training_moves_the_encoder_logs_the_vae_terms_and_exports_the_generator(
    fmnist_root: Path, tmp_path: Path, options: dict
) -> None:
    torch.manual_seed(0)
    model = VAEStyleGAN(encoder_width=8, **TINY, **options)  # with mode seeking on, the VAE terms stay in
    e0 = [p.detach().clone() for p in model.encoder.parameters()]
    trainer = fit(model, fmnist_root, tmp_path, max_steps=6)
    assert int(model.iterations) == 3 and trainer.global_step == 6  # the encoder adds no optimiser step
    assert all(not torch.equal(a, b) for a, b in zip(e0, model.encoder.parameters(), strict=True))
    events = EventAccumulator(str(Path(trainer.logger.log_dir)))  # type: ignore[union-attr]
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"train/loss_reconstruction_l1", "train/kl", "train/posterior_std"} <= tags
    assert {"train/loss_reconstruction_foreground_l1", "train/foreground_fraction"} <= tags
    trainer.save_checkpoint(tmp_path / "last.ckpt")
    generator = load_network(tmp_path / "last.ckpt", kind="generator")
    z, c = torch.randn(3, 8), torch.tensor([0, 4, 9])
    assert torch.equal(generator(z, c), model.generator_ema(z, c))


def test_reconstruction_term_reaches_generator_and_encoder() -> None:
    torch.manual_seed(0)
    model = VAEStyleGAN(encoder_width=8, reconstruction_adversarial_weight=0.0, **TINY)
    model.log_dict = lambda *a, **k: None  # type: ignore[method-assign]  # no trainer attached
    real = torch.rand(4, 1, 16, 16) * 2 - 1
    loss = model.extra_generator_loss(real, torch.tensor([0, 1, 2, 3]))
    loss.backward()
    assert model.encoder.head.weight.grad is not None and model.encoder.head.weight.grad.abs().sum() > 0
    synthesis_grads = [p.grad for p in model.generator.synthesis.parameters() if p.grad is not None]
    assert synthesis_grads and sum(g.abs().sum() for g in synthesis_grads) > 0
    assert all(p.grad is None for p in model.discriminator.parameters())


def test_encoder_gets_its_own_rate_and_betas_and_defaults_to_the_generators() -> None:
    default = VAEStyleGAN(encoder_width=8, **TINY).configure_optimizers()[0]
    assert default.param_groups[0]["lr"] == default.param_groups[1]["lr"] == 0.0025
    assert default.param_groups[1]["betas"] == default.param_groups[0]["betas"]
    model = VAEStyleGAN(encoder_width=8, encoder_lr=1e-4, encoder_betas=(0.9, 0.99), **TINY)
    opt_g = model.configure_optimizers()[0]
    generator_group, encoder_group = opt_g.param_groups
    assert encoder_group["lr"] == 1e-4 and encoder_group["betas"] == (0.9, 0.99)
    assert generator_group["lr"] != 1e-4 and generator_group["betas"] != (0.9, 0.99)
    assert {id(p) for p in encoder_group["params"]} == {id(p) for p in model.encoder.parameters()}


def test_foreground_pixels_are_those_off_the_class_background_and_weigh_more() -> None:
    model = VAEStyleGAN(
        encoder_width=8, foreground_weight=9.0, background_momentum=0.5, reconstruction_adversarial_weight=0.0, **TINY
    )
    model.log_dict = lambda *a, **k: None  # type: ignore[method-assign]  # no trainer attached
    screen = torch.full((1, 16, 16), -0.5)
    with_sprite = screen.clone()
    with_sprite[0, 3, 4] = 1.0
    model.update_backgrounds(torch.stack([screen, screen]), torch.tensor([2, 2]))  # the first batch sets it
    assert torch.equal(model.class_backgrounds[2], screen) and model.class_background_seen.tolist()[2]
    mask = model.foreground_mask(torch.stack([with_sprite, screen]), torch.tensor([2, 2]))
    assert mask.shape == (2, 1, 16, 16) and mask.sum() == 1 and mask[0, 0, 3, 4] == 1
    model.update_backgrounds(with_sprite[None], torch.tensor([2]))  # a running mean: the sprite fades in by half
    assert model.class_backgrounds[2, 0, 3, 4].item() == pytest.approx(0.25)

    # the reconstruction term: plain mean L1 plus foreground_weight x the foreground's share of it
    real, labels = with_sprite[None], torch.tensor([2])
    torch.manual_seed(0)
    weighted = model.extra_generator_loss(real, labels)
    plain_model = VAEStyleGAN(encoder_width=8, reconstruction_adversarial_weight=0.0, **TINY)
    plain_model.load_state_dict(model.state_dict())
    plain_model.log_dict = model.log_dict  # type: ignore[method-assign]
    torch.manual_seed(0)
    plain = plain_model.extra_generator_loss(real, labels)
    torch.manual_seed(0)
    mean, log_variance = model.encoder(real, labels)
    z = mean + torch.randn_like(mean) * (0.5 * log_variance).exp()
    error = (model.generator.generate(z, labels) - real).abs()
    foreground = model.foreground_mask(real, labels)
    extra = model.vae_hp.reconstruction_weight * 9.0 * (error * foreground).mean()
    assert (weighted - plain).item() == pytest.approx(extra.item(), rel=1e-4) and extra > 0


def test_checkpoints_without_class_backgrounds_still_load(fmnist_root: Path, tmp_path: Path) -> None:
    model = VAEStyleGAN(encoder_width=8, **TINY)
    trainer = fit(model, fmnist_root, tmp_path, max_steps=2)
    trainer.save_checkpoint(tmp_path / "new.ckpt")
    old = torch.load(tmp_path / "new.ckpt", weights_only=False)
    for name in ("class_backgrounds", "class_background_seen"):
        del old["state_dict"][name]
    torch.save(old, tmp_path / "old.ckpt")
    loaded = VAEStyleGAN.load_from_checkpoint(tmp_path / "old.ckpt")
    assert not loaded.class_background_seen.any()
    assert torch.equal(loaded.encoder.head.weight, model.encoder.head.weight)


def test_warm_start_copies_a_saved_generator_and_rejects_another_configuration(tmp_path: Path) -> None:
    torch.manual_seed(0)
    source = VAEStyleGAN(**TINY).generator_ema
    with torch.no_grad():
        for p in source.parameters():
            p.add_(0.1)
    path = tmp_path / "g.pt"
    torch.save(describe(source, "generator"), path)
    model = VAEStyleGAN(init_generator=str(path), **TINY)
    for own, ema, theirs in zip(
        model.generator.parameters(), model.generator_ema.parameters(), source.parameters(), strict=True
    ):
        assert torch.equal(own, theirs) and torch.equal(ema, theirs)
    with pytest.raises(CheckpointError, match="configuration"):
        VAEStyleGAN(init_generator=str(path), **{**TINY, "w_dim": 32})


@pytest.mark.parametrize(
    "config, expected",
    [
        ("fmnist_vaegan.yaml", ["num_classes: 10", "img_resolution: 32"]),
        ("atari_vaegan.yaml", ["num_classes: 6", "img_resolution: 64", "screen_size: 64"]),
    ],
)
def test_generator_configs_parse(tmp_path: Path, config: str, expected: list[str]) -> None:
    from tests.cli_runner import REPO, run_cli

    result = run_cli("fit", "--config", str(REPO / "configs" / "generator" / config), "--print_config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-500:]
    assert "class_path: palm_lightning.models.generators.VAEStyleGAN" in result.stdout
    assert all(line in result.stdout for line in expected)


def test_log_variance_bound_keeps_the_kls_pull_on_a_pinned_dimension() -> None:
    x = torch.tensor([-40.0, 0.0, 3.0, 40.0], requires_grad=True)
    y = clamp_passing_gradient(x, -12.0, 6.0)
    assert y.tolist() == [-12.0, 0.0, 3.0, 6.0]
    y.sum().backward()
    assert x.grad is not None and x.grad.tolist() == [1.0, 1.0, 1.0, 1.0]
    # the encoder's output overshoots far: a plain clamp would give it no gradient at all
    log_variance = torch.tensor([[40.0, 2.0]], requires_grad=True)
    gaussian_kl(torch.zeros(1, 2), clamp_passing_gradient(log_variance, -12.0, 6.0)).sum().backward()
    assert log_variance.grad is not None and bool((log_variance.grad > 1.0).all())  # the KL pushes both down
    plain = torch.tensor([[40.0, 2.0]], requires_grad=True)
    gaussian_kl(torch.zeros(1, 2), plain.clamp(-12.0, 6.0)).sum().backward()
    assert plain.grad is not None and plain.grad[0, 0].item() == 0.0  # the trap this avoids


def test_vae_reconstruction_script_reads_one_when_the_decoder_ignores_z(monkeypatch) -> None:

    script = importlib.import_module("palm_lightning.tools.vae_reconstruction")
    torch.manual_seed(0)
    model = VAEStyleGAN(encoder_width=8, **TINY).eval()
    images = torch.full((12, 1, 16, 16), 64, dtype=torch.uint8)
    images[::2, :, 4, 4] = 255  # a "sprite" in half the images of each class
    labels = torch.tensor([0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1])
    rows, grid = script.foreground_errors(model, images, labels, per_class=4, threshold=0.1, seed=0)
    assert [r["class"] for r in rows] == [0, 1] and len(grid) == 6 and grid[0].shape == (4, 1, 16, 16)
    assert all(0 < r["foreground_fraction"] < 0.01 and r["reconstruction_l1"] > 0 for r in rows)

    def one_frame_per_class(z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        return c.float()[:, None, None, None].expand(-1, 1, 16, 16) * 0.1

    monkeypatch.setattr(model.generator_ema, "generate", one_frame_per_class)
    rows, _ = script.foreground_errors(model, images, labels, per_class=4, threshold=0.1, seed=0)
    assert all(r["ratio"] == pytest.approx(1.0) for r in rows)
