"""KNNProbe and OODDetector through a Lightning Trainer and through the CLI configs, on tiny data."""

from __future__ import annotations

import sys
from pathlib import Path

import lightning as L
import pytest
import torch
import torchvision.datasets.utils as tv_utils

from palm_lightning.checkpoints import save_network
from palm_lightning.datamodules import DigitsDataModule, FashionMNISTDataModule, OODDataModule
from palm_lightning.evaluation import extract_features, knn_classify
from palm_lightning.models import KNNProbe, OODDetector
from palm_lightning.nn.encoders import DrQEncoder
from tests.palm_fixtures import trainer

REPO = Path(__file__).resolve().parents[1]
EVAL_CONFIGS = sorted(
    p.name for p in (REPO / "configs" / "eval").glob("*.yaml") if p.name.startswith(("knn_", "ood_", "linear_cifar"))
)
METRICS = ("auroc", "aupr_in", "aupr_out", "fpr95")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "argv", ["palm_lightning"])  # in-process CLI: only `args` reach it

    def refuse(*args, **kwargs):
        raise AssertionError(f"test tried to download: {args}")

    monkeypatch.setattr(tv_utils, "_urlretrieve", refuse)


def fmnist(root: Path, **kwargs) -> FashionMNISTDataModule:
    kwargs = {"batch_size": 32, "system_dir": str(root / "no-system-copy"), **kwargs}
    return FashionMNISTDataModule(data_dir=str(root), **kwargs)


def encoder_file(tmp_path: Path, image_shape: tuple[int, int, int] = (1, 32, 32)) -> Path:
    torch.manual_seed(123)
    network = DrQEncoder(image_shape=image_shape, channels=8, num_layers=2, repr_dim=32)
    return save_network(network, tmp_path / "encoder.pt", kind="encoder")


# --- kNN probe ------------------------------------------------------------------------------------
def test_knn_probe_on_pixels_tests_and_validates(fmnist_root: Path, tmp_path: Path) -> None:
    probe = KNNProbe(k=5)
    (results,) = trainer(tmp_path).test(probe, datamodule=fmnist(fmnist_root), verbose=False)
    assert results["test/knn_acc"] > 0.8 and results["test/knn_acc_top5"] >= results["test/knn_acc"]
    assert probe.bank is None  # released after the epoch

    dm = fmnist(fmnist_root)
    dm.setup("fit")
    dm.setup("test")
    bank = extract_features(probe.encoder, dm.train_set.images, dm.normalize)
    queries = extract_features(probe.encoder, dm.test_set.images, dm.normalize)
    expected = (knn_classify(bank, dm.train_set.labels, queries, 10, k=5) == dm.test_set.labels).float().mean()
    assert results["test/knn_acc"] == pytest.approx(float(expected))

    (val,) = trainer(tmp_path).validate(KNNProbe(k=5), datamodule=fmnist(fmnist_root, val_size=50), verbose=False)
    assert set(val) == {"val/knn_acc", "val/knn_acc_top5"} and val["val/knn_acc"] > 0.8


def test_knn_probe_bank_follows_train_fraction_and_encoder_files(fmnist_root: Path, tmp_path: Path) -> None:
    sizes = []

    class BankSize(L.Callback):
        def on_test_batch_end(self, trainer, module, outputs, batch, batch_idx, dataloader_idx=0):
            sizes.append((module.bank.shape, module.encoder.training))

    probe = KNNProbe(encoder=str(encoder_file(tmp_path)), k=3)
    (results,) = trainer(tmp_path, callbacks=[BankSize()]).test(
        probe, datamodule=fmnist(fmnist_root, val_size=20, train_fraction=0.25), verbose=False
    )
    assert sizes and all(s == ((40, 32), False) for s in sizes)  # 180 training images × 25%, class-balanced
    assert 0.0 <= results["test/knn_acc"] <= 1.0


def test_knn_probe_shape_and_class_checks(fmnist_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"KNNProbe: the encoder takes images of shape \(3, 32, 32\).*channel"):
        trainer(tmp_path).test(
            KNNProbe(encoder=str(encoder_file(tmp_path, (3, 32, 32)))), datamodule=fmnist(fmnist_root)
        )
    with pytest.raises(ValueError, match="num_classes 10"):
        trainer(tmp_path).test(KNNProbe(num_classes=5), datamodule=fmnist(fmnist_root))


# --- OOD detector -------------------------------------------------------------------------------------
def test_near_ood_on_pixels_beats_chance(fmnist_root: Path, tmp_path: Path) -> None:
    detector = OODDetector(knn_k=5)
    data = OODDataModule(fmnist(fmnist_root), in_classes=[0, 1, 2, 3, 4], batch_size=32)
    results, again = trainer(tmp_path).test(detector, datamodule=data, verbose=False)  # one dict per loader
    assert results == again  # epoch-level metrics: the same in both
    assert set(results) == {f"test/{s}/{m}" for s in ("knn", "mahalanobis") for m in METRICS}
    for scorer in ("knn", "mahalanobis"):  # the class is a visible band: OOD classes put it elsewhere
        assert results[f"test/{scorer}/auroc"] > 0.9, results
        assert results[f"test/{scorer}/fpr95"] < 0.5, results


def test_far_ood_with_an_encoder_file(fmnist_root: Path, tmp_path: Path) -> None:
    detector = OODDetector(encoder=str(encoder_file(tmp_path)), scorers=["mahalanobis"])
    data = OODDataModule(fmnist(fmnist_root), DigitsDataModule(), batch_size=256)
    results, _ = trainer(tmp_path).test(detector, datamodule=data, verbose=False)
    assert set(results) == {f"test/mahalanobis/{m}" for m in METRICS}
    assert all(0.0 <= v <= 1.0 for v in results.values())


def test_ood_detector_errors(fmnist_root: Path, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown OOD scorer 'energy'; known scorers: knn, mahalanobis"):
        OODDetector(scorers=["knn", "energy"])
    with pytest.raises(TypeError, match=r"needs an OODDataModule.*FashionMNISTDataModule"):
        trainer(tmp_path).test(OODDetector(), datamodule=fmnist(fmnist_root))
    data = OODDataModule(fmnist(fmnist_root), in_classes=[0, 1])
    with pytest.raises(
        ValueError, match=r"OODDetector: the encoder takes images of shape \(1, 28, 28\).*\(1, 32, 32\)"
    ):
        trainer(tmp_path).test(OODDetector(image_shape=(1, 28, 28)), datamodule=data)
    with pytest.raises(ValueError, match=r"\(1, 32, 32\) but DigitsDataModule serves \(1, 8, 8\): set resize: true"):
        OODDataModule(fmnist(fmnist_root), DigitsDataModule(resolution=8, border=0))


# --- the CLI configs ------------------------------------------------------------------------------------
def cli(config: str, root: Path, tmp_path: Path, *extra: str):
    from palm_lightning.cli import PalmCLI

    data_dir = (
        "--data.init_args.in_data.init_args.data_dir" if config.startswith("ood_") else "--data.init_args.data_dir"
    )
    args = [
        "--config", str(REPO / "configs" / "eval" / config), data_dir, str(root),
        "--trainer.logger", "false", "--trainer.enable_progress_bar", "false", "--trainer.accelerator", "cpu",
        "--trainer.enable_model_summary", "false", "--trainer.default_root_dir", str(tmp_path), *extra,
    ]  # fmt: skip
    return PalmCLI(args=args, run=False)


@pytest.mark.parametrize("config", EVAL_CONFIGS)
def test_eval_configs_parse_and_instantiate(config: str, fmnist_root: Path, tmp_path: Path) -> None:
    made = cli(config, fmnist_root, tmp_path)
    expected = {"knn": KNNProbe, "ood": OODDetector, "linear": L.LightningModule}[config.split("_")[0]]
    assert isinstance(made.model, expected)
    if "cifar" in config:
        assert made.model.image_shape == (3, 32, 32)


def test_fmnist_eval_configs_run_on_tiny_data(fmnist_root: Path, tmp_path: Path) -> None:
    made = cli(
        "knn_fmnist.yaml",
        fmnist_root,
        tmp_path,
        "--data.init_args.val_size",
        "20",
        "--data.init_args.download",
        "false",
    )
    (results,) = made.trainer.test(made.model, made.datamodule, verbose=False)
    assert results["test/knn_acc"] > 0.8
    for config in ("ood_fmnist.yaml", "ood_fmnist_near.yaml"):
        # k 50 of the config would span 2.5 classes of this 100-image bank: 5 suits its size
        made = cli(
            config,
            fmnist_root,
            tmp_path,
            "--data.init_args.in_data.init_args.download",
            "false",
            "--model.init_args.knn_k",
            "5",
        )
        results, _ = made.trainer.test(made.model, made.datamodule, verbose=False)
        assert results["test/knn/auroc"] > 0.9 and results["test/mahalanobis/auroc"] > 0.9, (config, results)
    assert len(made.datamodule.out_test_set) == 50  # near: the test images of classes 5-9
