"""Exploration rewards chosen by ``class_path`` (APT, ICM, RND): see :mod:`palm_lightning.rewards.base`."""

from palm_lightning.rewards.apt import APT
from palm_lightning.rewards.base import ExplorationReward, RewardStep
from palm_lightning.rewards.icm import ICM
from palm_lightning.rewards.rnd import RND

__all__ = ["APT", "ICM", "RND", "ExplorationReward", "RewardStep"]
