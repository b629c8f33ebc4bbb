"""LightningModules: what is trained (generator, reference classifier, linear probe, …)."""

from palm_lightning.models.classifier import ImageClassifier
from palm_lightning.models.linear_probe import LinearProbe
from palm_lightning.models.palm import PALM
from palm_lightning.models.stylegan import ConditionalStyleGAN

__all__ = ["PALM", "ConditionalStyleGAN", "ImageClassifier", "LinearProbe"]
