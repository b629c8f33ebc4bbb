"""The weights shipped inside the package: present, small, safe to load, and still good."""

from __future__ import annotations

import pytest
import torch

import palm_lightning
from palm_lightning.checkpoints import CheckpointError, packaged
from palm_lightning.generators import resolve_generator
from palm_lightning.nn.protocols import check_generator
from palm_lightning.tools.generator_quality import classify, sample_balanced


def test_shipped_files_are_small_and_load_with_weights_only() -> None:
    for name in (*palm_lightning.SHIPPED_GENERATORS.values(), palm_lightning.SHIPPED_CLASSIFIER):
        path = packaged(name)
        assert path.stat().st_size <= 10 * 2**20
        torch.load(path, map_location="cpu", weights_only=True)  # raises on anything executable


@pytest.mark.parametrize("name", sorted(palm_lightning.SHIPPED_GENERATORS))
def test_shipped_generators_follow_the_protocol_and_load_by_name(name: str) -> None:
    g = palm_lightning.load_shipped_generator(name)
    check_generator(g)
    assert (g.latent_dim, g.num_classes, tuple(g.image_shape)) == (64, 10, (1, 32, 32))
    by_name = resolve_generator(name)  # what `generator: <name>` in a config gives
    z, c = torch.randn(2, 64), torch.tensor([0, 9])
    assert torch.equal(by_name(z, c), g(z, c))


def test_default_generator_is_what_none_gives_and_unknown_names_are_listed() -> None:
    z, c = torch.randn(2, 64), torch.tensor([1, 2])
    default = palm_lightning.load_shipped_generator(palm_lightning.DEFAULT_GENERATOR)
    assert torch.equal(resolve_generator(None)(z, c), default(z, c))
    with pytest.raises(CheckpointError, match="fmnist_stylegan"):
        palm_lightning.load_shipped_generator("fmnist_nonexistent")


def test_shipped_generator_is_class_conditional() -> None:
    """Regression guard: the shipped classifier recognises the class the shipped generator was
    asked for (README reports the full 10k-sample measurement)."""
    g = palm_lightning.load_shipped_generator()
    classifier = palm_lightning.load_shipped_classifier()
    images, labels = sample_balanced(g, 500, seed=1)
    preds, _ = classify(classifier, images)
    assert (preds == labels).float().mean() >= 0.85
