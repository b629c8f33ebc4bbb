"""HalfCheetahVel: run at a target forward velocity (EAR: 10 training velocities 1…10 m/s)."""

from __future__ import annotations

import numpy as np
from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from palm_lightning.envs.locomotion.base import VelocityTaskMixin, draw_adapt_targets

_PEARL_DRAWS = np.random.RandomState(1337).uniform(0.0, 3.0, size=130)
"""PEARL's cheetah-vel tasks (``np.random.seed(1337); uniform(0, 3, 130)``: 100 train, 30 eval)."""


class HalfCheetahVelEnv(VelocityTaskMixin, HalfCheetahEnv):
    """Reward ``-|v_x - v| - 0.1‖a‖²``, never terminates. ``convention="pearl"``: control weight
    0.05 and PEARL's own velocities: its train tasks 0–9 and eval tasks 100–102 (in [0, 3))."""

    train_targets = tuple(float(v) for v in np.linspace(1.0, 10.0, 10))
    adapt_targets = draw_adapt_targets(0.0, 9.9, 3, decimals=2)
    pearl_train_targets = tuple(float(v) for v in _PEARL_DRAWS[:10])
    pearl_adapt_targets = tuple(float(v) for v in _PEARL_DRAWS[100:103])
    num_train_tasks = len(train_targets)
    num_adapt_tasks = len(adapt_targets)
    ctrl_cost_weight = 0.1

    @classmethod
    def _targets(cls, split: str, convention: str) -> tuple[float, ...]:
        if convention == "pearl":
            return cls.pearl_train_targets if split == "train" else cls.pearl_adapt_targets
        return super()._targets(split, convention)
