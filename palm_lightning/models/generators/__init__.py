"""What makes PALM's environments: conditional generators (StyleGAN2, VAE-StyleGAN) and the classifier
that scores them."""

from palm_lightning.models.generators.classifier import ImageClassifier
from palm_lightning.models.generators.stylegan import ConditionalStyleGAN
from palm_lightning.models.generators.vae_stylegan import VAEStyleGAN

__all__ = ["ConditionalStyleGAN", "ImageClassifier", "VAEStyleGAN"]
