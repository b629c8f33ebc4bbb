"""HopperVel: hop at a target forward velocity (EAR: 10 training velocities 0.2…2 m/s)."""

from __future__ import annotations

import numpy as np
from gymnasium.envs.mujoco.hopper_v5 import HopperEnv

from palm_lightning.envs.locomotion.base import VelocityTaskMixin, draw_adapt_targets


class HopperVelEnv(VelocityTaskMixin, HopperEnv):
    """Reward ``-|v_x - v| - 1e-3‖a‖² + 1.05``; gymnasium Hopper's healthy rules terminate (and,
    as in gymnasium v5, the survive bonus is 0 on the unhealthy, terminal step)."""

    # rounded so that 0.6 reads 0.6, not 0.6000000000000001
    train_targets = tuple(round(float(v), 10) for v in np.linspace(0.2, 2.0, 10))
    adapt_targets = draw_adapt_targets(0.0, 1.9, 3, decimals=2)
    num_train_tasks = len(train_targets)
    num_adapt_tasks = len(adapt_targets)
    ctrl_cost_weight = 1e-3
    survive_bonus = 1.05
