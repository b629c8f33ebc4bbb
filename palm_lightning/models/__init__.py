"""LightningModules, grouped by method: ``palm`` (PALM and its variants), ``ear`` (multi-task SAC: EAR,
OHE-SAC, MHMT-SAC), ``meta_rl`` (PEARL, MAML-TRPO), ``generators`` (what makes the environments),
``evaluation`` (probes and OOD on a frozen encoder), ``atari`` (downstream RL and state probing) and
``baselines`` (SimSiam, supervised, ST-DIM on static data). Every class is also importable from here."""

from palm_lightning.models.atari import AtariFinetune, AtariStateProbe, AtariStateSupervised
from palm_lightning.models.baselines import SimSiamImages, STDIMFrames, SupervisedEncoder
from palm_lightning.models.ear import EAR, MHMTSAC, OHESAC, MultiTaskSAC
from palm_lightning.models.evaluation import FrozenEncoder, KNNProbe, LinearProbe, OnlineKNNProbe, OODDetector
from palm_lightning.models.generators import ConditionalStyleGAN, ImageClassifier, VAEStyleGAN
from palm_lightning.models.meta_rl import MAMLTRPO, PEARL
from palm_lightning.models.palm import PALM, PALMCURL, PALMSAC, PALMSTDIM, PALMInverseDynamics

__all__ = ["EAR", "MHMTSAC", "OHESAC", "PALM", "ConditionalStyleGAN", "ImageClassifier", "LinearProbe", "MultiTaskSAC"]
__all__ += ["PALMCURL", "PALMSAC", "SimSiamImages", "SupervisedEncoder", "VAEStyleGAN"]
__all__ += ["MAMLTRPO", "PALMSTDIM", "PEARL", "PALMInverseDynamics", "STDIMFrames"]
__all__ += ["FrozenEncoder", "KNNProbe", "OODDetector", "OnlineKNNProbe"]
__all__ += ["AtariFinetune", "AtariStateProbe", "AtariStateSupervised"]
