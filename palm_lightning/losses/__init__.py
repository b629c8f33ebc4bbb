"""Objectives as plain functions (unit-tested alone): SimSiam, CURL, ST-DIM, APT's particle reward, DDPG, SAC."""

from palm_lightning.losses.apt import RunningMean, particle_reward
from palm_lightning.losses.curl import bilinear_logits, curl_loss
from palm_lightning.losses.ddpg import actor_loss, critic_loss, td_target
from palm_lightning.losses.simsiam import negative_cosine, output_std, simsiam_loss
from palm_lightning.losses.stdim import cell_infonce, stdim_loss

__all__ = [
    "RunningMean",
    "actor_loss",
    "bilinear_logits",
    "cell_infonce",
    "critic_loss",
    "curl_loss",
    "negative_cosine",
    "output_std",
    "particle_reward",
    "simsiam_loss",
    "stdim_loss",
    "td_target",
]
