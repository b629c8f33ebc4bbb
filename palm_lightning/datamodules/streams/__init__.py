"""Experience streams fed by an agent: the replay, the latent-manifold stream (PALM), multi-task and meta-RL streams."""

from palm_lightning.datamodules.streams.experience import ExperienceDataModule, ExperienceStream
from palm_lightning.datamodules.streams.latent_manifold import LatentManifoldDataModule
from palm_lightning.datamodules.streams.meta_tasks import MetaTaskDataModule
from palm_lightning.datamodules.streams.multitask import MultiTaskDataModule
from palm_lightning.datamodules.streams.pearl import PEARLDataModule
from palm_lightning.datamodules.streams.replay import ReplayBuffer

__all__ = ["ExperienceDataModule", "ExperienceStream", "LatentManifoldDataModule", "MetaTaskDataModule"]
__all__ += ["MultiTaskDataModule", "PEARLDataModule", "ReplayBuffer"]
