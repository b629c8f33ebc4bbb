"""The weights shipped inside the package: present, small, safe to load, and still good."""

from __future__ import annotations

import torch

import palm_lightning
from palm_lightning.checkpoints import packaged
from palm_lightning.nn.protocols import check_generator
from palm_lightning.tools.generator_quality import classify, sample_balanced


def test_shipped_files_are_small_and_load_with_weights_only() -> None:
    for name in (palm_lightning.SHIPPED_GENERATOR, palm_lightning.SHIPPED_CLASSIFIER):
        path = packaged(name)
        assert path.stat().st_size <= 10 * 2**20
        torch.load(path, map_location="cpu", weights_only=True)  # raises on anything executable


def test_shipped_generator_follows_the_protocol() -> None:
    g = palm_lightning.load_shipped_generator()
    check_generator(g)
    assert (g.latent_dim, g.num_classes, tuple(g.image_shape)) == (64, 10, (1, 32, 32))


def test_shipped_generator_is_class_conditional() -> None:
    """Regression guard: the shipped classifier recognises the class the shipped generator was
    asked for (README reports the full 10k-sample measurement)."""
    g = palm_lightning.load_shipped_generator()
    classifier = palm_lightning.load_shipped_classifier()
    images, labels = sample_balanced(g, 500, seed=1)
    preds, _ = classify(classifier, images)
    assert (preds == labels).float().mean() >= 0.85
