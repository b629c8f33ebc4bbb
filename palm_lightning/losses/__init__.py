"""Objectives as plain functions (unit-tested alone): SimSiam, APT's particle reward, DDPG."""

from palm_lightning.losses.apt import RunningMean, particle_reward
from palm_lightning.losses.ddpg import actor_loss, critic_loss, soft_update
from palm_lightning.losses.simsiam import negative_cosine, simsiam_loss

__all__ = [
    "RunningMean",
    "actor_loss",
    "critic_loss",
    "negative_cosine",
    "particle_reward",
    "simsiam_loss",
    "soft_update",
]
