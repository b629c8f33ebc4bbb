"""The generator-quality tool: real rows, generator rows, and clear errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn

from palm_lightning.checkpoints import save_network
from palm_lightning.datamodules import FashionMNISTDataModule
from palm_lightning.datamodules.atari.frames import DEFAULT_GAMES
from palm_lightning.nn.classifier import ConvClassifier
from palm_lightning.nn.stylegan import StyleGANGenerator
from palm_lightning.tools import export, generator_quality

REPO = Path(__file__).resolve().parents[1]

GEN = dict(z_dim=8, w_dim=16, num_classes=10, img_resolution=32, channel_base=64, channel_max=16, mapping_layers=2)


class ReplayGenerator(nn.Module):
    """A 'perfect' generator: returns real test images of the requested class."""

    latent_dim = 4
    num_classes = 10
    image_shape = (1, 32, 32)

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        super().__init__()
        self.by_class = [images[labels == k] for k in range(10)]

    def forward(self, z: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        index = (z[:, 0].abs() * 1000).long()
        return torch.stack(
            [self.by_class[int(k)][int(i) % len(self.by_class[int(k)])] for k, i in zip(c, index, strict=True)]
        )


def trained_classifier(dm: FashionMNISTDataModule) -> ConvClassifier:
    torch.manual_seed(0)
    net = ConvClassifier(widths=(8, 8, 8), feature_dim=16, dropout=0.0)
    opt = torch.optim.Adam(net.parameters(), lr=1e-2)
    images, labels = dm.normalize(dm.train_set.images), dm.train_set.labels
    for _ in range(30):
        opt.zero_grad()
        nn.functional.cross_entropy(net(images), labels).backward()
        opt.step()
    return net.eval()


@pytest.fixture
def data_and_classifier(fmnist_root: Path) -> tuple[FashionMNISTDataModule, ConvClassifier]:
    """The tiny Fashion-MNIST, set up for fit and test, and a classifier trained on it."""
    dm = FashionMNISTDataModule(data_dir=str(fmnist_root))
    dm.setup("fit")
    dm.setup("test")
    return dm, trained_classifier(dm)


def test_real_and_perfect_generator_rows(data_and_classifier) -> None:
    dm, classifier = data_and_classifier
    perfect = ReplayGenerator(dm.normalize(dm.test_set.images), dm.test_set.labels)
    rows = generator_quality.evaluate(perfect, classifier, dm, num_samples=100, generator_name="replay")
    names = [r.name for r in rows]
    assert names == ["real test images", "real train images (reference)", "replay (ψ=1)"]
    real_test, _, replay = rows
    assert real_test.conditional_accuracy > 0.9  # the tiny data's classes are easy
    # replaying the test images is scored exactly like the test images themselves
    assert replay.conditional_accuracy == pytest.approx(real_test.conditional_accuracy, abs=0.02)
    assert replay.frechet_distance < 0.05 * max(rows[1].frechet_distance, 1e-3) + 1e-3
    # replay draws with replacement from 10 images per class: fewer distinct images, still varied
    assert real_test.diversity == pytest.approx(1.0) and 0.5 < replay.diversity < 1.2
    table = generator_quality.format_table(rows)
    assert table.count("\n") == 4 and "| replay (ψ=1) | 100 |" in table


def test_untrained_generator_scores_worse_than_real(data_and_classifier) -> None:
    dm, classifier = data_and_classifier
    torch.manual_seed(0)
    rows = generator_quality.evaluate(StyleGANGenerator(**GEN).eval(), classifier, dm, (1.0, 0.5), num_samples=100)
    assert len(rows) == 4
    assert rows[2].frechet_distance > rows[1].frechet_distance
    # truncation towards the class mean shrinks within-class variety
    assert rows[3].diversity < rows[2].diversity


def test_collapsed_generator_has_no_diversity(data_and_classifier) -> None:
    dm, classifier = data_and_classifier
    replay = ReplayGenerator(dm.normalize(dm.test_set.images), dm.test_set.labels)
    replay.by_class = [images[:1] for images in replay.by_class]  # one image per class, whatever z is
    rows = generator_quality.evaluate(replay, classifier, dm, num_samples=100)
    assert rows[2].diversity < 1e-6 and rows[2].conditional_accuracy > 0.5


def test_pixel_nearest_neighbour_check_tells_copies_novel_and_off_manifold(data_and_classifier) -> None:
    dm, classifier = data_and_classifier
    copies = ReplayGenerator(dm.normalize(dm.train_set.images), dm.train_set.labels)
    unseen = ReplayGenerator(dm.normalize(dm.test_set.images), dm.test_set.labels)
    torch.manual_seed(0)
    noise = ReplayGenerator(torch.rand(dm.test_set.images.shape) * 2 - 1, dm.test_set.labels)
    ratios = {}
    for name, g in (("copies", copies), ("unseen", unseen), ("noise", noise)):
        rows = generator_quality.evaluate(g, classifier, dm, num_samples=60, pixel_nn=60)
        assert rows[0].pixel_nn_ratio == 1.0 and rows[1].pixel_nn is None  # train vs itself: skipped
        ratios[name] = rows[2].pixel_nn_ratio
    assert ratios["copies"] == pytest.approx(0.0, abs=1e-3)
    assert 0.5 < ratios["unseen"] < 1.5
    assert ratios["noise"] > 2.0
    assert "÷ test's" in generator_quality.format_table(rows)


def test_pixel_variety_sees_one_image_per_class(data_and_classifier) -> None:
    dm, classifier = data_and_classifier
    unseen = ReplayGenerator(dm.normalize(dm.test_set.images), dm.test_set.labels)
    one_each = ReplayGenerator(dm.normalize(dm.test_set.images), dm.test_set.labels)
    one_each.by_class = [images[:1] for images in one_each.by_class]  # z changes nothing
    varied = generator_quality.evaluate(unseen, classifier, dm, num_samples=60, pixel_nn=60)[2]
    collapsed = generator_quality.evaluate(one_each, classifier, dm, num_samples=60, pixel_nn=60)[2]
    assert varied.pixel_variety_ratio is not None and 0.7 < varied.pixel_variety_ratio < 1.3
    assert collapsed.pixel_variety_ratio == pytest.approx(0.0, abs=1e-6)


def test_nearest_train_distance_stays_within_class() -> None:
    train = torch.tensor([[0.0, 0.0], [10.0, 10.0]])
    queries = torch.tensor([[9.0, 9.0], [1.0, 1.0]])
    # the nearest image overall is the other class's; the distance is to the same class's
    d = generator_quality.nearest_train_distance(queries, torch.tensor([0, 1]), train, torch.tensor([0, 1]))
    assert d.tolist() == pytest.approx([9.0, 9.0])  # RMS over 2 pixels of (9, 9)


def test_shape_mismatch_is_named(fmnist_root: Path) -> None:
    dm = FashionMNISTDataModule(data_dir=str(fmnist_root))
    g = StyleGANGenerator(**{**GEN, "img_resolution": 16}).eval()
    with pytest.raises(ValueError, match=r"\(1, 16, 16\) images but the data are \(1, 32, 32\)"):
        generator_quality.evaluate(g, ConvClassifier(), dm)


def test_command_line(fmnist_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    dm = FashionMNISTDataModule(data_dir=str(fmnist_root))
    dm.setup("fit")
    g_path = save_network(StyleGANGenerator(**GEN), tmp_path / "g.pt", "generator")
    c_path = save_network(trained_classifier(dm), tmp_path / "c.pt", "classifier")
    code = generator_quality.main(
        ["--generator", str(g_path), "--classifier", str(c_path), "--data-dir", str(fmnist_root), "--num-samples", "50"]
    )
    out = capsys.readouterr().out
    assert code == 0 and "real test images" in out and "g.pt (ψ=1)" in out
    # a missing file: exit code 2 and one line naming it, no traceback
    code = generator_quality.main(["--generator", str(tmp_path / "nope.pt"), "--classifier", str(c_path)])
    err = capsys.readouterr().err
    assert code == 2 and "nope.pt: the file does not exist" in err and "Traceback" not in err


def test_export_tool_half(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    src = save_network(StyleGANGenerator(**GEN), tmp_path / "g.pt", "generator")
    assert export.main(["--checkpoint", str(src), "--out", str(tmp_path / "g16.pt"), "--half"]) == 0
    state = torch.load(tmp_path / "g16.pt", weights_only=True)["state_dict"]
    assert {v.dtype for v in state.values() if v.is_floating_point()} == {torch.float16}
    assert export.main(["--checkpoint", str(tmp_path / "missing.ckpt"), "--out", str(tmp_path / "x.pt")]) == 2
    assert "missing.ckpt" in capsys.readouterr().err


ATARI_TINY = dict(games=["Pong", "Breakout"], frames_per_game=200, max_episode_steps=40, min_episode_length=0)


def test_another_dataset_from_a_config_data_block(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    """``--data`` scores against any ImageDataModule a config names: here two Atari games at 64×64."""
    pytest.importorskip("ale_py")
    recipe = yaml.safe_load((REPO / "configs/classifier/atari.yaml").read_text())
    games = recipe["data"]["init_args"].get("games", DEFAULT_GAMES)
    assert recipe["model"]["init_args"]["num_classes"] == len(games)
    recipe["data"]["init_args"].update(ATARI_TINY)
    config = tmp_path / "atari.yaml"
    config.write_text(yaml.safe_dump(recipe))
    torch.manual_seed(0)
    g_path = save_network(
        StyleGANGenerator(**{**GEN, "num_classes": 2, "img_resolution": 64}), tmp_path / "g.pt", "generator"
    )
    c_path = save_network(
        ConvClassifier(num_classes=2, widths=(4, 4, 4), feature_dim=8), tmp_path / "c.pt", "classifier"
    )
    common = ["--generator", str(g_path), "--data", str(config), "--data-dir", str(tmp_path / "data")]
    assert generator_quality.main([*common, "--classifier", str(c_path), "--num-samples", "20"]) == 0
    out = capsys.readouterr().out
    assert "| real test images |" in out and "g.pt (ψ=1) | 20 |" in out

    # the shipped classifier is Fashion-MNIST's: --data without --classifier is refused up front
    with pytest.raises(SystemExit):
        generator_quality.main(common)
    assert "needs --classifier" in capsys.readouterr().err
    # a classifier of another dataset: named, exit code 2
    fmnist_classifier = save_network(ConvClassifier(widths=(4, 4, 4), feature_dim=8), tmp_path / "c10.pt", "classifier")
    assert generator_quality.main([*common, "--classifier", str(fmnist_classifier)]) == 2
    assert "tells 10 classes apart, the data have 2" in capsys.readouterr().err


@pytest.mark.parametrize(
    "text, message",
    [
        ("trainer: {}\n", "has no data block with a class_path"),
        ("data: {class_path: palm_lightning.nn.classifier.ConvClassifier}\n", "is not a subclass of ImageDataModule"),
        ("data: {class_path: no_such_pkg.Data}\n", "'no_such_pkg.Data': cannot import module 'no_such_pkg'"),
        (
            "data: {class_path: palm_lightning.datamodules.FashionMNISTDataModule, init_args: {colour: red}}\n",
            "init_args {'colour': 'red'} do not fit",
        ),
    ],
)
def test_a_bad_data_config_is_named(tmp_path: Path, text: str, message: str) -> None:
    config = tmp_path / "data.yaml"
    config.write_text(text)
    with pytest.raises(generator_quality.DataConfigError, match=re.escape(message)):
        generator_quality.datamodule_from_config(config)
