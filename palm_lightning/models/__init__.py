"""LightningModules: what is trained (generator, reference classifier, …)."""

from palm_lightning.models.classifier import ImageClassifier
from palm_lightning.models.stylegan import ConditionalStyleGAN

__all__ = ["ConditionalStyleGAN", "ImageClassifier"]
