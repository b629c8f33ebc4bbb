"""The layout by method: every public class of a subpackage is also importable from the package above it,
as the same object, and the configs name classes by their subpackage."""

from __future__ import annotations

import importlib

import pytest

import palm_lightning.datamodules as datamodules
import palm_lightning.models as models

MODEL_PACKAGES = ("palm", "ear", "meta_rl", "generators", "evaluation", "atari", "baselines")
DATA_PACKAGES = ("images", "streams", "atari")


@pytest.mark.parametrize(
    "parent, name", [(models, n) for n in MODEL_PACKAGES] + [(datamodules, n) for n in DATA_PACKAGES]
)
def test_every_subpackage_class_is_importable_from_its_parent(parent, name):
    sub = importlib.import_module(f"{parent.__name__}.{name}")
    assert sub.__all__, name
    for cls in sub.__all__:
        assert cls in parent.__all__ and getattr(parent, cls) is getattr(sub, cls), f"{name}.{cls}"


def test_the_parents_export_nothing_that_no_subpackage_holds():
    held = {c for n in MODEL_PACKAGES for c in importlib.import_module(f"palm_lightning.models.{n}").__all__}
    assert set(models.__all__) == held
    held = {c for n in DATA_PACKAGES for c in importlib.import_module(f"palm_lightning.datamodules.{n}").__all__}
    assert set(datamodules.__all__) == held
