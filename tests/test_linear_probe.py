"""The linear probe: frozen encoders (pixels, network files, random init), shape checks, the CLI config."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import pytest
import torch

from palm_lightning.checkpoints import CKPT_KEY, CheckpointError, describe, save_network
from palm_lightning.datamodules import FashionMNISTDataModule
from palm_lightning.models import FrozenEncoder, LinearProbe
from palm_lightning.nn.encoders import DrQEncoder, PixelEncoder
from tests.palm_fixtures import trainer as quiet_trainer

REPO = Path(__file__).resolve().parents[1]


def tiny_data(root: Path, **kwargs) -> FashionMNISTDataModule:
    kwargs = {"batch_size": 32, "val_size": 20, "system_dir": str(root / "no-system-copy"), **kwargs}
    return FashionMNISTDataModule(data_dir=str(root), **kwargs)


def trainer(tmp_path: Path, **kwargs) -> L.Trainer:
    return quiet_trainer(tmp_path, **{"max_epochs": 1, "num_sanity_val_steps": 0, **kwargs})


def small_drq(image_shape: tuple[int, int, int] = (1, 32, 32)) -> DrQEncoder:
    return DrQEncoder(image_shape=image_shape, channels=8, num_layers=2, repr_dim=32)


def encoder_file(tmp_path: Path, image_shape: tuple[int, int, int] = (1, 32, 32)) -> tuple[Path, DrQEncoder]:
    torch.manual_seed(123)
    network = small_drq(image_shape)
    return save_network(network, tmp_path / "encoder.pt", kind="encoder"), network


def test_pixels_probe_learns_tiny_fmnist(fmnist_root: Path, tmp_path: Path) -> None:
    L.seed_everything(0)
    probe = LinearProbe(encoder="pixels", lr=1e-2)
    assert probe.image_shape == (1, 32, 32) and probe.head[1].in_features == 32 * 32
    t = trainer(tmp_path, max_epochs=15)
    t.fit(probe, datamodule=tiny_data(fmnist_root))
    assert {"train/loss", "train/acc", "val/acc", "val/acc_top5"} <= set(t.callback_metrics)
    (results,) = t.test(probe, datamodule=tiny_data(fmnist_root), verbose=False)
    assert results["test/acc"] > 0.8, results
    assert results["test/acc_top5"] >= results["test/acc"]


def test_encoder_file_is_loaded_and_stays_frozen(fmnist_root: Path, tmp_path: Path) -> None:
    path, network = encoder_file(tmp_path)
    probe = LinearProbe(encoder=str(path), lr=1e-2)
    assert isinstance(probe.encoder, FrozenEncoder) and isinstance(probe.encoder.network, DrQEncoder)
    assert probe.encoder.network.config == network.config
    before = {k: v.clone() for k, v in probe.encoder.state_dict().items()}
    for k, v in network.state_dict().items():
        torch.testing.assert_close(before[k], v)
    assert not any(p.requires_grad for p in probe.encoder.parameters())

    modes = []

    class RecordModes(L.Callback):
        def on_train_batch_start(self, trainer, module, batch, batch_idx):
            modes.append((module.encoder.training, module.head.training))

    head_before = probe.head[1].weight.detach().clone()
    t = trainer(tmp_path, max_epochs=2, callbacks=[RecordModes()], num_sanity_val_steps=1)
    t.fit(probe, datamodule=tiny_data(fmnist_root))
    assert modes and all(mode == (False, True) for mode in modes)  # encoder eval, head train
    for k, v in probe.encoder.state_dict().items():
        torch.testing.assert_close(v, before[k])
    assert not torch.equal(probe.head[1].weight.detach(), head_before)  # the head did learn
    optimised = {id(p) for group in t.optimizers[0].param_groups for p in group["params"]}
    assert optimised == {id(p) for p in probe.head.parameters()}
    probe.train()
    assert not probe.encoder.training and probe.head.training


def test_encoder_from_a_package_lightning_checkpoint(tmp_path: Path) -> None:
    _, network = encoder_file(tmp_path)
    ckpt = tmp_path / "palm.ckpt"  # what ExportableMixin modules write: the network under CKPT_KEY
    torch.save(
        {"state_dict": {}, "pytorch-lightning_version": L.__version__, CKPT_KEY: describe(network, "encoder")}, ckpt
    )
    probe = LinearProbe(encoder=str(ckpt))
    for k, v in network.state_dict().items():
        torch.testing.assert_close(probe.encoder.state_dict()[k], v)
    torch.save({"state_dict": {}, "pytorch-lightning_version": L.__version__}, tmp_path / "other.ckpt")
    with pytest.raises(CheckpointError, match="without a palm_lightning network description"):
        LinearProbe(encoder=str(tmp_path / "other.ckpt"))


def test_random_init_keeps_architecture_not_weights(fmnist_root: Path, tmp_path: Path) -> None:
    path, network = encoder_file(tmp_path)
    L.seed_everything(7)
    probe = LinearProbe(encoder=str(path), random_init=True)
    L.seed_everything(7)
    again = LinearProbe(encoder=str(path), random_init=True)
    stored, fresh = network.state_dict(), probe.encoder.state_dict()
    assert type(probe.encoder.network) is DrQEncoder and probe.encoder.network.config == network.config
    assert {k: v.shape for k, v in fresh.items()} == {k: v.shape for k, v in stored.items()}
    assert not torch.equal(fresh["convnet.0.weight"], stored["convnet.0.weight"])
    for k, v in again.encoder.state_dict().items():  # the draw follows seed_everything
        torch.testing.assert_close(v, fresh[k])
    assert not probe.encoder.training and not any(p.requires_grad for p in probe.encoder.parameters())

    # The probe's checkpoint holds the random encoder: reloading under another seed restores it.
    t = trainer(tmp_path, max_steps=2, limit_val_batches=0)
    t.fit(probe, datamodule=tiny_data(fmnist_root))
    t.save_checkpoint(tmp_path / "probe.ckpt")
    L.seed_everything(8)
    assert not torch.equal(
        LinearProbe(encoder=str(path), random_init=True).encoder.network.convnet[0].weight, fresh["convnet.0.weight"]
    )
    restored = LinearProbe.load_from_checkpoint(tmp_path / "probe.ckpt")
    assert restored.hparams.random_init and not restored.encoder.training
    for k, v in restored.encoder.state_dict().items():
        torch.testing.assert_close(v, fresh[k])
    torch.testing.assert_close(restored.head[1].weight, probe.head[1].weight)


@pytest.mark.parametrize("random_init", [False, True])
def test_bad_encoder_files_raise_checkpoint_error(tmp_path: Path, random_init: bool) -> None:
    wrong = save_network(PixelEncoder((1, 32, 32)), tmp_path / "generator.pt", kind="generator")
    with pytest.raises(CheckpointError, match="'encoder' was expected") as err:
        LinearProbe(encoder=str(wrong), random_init=random_init)
    assert str(wrong) in str(err.value)
    missing = tmp_path / "nowhere" / "encoder.pt"
    with pytest.raises(CheckpointError, match="does not exist") as err:
        LinearProbe(encoder=str(missing), random_init=random_init)
    assert str(missing) in str(err.value)
    corrupt = tmp_path / "corrupt.pt"
    corrupt.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="corrupt") as err:
        LinearProbe(encoder=str(corrupt), random_init=random_init)
    assert str(corrupt) in str(err.value)


def test_image_shape_mismatch_is_a_clear_error(fmnist_root: Path, tmp_path: Path) -> None:
    path, _ = encoder_file(tmp_path, image_shape=(3, 32, 32))
    with pytest.raises(ValueError, match=r"\(3, 32, 32\).*\(1, 32, 32\).*channel"):
        trainer(tmp_path).fit(LinearProbe(encoder=str(path)), datamodule=tiny_data(fmnist_root))
    with pytest.raises(ValueError, match=r"\(1, 28, 28\).*\(1, 32, 32\).*resolution 28.*image_shape"):
        trainer(tmp_path).fit(LinearProbe(image_shape=(1, 28, 28)), datamodule=tiny_data(fmnist_root))
    with pytest.raises(ValueError, match=r"image_shape=\(1, 32, 32\) was given.*\(3, 32, 32\)"):
        LinearProbe(encoder=str(path), image_shape=(1, 32, 32))
    with pytest.raises(ValueError, match=r"batch images have shape \(2, 1, 28, 28\).*\(N, 3, 32, 32\)"):
        LinearProbe(encoder=str(path))(torch.zeros(2, 1, 28, 28))
    with pytest.raises(ValueError, match="num_classes 10"):
        trainer(tmp_path).fit(LinearProbe(num_classes=5), datamodule=tiny_data(fmnist_root))


def test_cli_config_fits_then_tests(
    fmnist_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    from palm_lightning.cli import main

    monkeypatch.setattr(sys, "argv", ["palm_lightning"])  # in-process: only `args` reach the CLI
    path, _ = encoder_file(tmp_path)
    common = [
        "--config", str(REPO / "configs/eval/linear_fmnist.yaml"),
        "--model.init_args.encoder", str(path),
        "--data.init_args.data_dir", str(fmnist_root),
        "--data.init_args.val_size", "20",
        "--data.init_args.batch_size", "32",
        "--data.init_args.download", "false",
        "--trainer.logger", "false",
        "--trainer.default_root_dir", str(tmp_path / "probe"),  # checkpoints and config.yaml go here
        "--trainer.enable_progress_bar", "false",
        "--trainer.accelerator", "cpu",
    ]  # fmt: skip
    main(["fit", *common, "--trainer.max_epochs", "1", "--trainer.val_check_interval", "5"])
    ckpt = tmp_path / "probe" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    assert state["global_step"] == 5 and "encoder.convnet.0.weight" in state["state_dict"]
    capsys.readouterr()
    main(["test", *common, "--ckpt_path", str(ckpt)])
    assert "test/acc" in capsys.readouterr().out


def test_probe_checkpoint_of_another_feature_size_is_a_clear_error(fmnist_root: Path, tmp_path: Path) -> None:
    """A probe checkpoint trained on pixels (1024 features) cannot be tested with a 32-feature encoder."""
    L.seed_everything(0)
    t = trainer(tmp_path, max_steps=2, enable_checkpointing=True, default_root_dir=str(tmp_path / "pixels"))
    t.fit(LinearProbe(encoder="pixels"), datamodule=tiny_data(fmnist_root))
    ckpt = tmp_path / "pixels_probe.ckpt"
    t.save_checkpoint(ckpt)
    path, _ = encoder_file(tmp_path)
    with pytest.raises(
        ValueError, match=r"maps 1024 features to 10 classes, but this probe's encoder .* gives 32 features"
    ):
        trainer(tmp_path).test(LinearProbe(encoder=str(path)), datamodule=tiny_data(fmnist_root), ckpt_path=str(ckpt))


# --- the FrozenEncoder module itself ------------------------------------------------------------
def test_frozen_encoder_stays_frozen_and_its_state_dict_is_the_networks(tmp_path: Path) -> None:
    path, network = encoder_file(tmp_path)
    frozen = FrozenEncoder(str(path))
    assert (frozen.image_shape, frozen.out_dim, frozen.source, frozen.is_pixels) == ((1, 32, 32), 32, str(path), False)
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    frozen.train()
    assert not frozen.training and not frozen.network.training  # whatever train() is called with
    images = torch.rand(3, 1, 32, 32) * 2 - 1
    with torch.enable_grad():
        features = frozen(images)
    assert features.shape == (3, 32) and features.dtype == torch.float32 and not features.requires_grad
    torch.testing.assert_close(features, network.eval()(images))
    with pytest.raises(ValueError, match=r"FrozenEncoder: batch images have shape \(3, 1, 16, 16\).*\(N, 1, 32, 32\)"):
        frozen(torch.zeros(3, 1, 16, 16))

    # The state dict is the network's (keys without "network."), in both directions.
    assert list(frozen.state_dict()) == list(network.state_dict())
    other = FrozenEncoder(str(path), random_init=True)
    assert not torch.equal(other.network.convnet[0].weight, network.convnet[0].weight)
    other.load_state_dict(network.state_dict())
    torch.testing.assert_close(other(images), features)
    holder = torch.nn.Module()
    holder.encoder = FrozenEncoder(str(path), random_init=True)
    assert "encoder.convnet.0.weight" in holder.state_dict()
    holder.load_state_dict({f"encoder.{k}": v for k, v in network.state_dict().items()})
    torch.testing.assert_close(holder.encoder(images), features)

    pixels = FrozenEncoder("pixels", image_shape=(3, 8, 8))
    assert pixels.is_pixels and pixels.out_dim == 192 and list(pixels.state_dict()) == []


def test_frozen_encoder_wraps_a_module_and_can_be_finetuned() -> None:
    network = small_drq()
    tuned = FrozenEncoder(network, finetune=True)
    assert tuned.network is network and tuned.source is None and tuned.training
    assert all(p.requires_grad for p in tuned.parameters())
    tuned.eval()
    assert not tuned.network.training
    tuned.train()
    assert tuned.network.training
    tuned(torch.rand(2, 1, 32, 32)).sum().backward()
    assert network.convnet[0].weight.grad is not None
    frozen = FrozenEncoder(small_drq())
    assert not frozen.training and not any(p.requires_grad for p in frozen.parameters())
    with pytest.raises(TypeError, match="Linear has no `image_shape` or `out_dim` attribute"):
        FrozenEncoder(torch.nn.Linear(3, 4))
    with pytest.raises(ValueError, match=r"image_shape=\(3, 32, 32\) was given.*\(1, 32, 32\)"):
        FrozenEncoder(small_drq(), image_shape=(3, 32, 32))
