"""The baselines of the PALM comparison: on-device augmentations, SimSiam on real images, the
supervised encoder, PALM's augmentation pairs, PALM with CURL, and the variant config overlays."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from palm_lightning import augment
from palm_lightning.checkpoints import load_network
from palm_lightning.datamodules import FashionMNISTDataModule, LatentManifoldDataModule
from palm_lightning.losses.curl import curl_loss
from palm_lightning.models import PALM, PALMCURL, PALMSAC, SimSiamImages, SupervisedEncoder
from palm_lightning.nn.encoders import DrQEncoder
from tests.palm_fixtures import tiny_data_kwargs, tiny_generator_file, tiny_palm_kwargs, trainer

REPO = Path(__file__).resolve().parents[1]
TINY_ENCODER = dict(encoder_channels=8, repr_dim=16)
TINY_HEADS = dict(projector_hidden=32, projector_dim=16, predictor_hidden=8)


def checkpointing_trainer(tmp_path: Path, steps: int, **kwargs) -> L.Trainer:
    callback = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    return trainer(tmp_path, steps, enable_checkpointing=True, callbacks=[callback], **kwargs)


@pytest.fixture
def generator_file(tmp_path: Path) -> Path:
    return tiny_generator_file(tmp_path)


# --- augmentations ------------------------------------------------------------------------------
AUGMENTATIONS = {
    "shift": lambda x, g: augment.random_shift(x, 4, generator=g),
    "flip": lambda x, g: augment.random_flip(x, generator=g),
    "flip_and_shift": lambda x, g: augment.random_flip_and_shift(x, generator=g),
    "resized_crop": lambda x, g: augment.random_resized_crop(x, generator=g),
    "brightness_contrast": lambda x, g: augment.random_brightness_contrast(x, p=1.0, generator=g),
    "grayscale": lambda x, g: augment.random_grayscale(x, p=0.5, generator=g),
    "simsiam": lambda x, g: augment.simsiam_augment(x, generator=g),
}


def asymmetric_images(n: int, channels: int) -> torch.Tensor:
    """``n`` copies of one image with no symmetry (a ramp plus a corner patch), in [-1, 1]."""
    ramp = torch.linspace(-1, 1, 32)
    image = (ramp[None, :] * 0.5 + ramp[:, None] * 0.3).expand(channels, 32, 32).clone()
    image[:, :6, :10] = 1.0
    if channels == 3:
        image[1] *= 0.5
    return image.expand(n, -1, -1, -1).contiguous()


@pytest.mark.parametrize("name", sorted(AUGMENTATIONS))
@pytest.mark.parametrize("channels", [1, 3])
def test_augmentation_shape_range_randomness_and_determinism(name, channels):
    images = asymmetric_images(16, channels)
    fn = AUGMENTATIONS[name]
    out = fn(images, None)
    assert out.shape == images.shape and out.dtype == images.dtype
    assert out.min() >= -1.0 - 1e-6 and out.max() <= 1.0 + 1e-6
    if not (name == "grayscale" and channels == 1):
        distinct = {tuple(v.flatten().round(decimals=4).tolist()) for v in out}
        assert len(distinct) > 1, "the same image must get different views within a batch"
    a = fn(images, torch.Generator().manual_seed(3))
    b = fn(images, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b, rtol=0, atol=0)


def test_shift_is_a_translation_and_pad_zero_is_identity():
    images = torch.rand(8, 1, 10, 10) * 2 - 1
    assert augment.random_shift(images, pad=0) is images
    out = augment.random_shift(images, pad=1, generator=torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (1, 1, 1, 1), mode="replicate")
    for i in range(8):
        crops = [padded[i, :, dy : dy + 10, dx : dx + 10] for dy in range(3) for dx in range(3)]
        assert any(torch.equal(out[i], c) for c in crops)


def test_full_crop_and_zero_jitter_are_identities():
    images = torch.rand(4, 3, 12, 12) * 2 - 1
    torch.testing.assert_close(augment.random_resized_crop(images, scale=(1.0, 1.0), ratio=(1.0, 1.0)), images)
    torch.testing.assert_close(augment.random_brightness_contrast(images, 0.0, 0.0, p=1.0), images)
    assert torch.equal(augment.random_brightness_contrast(images, p=0.0), images)


def test_augmentations_refuse_uint8_and_flat_inputs():
    with pytest.raises(TypeError, match="float images"):
        augment.random_flip(torch.zeros(2, 1, 8, 8, dtype=torch.uint8))
    with pytest.raises(ValueError, match=r"\(N, C, H, W\)"):
        augment.random_shift(torch.zeros(8, 8))


def test_flip_and_shift_is_still_importable_from_the_classifier():
    from palm_lightning.models.generators.classifier import random_flip_and_shift

    assert random_flip_and_shift is augment.random_flip_and_shift


# --- SimSiam on real images and the supervised encoder --------------------------------------------
def test_simsiam_images_trains_probes_and_exports_its_encoder(tmp_path, fmnist_root):
    data = FashionMNISTDataModule(data_dir=str(fmnist_root), batch_size=32)
    model = SimSiamImages(**TINY_ENCODER, **TINY_HEADS)
    before = [p.detach().clone() for p in model.encoder.parameters()]
    fit = checkpointing_trainer(tmp_path, 4, val_check_interval=2, check_val_every_n_epoch=None)
    fit.fit(model, data)
    assert int(model.updates) == 4 == fit.global_step
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters(), strict=True))
    assert 0.0 <= float(fit.callback_metrics["probe/knn_acc"]) <= 1.0 and "val/knn_acc" not in fit.callback_metrics
    assert torch.isfinite(fit.callback_metrics["train/ssl_loss"]) and "train/z_std" in fit.callback_metrics
    encoder = load_network(tmp_path / "checkpoints" / "last.ckpt", kind="encoder")
    assert isinstance(encoder, DrQEncoder) and encoder.out_dim == 16
    images = torch.rand(3, 1, 32, 32) * 2 - 1
    torch.testing.assert_close(encoder(images), model.encoder.eval()(images))


def test_simsiam_images_names_a_shape_mismatch(tmp_path, fmnist_root):
    data = FashionMNISTDataModule(data_dir=str(fmnist_root), resolution=16, resize_mode="resize")
    with pytest.raises(ValueError, match=r"image_shape is \(1, 32, 32\).*\(1, 16, 16\)"):
        trainer(tmp_path, 1).fit(SimSiamImages(**TINY_ENCODER, **TINY_HEADS), data)
    with pytest.raises(ValueError, match="optimizer must be"):
        SimSiamImages(optimizer="lars")


def test_simsiam_images_sgd_cosine_option_runs(tmp_path, fmnist_root):
    data = FashionMNISTDataModule(data_dir=str(fmnist_root), batch_size=32)
    model = SimSiamImages(**TINY_ENCODER, **TINY_HEADS, optimizer="sgd", lr=0.03, lr_schedule="cosine")
    fit = trainer(tmp_path, 2, limit_val_batches=0)
    fit.fit(model, data)
    assert isinstance(fit.optimizers[0], torch.optim.SGD) and int(model.updates) == 2


def test_supervised_encoder_learns_the_visible_classes_and_exports_only_the_encoder(tmp_path, fmnist_root):
    L.seed_everything(0)
    data = FashionMNISTDataModule(data_dir=str(fmnist_root), batch_size=32, val_size=20)
    model = SupervisedEncoder(**TINY_ENCODER)
    fit = checkpointing_trainer(tmp_path, 150, num_sanity_val_steps=0)
    fit.fit(model, data)
    accuracy = fit.test(model, data, verbose=False)[0]["test/acc"]
    assert accuracy > 0.8
    encoder = load_network(tmp_path / "checkpoints" / "last.ckpt", kind="encoder")
    assert isinstance(encoder, DrQEncoder) and encoder.out_dim == 16


# --- PALM's variants ----------------------------------------------------------------------------
def test_pairing_chooses_the_views():
    window = torch.rand(4, 3, 1, 16, 16) * 2 - 1
    obs, next_obs = PALM(**tiny_palm_kwargs()).representation_pair(window)
    assert torch.equal(obs, window[:, 0]) and torch.equal(next_obs, window[:, 1])
    view1, view2 = PALM(**tiny_palm_kwargs(pairing="augmentation", augmentation_pad=0)).representation_pair(window)
    assert torch.equal(view1, window[:, 0]) and torch.equal(view2, window[:, 0])
    view1, view2 = PALM(**tiny_palm_kwargs(pairing="augmentation", augmentation_pad=3)).representation_pair(window)
    assert view1.shape == window[:, 0].shape and not torch.equal(view1, view2)
    with pytest.raises(ValueError, match="pairing must be 'temporal' or 'augmentation', got 'spatial'"):
        PALM(**tiny_palm_kwargs(pairing="spatial"))


def test_palm_with_augmentation_pairs_trains(tmp_path, generator_file):
    model = PALM(**tiny_palm_kwargs(pairing="augmentation"))
    before = [p.detach().clone() for p in model.encoder.parameters()]
    trainer(tmp_path, 3).fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator_file)))
    assert int(model.updates) == 3
    assert any(not torch.equal(a, b) for a, b in zip(before, model.encoder.parameters(), strict=True))


def test_curl_loss_prefers_the_matching_key():
    keys = torch.nn.functional.normalize(torch.randn(8, 16), dim=1)
    loss, accuracy = curl_loss(keys, keys, torch.eye(16) * 20)
    assert accuracy == 1.0 and loss < 0.01
    loss, _ = curl_loss(keys, keys.roll(1, 0), torch.eye(16) * 20)
    assert loss > 1.0


def test_curl_polyak_update_of_the_key_networks():
    model = PALMCURL(**tiny_palm_kwargs(), key_tau=0.25)
    with torch.no_grad():
        for p in [*model.encoder.parameters(), *model.projector.parameters()]:
            p.add_(torch.randn_like(p))
    old = {k: v.clone() for k, v in model.key_encoder.state_dict().items()}
    online = model.encoder.state_dict()
    model.after_update()
    for k, v in model.key_encoder.state_dict().items():
        torch.testing.assert_close(v, old[k] + 0.25 * (online[k] - old[k]))
    with pytest.raises(ValueError, match="key_tau"):
        PALMCURL(**tiny_palm_kwargs(), key_tau=0.0)


def test_curl_trains_keeps_key_networks_out_of_the_optimizer_and_checkpoints_them(tmp_path, generator_file):
    model = PALMCURL(**tiny_palm_kwargs())
    key_before = [p.detach().clone() for p in model.key_encoder.parameters()]
    assert not hasattr(model, "predictor")  # SimSiam's predictor: unused, not built
    bilinear_before = model.bilinear.detach().clone()
    fit = trainer(tmp_path, 3)
    fit.fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator_file)))
    assert int(model.updates) == 3

    optimised = {id(p) for group in fit.optimizers[0].param_groups for p in group["params"]}
    keys = [*model.key_encoder.parameters(), *model.key_projector.parameters()]
    assert all(not p.requires_grad and id(p) not in optimised for p in keys)
    assert id(model.bilinear) in optimised and not torch.equal(bilinear_before, model.bilinear)
    # The key encoder moved (Polyak towards the online encoder) but is not the online encoder.
    assert any(not torch.equal(a, b) for a, b in zip(key_before, model.key_encoder.parameters(), strict=True))
    assert any(
        not torch.equal(a, b) for a, b in zip(model.encoder.parameters(), model.key_encoder.parameters(), strict=True)
    )
    assert "train/contrastive_acc" in fit.callback_metrics
    rewards = model.reward_features(torch.randn(5, 16))
    torch.testing.assert_close(rewards.norm(dim=1), torch.ones(5))

    fit.save_checkpoint(tmp_path / "curl.ckpt")
    restored = PALMCURL.load_from_checkpoint(tmp_path / "curl.ckpt")
    for name in ("key_encoder", "key_projector"):
        saved, loaded = getattr(model, name).state_dict(), getattr(restored, name).state_dict()
        assert all(torch.equal(saved[k], loaded[k]) for k in saved), name
    assert torch.equal(restored.bilinear, model.bilinear)
    assert isinstance(load_network(tmp_path / "curl.ckpt", kind="encoder"), DrQEncoder)


# --- config overlays ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    "overlay, cls, pairing, policy, repr_lr, name",
    [
        ("curl", PALMCURL, "temporal", "apt", 3e-4, "palm_curl"),
        ("augmentation_pairs", PALM, "augmentation", "apt", 3e-4, "palm_augmentation_pairs"),
        ("random_policy", PALM, "temporal", "random", 3e-4, "palm_random_policy"),
        ("repr_lr_1e-3", PALM, "temporal", "apt", 1e-3, "palm_repr_lr_1e-3"),
        ("repr_lr_1e-4", PALM, "temporal", "apt", 1e-4, "palm"),
        ("repr_sgd", PALM, "temporal", "apt", 0.03, "palm_repr_sgd"),
        ("sphere", PALM, "temporal", "apt", 3e-4, "palm_sphere"),
        ("sac", PALMSAC, "temporal", "apt", 3e-4, "palm_sac"),
    ],
)
def test_variant_overlays_keep_palm_yaml(tmp_path, monkeypatch, overlay, cls, pairing, policy, repr_lr, name):
    from palm_lightning.cli import PalmCLI

    monkeypatch.setattr(sys, "argv", ["palm_lightning"])  # the CLI reads args=, not pytest's argv
    cli = PalmCLI(
        args=[
            "--config",
            str(REPO / "configs/palm.yaml"),
            "--config",
            str(REPO / f"configs/palm_variants/{overlay}.yaml"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
            "--trainer.enable_progress_bar",
            "false",
        ],
        run=False,
    )
    assert type(cli.model) is cls
    hp = cli.model.hparams
    assert (hp.pairing, hp.policy, hp.repr_lr) == (pairing, policy, repr_lr)
    assert tuple(hp.image_shape) == (1, 32, 32)
    assert hp.agent["hidden_dim"] == 256 and hp.agent["stddev_schedule"] == "0.2"
    assert (
        type(cli.model.reward).__name__ == "APT" and cli.model.reward.source == "obs" and not cli.model.reward.knn_rms
    )
    assert cli.trainer.logger.name == name and cli.trainer.max_steps == 1000


@pytest.mark.parametrize("config", ["simsiam_fmnist", "supervised_fmnist"])
def test_baseline_configs_parse(tmp_path, monkeypatch, config):
    from palm_lightning.cli import PalmCLI

    monkeypatch.setattr(sys, "argv", ["palm_lightning"])  # the CLI reads args=, not pytest's argv
    cli = PalmCLI(
        args=[
            "--config",
            str(REPO / f"configs/baselines/{config}.yaml"),
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ],
        run=False,
    )
    assert cli.model.encoder.config == {
        "image_shape": (1, 32, 32),
        "channels": 32,
        "num_layers": 4,
        "repr_dim": 256,
        "weight_init": "default",
    }
    assert cli.datamodule.batch_size == 256 and cli.trainer.max_steps == 1000
