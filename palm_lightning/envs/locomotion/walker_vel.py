"""WalkerVel: walk at a target forward velocity (same targets as HopperVel)."""

from __future__ import annotations

from gymnasium.envs.mujoco.walker2d_v5 import Walker2dEnv

from palm_lightning.envs.locomotion.base import VelocityTaskMixin
from palm_lightning.envs.locomotion.hopper_vel import HopperVelEnv


class WalkerVelEnv(VelocityTaskMixin, Walker2dEnv):
    """Reward ``-|v_x - v| - 1e-3‖a‖² + 1``; terminates unless ``0.8 < z < 2`` and
    ``-1 < angle < 1`` (gymnasium Walker2d v5's healthy rule; survive bonus 0 on that step)."""

    train_targets = HopperVelEnv.train_targets
    adapt_targets = HopperVelEnv.adapt_targets
    num_train_tasks = len(train_targets)
    num_adapt_tasks = len(adapt_targets)
    ctrl_cost_weight = 1e-3
    survive_bonus = 1.0
