"""Representation baselines on static data: SimSiam and supervised training on real images, ST-DIM on Atari frames."""

from palm_lightning.models.baselines.simsiam_images import SimSiamImages
from palm_lightning.models.baselines.stdim_frames import STDIMFrames
from palm_lightning.models.baselines.supervised_encoder import SupervisedEncoder

__all__ = ["STDIMFrames", "SimSiamImages", "SupervisedEncoder"]
