"""LightningModules: what is trained (generator, reference classifier, linear probe, PALM, EAR and its
baselines, multi-task SAC and meta-RL)."""

from palm_lightning.models.atari_finetune import AtariFinetune
from palm_lightning.models.atari_probe import AtariStateProbe
from palm_lightning.models.atari_state_supervised import AtariStateSupervised
from palm_lightning.models.classifier import ImageClassifier
from palm_lightning.models.ear import EAR
from palm_lightning.models.frozen_encoder import FrozenEncoder
from palm_lightning.models.knn_probe import KNNProbe
from palm_lightning.models.linear_probe import LinearProbe
from palm_lightning.models.maml_trpo import MAMLTRPO
from palm_lightning.models.multitask_sac import MultiTaskSAC
from palm_lightning.models.online_probe import OnlineKNNProbe
from palm_lightning.models.ood_detector import OODDetector
from palm_lightning.models.palm import PALM
from palm_lightning.models.palm_curl import PALMCURL
from palm_lightning.models.palm_inverse_dynamics import PALMInverseDynamics
from palm_lightning.models.palm_sac import PALMSAC
from palm_lightning.models.palm_stdim import PALMSTDIM
from palm_lightning.models.pearl import PEARL
from palm_lightning.models.sac_baselines import MHMTSAC, OHESAC
from palm_lightning.models.simsiam_images import SimSiamImages
from palm_lightning.models.stdim_frames import STDIMFrames
from palm_lightning.models.stylegan import ConditionalStyleGAN
from palm_lightning.models.supervised_encoder import SupervisedEncoder
from palm_lightning.models.vae_stylegan import VAEStyleGAN

__all__ = ["EAR", "MHMTSAC", "OHESAC", "PALM", "ConditionalStyleGAN", "ImageClassifier", "LinearProbe", "MultiTaskSAC"]
__all__ += ["PALMCURL", "PALMSAC", "SimSiamImages", "SupervisedEncoder", "VAEStyleGAN"]
__all__ += ["MAMLTRPO", "PALMSTDIM", "PEARL", "PALMInverseDynamics", "STDIMFrames"]
__all__ += ["FrozenEncoder", "KNNProbe", "OODDetector", "OnlineKNNProbe"]
__all__ += ["AtariFinetune", "AtariStateProbe", "AtariStateSupervised"]
