"""Downstream evaluation without Lightning: features, kNN votes, OOD scorers and metrics, the digits
data module and the OOD data module (far and near protocols, shape adaptation, errors)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision.datasets.utils as tv_utils

from palm_lightning.datamodules import (
    CIFAR10DataModule,
    DatasetNotFoundError,
    DigitsDataModule,
    FashionMNISTDataModule,
    OODDataModule,
)
from palm_lightning.datamodules.images.ood import to_channels
from palm_lightning.evaluation import (
    SCORERS,
    KNNDistanceScorer,
    MahalanobisScorer,
    extract_features,
    knn_classify,
    knn_votes,
    ood_metrics,
)
from palm_lightning.models.evaluation.frozen_encoder import FrozenEncoder
from palm_lightning.nn.encoders import DrQEncoder, PixelEncoder
from tests.test_image_datamodules import write_cifar


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError(f"test tried to download: {args}")

    monkeypatch.setattr(tv_utils, "_urlretrieve", refuse)


def fmnist(root: Path, **kwargs) -> FashionMNISTDataModule:
    return FashionMNISTDataModule(data_dir=str(root), system_dir=str(root / "no-system-copy"), **kwargs)


def symmetric(images: torch.Tensor) -> torch.Tensor:
    return images.float() / 127.5 - 1.0


# --- features ---------------------------------------------------------------------------------------
def test_extract_features_chunks_in_eval_mode_and_restores_the_mode() -> None:
    images = torch.randint(0, 256, (10, 1, 32, 32), dtype=torch.uint8)
    features = extract_features(PixelEncoder((1, 32, 32)), images, symmetric, batch_size=3)
    assert features.dtype == torch.float32 and features.device.type == "cpu" and features.shape == (10, 1024)
    torch.testing.assert_close(features, symmetric(images).flatten(1))

    torch.manual_seed(0)
    encoder = DrQEncoder((1, 32, 32), channels=4, num_layers=2, repr_dim=8).train()
    seen = []
    encoder.register_forward_pre_hook(lambda module, args: seen.append((module.training, torch.is_grad_enabled())))
    chunked = extract_features(encoder, images, symmetric, batch_size=4)
    assert seen == [(False, False)] * 3 and encoder.training  # eval, no grad, then back to train mode
    with torch.no_grad():
        torch.testing.assert_close(chunked, encoder.eval()(symmetric(images)))
    assert extract_features(encoder, images[:0], symmetric).shape == (0, 8)


def test_extract_features_names_both_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(N, 1, 32, 32\), got \(2, 1, 28, 28\).*resolution"):
        extract_features(PixelEncoder((1, 32, 32)), torch.zeros(2, 1, 28, 28, dtype=torch.uint8), symmetric)
    with pytest.raises(ValueError, match="positive"):
        extract_features(
            PixelEncoder((1, 32, 32)), torch.zeros(2, 1, 32, 32, dtype=torch.uint8), symmetric, batch_size=0
        )


def test_pooled_pixels_average_blocks_and_refuse_a_pool_that_does_not_divide() -> None:
    images = torch.arange(2 * 16, dtype=torch.float32).reshape(2, 1, 4, 4)
    pooled = PixelEncoder((1, 4, 4), pool=2)
    assert pooled.out_dim == 4
    expected = images.reshape(2, 2, 2, 2, 2).mean(dim=(2, 4)).flatten(1)  # rows (i, di), cols (j, dj)
    torch.testing.assert_close(pooled(images), expected)
    assert pooled(images)[0, 0] == (0 + 1 + 4 + 5) / 4
    with pytest.raises(ValueError, match=r"pool=3.*divisor"):
        PixelEncoder((1, 4, 4), pool=3)
    with pytest.raises(ValueError, match="only applies to encoder='pixels'"):
        FrozenEncoder("some/encoder.pt", pixel_pool=2)
    assert FrozenEncoder("pixels", image_shape=(1, 4, 4), pixel_pool=2).out_dim == 4


# --- kNN votes ----------------------------------------------------------------------------------------
def test_knn_votes_by_hand_and_classify_is_their_argmax() -> None:
    bank = torch.tensor([[1.0, 0.0], [2.0, 0.1], [0.0, 1.0], [0.1, 3.0]])
    labels = torch.tensor([0, 0, 1, 2])
    queries = torch.tensor([[1.0, 0.05], [0.0, 2.0]])
    votes = knn_votes(bank, labels, queries, num_classes=3, k=2, temperature=1.0)
    sim = torch.nn.functional.normalize(queries, dim=1) @ torch.nn.functional.normalize(bank, dim=1).T
    assert votes.shape == (2, 3)
    torch.testing.assert_close(votes[0], torch.tensor([sim[0, 0].exp() + sim[0, 1].exp(), 0.0, 0.0]))
    torch.testing.assert_close(votes[1], torch.tensor([0.0, sim[1, 2].exp(), sim[1, 3].exp()]))
    assert knn_classify(bank, labels, queries, 3, k=2, temperature=1.0).tolist() == [0, 1]  # [0, 1] is nearest
    assert knn_votes(bank, labels, queries, 3, k=100).shape == (2, 3)  # k > bank: the whole bank votes
    with pytest.raises(ValueError, match="same D"):
        knn_votes(bank, labels, torch.zeros(1, 3), 3)


# --- OOD scorers --------------------------------------------------------------------------------------
def test_knn_distance_scorer_by_hand_and_against_brute_force(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("palm_lightning.evaluation.ood_scorers.ELEMENTS_PER_CHUNK", 3000)  # 10 queries per chunk
    bank = torch.tensor([[0.0], [1.0], [2.0], [10.0]])
    scorer = KNNDistanceScorer(k=2, normalize=False).fit(bank)
    torch.testing.assert_close(scorer.score(torch.tensor([[0.0], [9.0]])), torch.tensor([-1.0, -7.0]))

    generator = torch.Generator().manual_seed(0)
    train, test = torch.randn(300, 16, generator=generator), torch.randn(40, 16, generator=generator)
    scores = KNNDistanceScorer(k=7).fit(train, torch.zeros(300)).score(test)
    normed = torch.nn.functional.normalize
    expected = -torch.cdist(normed(test, dim=1), normed(train, dim=1)).sort(1).values[:, 6]
    torch.testing.assert_close(scores, expected, atol=1e-5, rtol=1e-5)
    assert KNNDistanceScorer(k=1000).fit(train).score(test).shape == (40,)  # k beyond the bank: the farthest


@pytest.mark.parametrize("chunked", [False, True])
def test_mahalanobis_matches_the_textbook_formula(chunked: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if chunked:  # 10 features per chunk: the chunked float64 passes must give the same estimate
        monkeypatch.setattr("palm_lightning.evaluation.ood_scorers.ELEMENTS_PER_CHUNK", 40)
    generator = torch.Generator().manual_seed(1)
    labels = torch.arange(120) % 3
    train = torch.randn(120, 4, generator=generator) @ torch.randn(4, 4, generator=generator) + 3.0 * labels[:, None]
    test = torch.randn(25, 4, generator=generator) * 2.0
    x = train.double()
    means = torch.stack([x[labels == c].mean(0) for c in range(3)])
    residual = x - means[labels]
    precision = torch.linalg.inv(residual.T @ residual / len(x))
    diff = test.double()[:, None, :] - means[None]  # (Q, C, D)
    expected = -torch.einsum("qcd,de,qce->qc", diff, precision, diff).min(1).values
    scores = MahalanobisScorer(eps=1e-12).fit(train, labels).score(test)
    assert scores.dtype == torch.float32
    torch.testing.assert_close(scores.double(), expected, rtol=1e-4, atol=1e-4)

    # a single Gaussian without labels (or with class_conditional=False)
    center = x - x.mean(0)
    single = -torch.einsum(
        "qd,de,qe->q",
        test.double() - x.mean(0),
        torch.linalg.inv(center.T @ center / len(x)),
        test.double() - x.mean(0),
    )
    torch.testing.assert_close(
        MahalanobisScorer(eps=1e-12).fit(train).score(test).double(), single, rtol=1e-4, atol=1e-4
    )
    torch.testing.assert_close(
        MahalanobisScorer(class_conditional=False, eps=1e-12).fit(train, labels).score(test).double(),
        single,
        rtol=1e-4,
        atol=1e-4,
    )


def test_mahalanobis_on_singular_pixel_features_stays_finite_and_ranks() -> None:
    generator = torch.Generator().manual_seed(2)
    train = torch.zeros(60, 1024)
    train[:, :300] = torch.rand(60, 300, generator=generator)  # rank ≤ 60, 724 dead pixels (a padded border)
    labels = torch.arange(60) % 2
    near = torch.zeros(10, 1024)
    near[:, :300] = torch.rand(10, 300, generator=generator)
    far = near.clone()
    far[:, 500:600] = 1.0  # lights pixels that were always 0
    scorer = MahalanobisScorer().fit(train, labels)
    near_scores, far_scores = scorer.score(near), scorer.score(far)
    assert torch.isfinite(near_scores).all() and torch.isfinite(far_scores).all()
    assert near_scores.min() > far_scores.max()
    assert ood_metrics(near_scores, far_scores)["auroc"] == pytest.approx(1.0)


def test_scorers_fail_clearly() -> None:
    assert set(SCORERS) == {"knn", "mahalanobis"}
    for cls in SCORERS.values():
        with pytest.raises(RuntimeError, match=r"call fit\(train_features, train_labels\) before score"):
            cls().score(torch.zeros(2, 3))
        fitted = cls().fit(torch.randn(10, 3), torch.arange(10) % 2)
        with pytest.raises(ValueError, match="fitted on 3-dimensional features, got 4-dimensional"):
            fitted.score(torch.zeros(2, 4))
    with pytest.raises(ValueError, match="5 labels"):
        MahalanobisScorer().fit(torch.randn(10, 3), torch.zeros(5))


# --- OOD metrics --------------------------------------------------------------------------------------
def test_ood_metrics_perfect_chance_and_by_hand() -> None:
    perfect = ood_metrics(torch.tensor([3.0, 4.0, 5.0]), torch.tensor([0.0, 1.0]))
    assert perfect == pytest.approx({"auroc": 1.0, "aupr_in": 1.0, "aupr_out": 1.0, "fpr95": 0.0})
    worst = ood_metrics(torch.tensor([0.0, 1.0]), torch.tensor([3.0, 4.0]))
    assert worst["auroc"] == pytest.approx(0.0) and worst["fpr95"] == pytest.approx(1.0)

    generator = torch.Generator().manual_seed(0)
    same = ood_metrics(torch.randn(4000, generator=generator), torch.randn(4000, generator=generator))
    assert same["auroc"] == pytest.approx(0.5, abs=0.03) and same["fpr95"] == pytest.approx(0.95, abs=0.03)

    # By hand: in = .9 .8 .7 .6, out = .75 .5 .4 .3. 14 of the 16 (in, out) pairs are ordered: AUROC 0.875.
    # Accepting 95% of 4 in-distribution samples means accepting all (threshold .6): 1 of 4 OOD passes.
    # Ranked: in in OUT in in out out out → AP_in = (1/1 + 2/2 + 3/4 + 4/5) / 4 = 0.8875;
    # reversed: out out out in in OUT → AP_out = (1 + 1 + 1 + 4/6) / 4 = 0.91667.
    hand = ood_metrics(torch.tensor([0.9, 0.8, 0.7, 0.6]), torch.tensor([0.75, 0.5, 0.4, 0.3]))
    assert hand == pytest.approx({"auroc": 0.875, "aupr_in": 0.8875, "aupr_out": 11 / 12, "fpr95": 0.25}, abs=1e-6)


def test_ood_metrics_match_sklearn_and_ignore_the_scale() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    generator = torch.Generator().manual_seed(3)
    in_scores = torch.randn(300, generator=generator) + 1.0
    out_scores = torch.randn(200, generator=generator).round()  # ties, across and within the sets
    target = np.r_[np.ones(300), np.zeros(200)]
    scores = torch.cat([in_scores, out_scores]).numpy()
    metrics = ood_metrics(in_scores, out_scores)
    assert metrics["auroc"] == pytest.approx(roc_auc_score(target, scores), abs=1e-6)
    assert metrics["aupr_in"] == pytest.approx(average_precision_score(target, scores), abs=1e-6)
    assert metrics["aupr_out"] == pytest.approx(average_precision_score(1 - target, -scores), abs=1e-6)
    threshold = np.sort(in_scores.numpy())[::-1][int(np.ceil(0.95 * 300)) - 1]  # accepts 285 of 300
    assert metrics["fpr95"] == pytest.approx(float((out_scores.numpy() >= threshold).mean()), abs=1e-6)
    # Mahalanobis-sized scores: no sigmoid saturation into ties
    assert ood_metrics(in_scores * 1e7 - 1e9, out_scores * 1e7 - 1e9) == pytest.approx(metrics)
    with pytest.raises(ValueError, match="both sets"):
        ood_metrics(in_scores, torch.zeros(0))
    with pytest.raises(ValueError, match="NaN"):
        ood_metrics(in_scores, torch.tensor([float("nan")]))


# --- scikit-learn's digits ------------------------------------------------------------------------------
def test_digits_are_scaled_resized_and_split_fixed() -> None:
    from sklearn.datasets import load_digits

    raw = load_digits()
    dm = DigitsDataModule(resolution=8, border=0, seed=5)
    assert dm.image_shape == (1, 8, 8) and dm.resize_mode == "resize" and dm.num_classes == 10
    train, train_labels = dm.load_split("train")
    test, test_labels = dm.load_split("test")
    assert train.dtype == torch.uint8 and train.shape == (898, 1, 8, 8) and test.shape == (899, 1, 8, 8)
    all_images = torch.cat([train, test])[:, 0].numpy()
    expected = np.rint(raw.images * 255 / 16).astype(np.uint8)
    # a permutation of the whole set: every image once, labels attached
    order = np.lexsort(all_images.reshape(len(all_images), -1).T)
    ref_order = np.lexsort(expected.reshape(len(expected), -1).T)
    assert np.array_equal(all_images[order], expected[ref_order])
    assert all_images.max() == 255 and all_images.min() == 0
    assert sorted(torch.cat([train_labels, test_labels]).tolist()) == sorted(raw.target.tolist())
    assert torch.equal(
        DigitsDataModule(seed=0, resolution=8, border=0).load_split("test")[0], test
    )  # the split ignores seed

    dm32 = DigitsDataModule()
    dm32.setup()
    assert dm32.image_shape == (1, 32, 32) and dm32.train_set.images.shape == (898, 1, 32, 32)
    x, _ = dm32.on_after_batch_transfer(next(iter(dm32.test_dataloader())), 0)
    assert x.dtype == torch.float32 and x.min() >= -1.0 and x.max() <= 1.0
    # Fashion-MNIST's layout: 28×28 content in a black 2-pixel border (no border-pixel shortcut)
    border = torch.ones(32, 32, dtype=torch.bool)
    border[2:30, 2:30] = False
    assert dm32.train_set.images[:, 0, border].max() == 0 and dm32.train_set.images[:, 0, 2:30, 2:30].max() > 0
    full = DigitsDataModule(border=0)
    full.setup()
    assert full.train_set.images[:, 0, border].max() > 0
    with pytest.raises(ValueError, match="border=16 leaves no room for the digit at resolution=32"):
        DigitsDataModule(border=16)


def test_digits_without_sklearn_says_pip_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "sklearn.datasets", None)  # `from sklearn.datasets import ...` fails
    dm = DigitsDataModule()
    for step in (dm.prepare_data, lambda: dm.load_split("test")):
        with pytest.raises(DatasetNotFoundError, match="pip install scikit-learn"):
            step()


# --- the OOD data module -----------------------------------------------------------------------------
def test_far_protocol_fmnist_vs_digits(fmnist_root: Path) -> None:
    dm = OODDataModule(fmnist(fmnist_root, val_size=20), DigitsDataModule(), out_split="all", batch_size=64)
    dm.prepare_data()
    dm.setup("test")
    assert dm.image_shape == (1, 32, 32) and dm.num_classes == 10 and dm.normalization == "symmetric"
    assert len(dm.train_set) == 180 and len(dm.in_test_set) == 100 and len(dm.out_test_set) == 1797
    loaders = dm.test_dataloader()
    assert [len(loader.dataset) for loader in loaders] == [100, 1797]
    images, labels = dm.on_after_batch_transfer(next(iter(loaders[1])), 1)
    assert images.shape == (64, 1, 32, 32) and images.dtype == torch.float32
    torch.testing.assert_close(images, symmetric(dm.out_test_set.images[:64]))
    assert torch.equal(labels, dm.out_test_set.labels[:64])
    test_only = OODDataModule(fmnist(fmnist_root), DigitsDataModule())
    test_only.setup()
    assert len(test_only.out_test_set) == 899 and len(test_only.train_set) == 200


def test_near_protocol_restricts_and_remaps(fmnist_root: Path) -> None:
    dm = OODDataModule(fmnist(fmnist_root, train_fraction=0.5), in_classes=[3, 1])
    dm.setup()
    inner = dm.in_data
    assert dm.num_classes == 2 and dm.class_names == ("Dress", "Trouser")
    # the bank: in_data's (class-balanced 50%) training split, classes 3 and 1 only, remapped 3 → 0, 1 → 1
    assert len(inner.train_set) == 100 and len(dm.train_set) == 20
    original = inner.train_set.labels[torch.isin(inner.train_set.labels, torch.tensor([3, 1]))]
    assert dm.train_set.labels.tolist() == [0 if c == 3 else 1 for c in original.tolist()]
    assert len(dm.in_test_set) == 20 and set(dm.in_test_set.labels.tolist()) == {0, 1}
    assert len(dm.out_test_set) == 80 and not set(dm.out_test_set.labels.tolist()) & {1, 3}
    band = dm.in_test_set.images[dm.in_test_set.labels == 1][:, 0, 2:30, 2:30]  # class 1's bright band
    assert (band[:, 2:4] == 255).all()  # rows 2-3 (conftest.class_patterns)


def test_ood_datamodule_errors(fmnist_root: Path) -> None:
    with pytest.raises(ValueError, match=r"exactly one of out_data .* or in_classes"):
        OODDataModule(fmnist(fmnist_root))
    with pytest.raises(ValueError, match="exactly one"):
        OODDataModule(fmnist(fmnist_root), DigitsDataModule(), in_classes=[0])
    with pytest.raises(ValueError, match=r"in_classes \[10\] out of range.*0\.\.9"):
        OODDataModule(fmnist(fmnist_root), in_classes=[0, 10])
    with pytest.raises(ValueError, match="covers all 10 classes"):
        OODDataModule(fmnist(fmnist_root), in_classes=list(range(10)))
    with pytest.raises(ValueError, match="distinct"):
        OODDataModule(fmnist(fmnist_root), in_classes=[1, 1])
    with pytest.raises(ValueError, match="out_split applies to out_data"):
        OODDataModule(fmnist(fmnist_root), in_classes=[1], out_split="all")
    with pytest.raises(
        ValueError, match=r"\(1, 32, 32\) but DigitsDataModule serves \(1, 16, 16\).*resize: true.*resolution to 32"
    ):
        OODDataModule(fmnist(fmnist_root), DigitsDataModule(resolution=16))
    with pytest.raises(RuntimeError, match="setup"):
        OODDataModule(fmnist(fmnist_root), DigitsDataModule()).test_dataloader()


def test_resize_brings_ood_images_to_the_in_shape(
    fmnist_root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    dm = OODDataModule(fmnist(fmnist_root), DigitsDataModule(resolution=16), resize=True)
    dm.setup()
    assert dm.out_test_set.images.shape == (899, 1, 32, 32)

    files = write_cifar(tmp_path / "cifar", "cifar10", monkeypatch)

    def cifar() -> CIFAR10DataModule:
        return CIFAR10DataModule(data_dir=str(tmp_path / "cifar"))

    with pytest.raises(ValueError, match=r"\(1, 32, 32\) but CIFAR10DataModule serves \(3, 32, 32\): set resize: true"):
        OODDataModule(fmnist(fmnist_root), cifar())
    gray = OODDataModule(fmnist(fmnist_root), cifar(), resize=True)
    gray.setup()
    rgb = torch.from_numpy(files["test"][0]).float()
    luma = (0.299 * rgb[:, 0] + 0.587 * rgb[:, 1] + 0.114 * rgb[:, 2]).round()
    assert gray.out_test_set.images.shape == (6, 1, 32, 32)
    assert (gray.out_test_set.images[:, 0].float() - luma).abs().max() <= 1  # float rounding of the weights
    color = OODDataModule(cifar(), fmnist(fmnist_root), resize=True)
    color.setup()
    out = color.out_test_set.images
    assert out.shape == (100, 3, 32, 32) and torch.equal(out[:, 0], out[:, 2])
    assert color.image_shape == (3, 32, 32) and len(color.train_set) == 20


def test_to_channels_by_hand() -> None:
    rgb = torch.tensor([255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30], dtype=torch.uint8).view(4, 3, 1, 1)
    assert to_channels(rgb, 1).flatten().tolist() == [76, 150, 29, 18]  # 0.299·255, 0.587·255, 0.114·255, …
    gray = torch.tensor([7, 200], dtype=torch.uint8).view(2, 1, 1, 1)
    assert to_channels(gray, 3).flatten().tolist() == [7, 7, 7, 200, 200, 200]
    with pytest.raises(ValueError, match="2-channel"):
        to_channels(torch.zeros(1, 2, 1, 1, dtype=torch.uint8), 3)
