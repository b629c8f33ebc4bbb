"""Network files: round trips, and one clear error for every way a checkpoint can be wrong."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from palm_lightning.checkpoints import CheckpointError, describe, load_network, packaged, save_network
from palm_lightning.nn.classifier import ConvClassifier
from palm_lightning.nn.stylegan import StyleGANGenerator

SMALL = dict(z_dim=8, w_dim=16, num_classes=3, img_resolution=16, channel_base=64, channel_max=16, mapping_layers=2)


@pytest.fixture
def generator() -> StyleGANGenerator:
    torch.manual_seed(0)
    return StyleGANGenerator(**SMALL).eval()


def test_round_trip_reproduces_outputs(generator: StyleGANGenerator, tmp_path: Path) -> None:
    path = save_network(generator, tmp_path / "g.pt", kind="generator", meta={"note": "test"})
    loaded = load_network(path, kind="generator", expect={"latent_dim": 8, "image_shape": (1, 16, 16)})
    z, c = torch.randn(3, 8), torch.tensor([0, 1, 2])
    torch.testing.assert_close(loaded(z, c), generator(z, c))
    # only tensors and plain containers inside: loads with weights_only=True
    assert torch.load(path, weights_only=True)["meta"] == {"note": "test"}


def test_half_precision_file_is_smaller_and_close(generator: StyleGANGenerator, tmp_path: Path) -> None:
    full = save_network(generator, tmp_path / "g32.pt", kind="generator")
    half = save_network(generator, tmp_path / "g16.pt", kind="generator", half=True)
    assert half.stat().st_size < 0.75 * full.stat().st_size  # tiny net: headers weigh a lot
    loaded = load_network(half, kind="generator")
    assert next(loaded.parameters()).dtype == torch.float32
    z, c = torch.randn(3, 8), torch.tensor([0, 1, 2])
    torch.testing.assert_close(loaded(z, c), generator(z, c), atol=2e-2, rtol=0)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"no checkpoint at .*nothing\.pt: the file does not exist"):
        load_network(tmp_path / "nothing.pt")


def test_corrupt_file(generator: StyleGANGenerator, tmp_path: Path) -> None:
    path = save_network(generator, tmp_path / "g.pt", kind="generator")
    path.write_bytes(path.read_bytes()[:200])  # truncated download
    with pytest.raises(CheckpointError, match=r"cannot read .*g\.pt: it is corrupt"):
        load_network(path)


def test_wrong_kind(tmp_path: Path) -> None:
    path = save_network(ConvClassifier(), tmp_path / "c.pt", kind="classifier")
    with pytest.raises(CheckpointError, match="holds a 'classifier' network, but a 'generator' was expected"):
        load_network(path, kind="generator")


def test_shape_mismatch_names_the_tensor(generator: StyleGANGenerator, tmp_path: Path) -> None:
    description = describe(generator, "generator")
    description["config"]["w_dim"] = 32  # weights were trained with w_dim 16
    torch.save(description, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError, match=r"bad\.pt: weights do not fit .*shape mismatch"):
        load_network(tmp_path / "bad.pt")


def test_expected_attribute_mismatch(generator: StyleGANGenerator, tmp_path: Path) -> None:
    path = save_network(generator, tmp_path / "g.pt", kind="generator")
    with pytest.raises(CheckpointError, match="latent_dim is 8, expected 64"):
        load_network(path, expect={"latent_dim": 64})


def test_foreign_class_is_not_imported(generator: StyleGANGenerator, tmp_path: Path) -> None:
    description = describe(generator, "generator")
    description["class_path"] = "os.system"
    torch.save(description, tmp_path / "evil.pt")
    with pytest.raises(CheckpointError, match="refusing to import"):
        load_network(tmp_path / "evil.pt")


def test_not_a_network_file(tmp_path: Path) -> None:
    torch.save({"weights": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a palm_lightning network file"):
        load_network(tmp_path / "other.pt")


def test_packaged_missing_name() -> None:
    with pytest.raises(CheckpointError, match="missing"):
        packaged("no_such_weights.pt")
