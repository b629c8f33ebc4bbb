"""AntDir: run in a target direction in the plane (EAR: 24 training directions, every 15°)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from gymnasium.envs.mujoco.ant_v5 import AntEnv

from palm_lightning.envs.locomotion.base import MultiTaskMixin, draw_adapt_targets


class AntDirEnv(MultiTaskMixin, AntEnv):
    """Reward ``v_xy·(cos θ, sin θ) - 0.5‖a‖² - 5e-4 Σ clip(cfrc_ext, -1, 1)² + 1``, with
    gymnasium Ant v5's own contact cost and termination (torso z outside [0.2, 1]; survive bonus
    0 on that step). Targets are angles in radians. The observation is gymnasium's v5 default,
    which includes the clipped contact forces (``include_cfrc_ext_in_observation=True``, 105
    dims), as the authors' gym Ant observation did."""

    train_targets = tuple(float(t) for t in np.deg2rad(np.arange(0, 360, 15)))
    adapt_targets = draw_adapt_targets(0.0, 2 * math.pi, 5, decimals=4)
    num_train_tasks = len(train_targets)
    num_adapt_tasks = len(adapt_targets)
    kinds = ("direction",)
    behaviour_key = "heading"
    ctrl_cost_weight = 0.5
    survive_bonus = 1.0

    @classmethod
    def describe(cls, target: float, kind: str) -> str:
        return f"theta={round(math.degrees(target), 1)}deg"

    @classmethod
    def check_target(cls, target: Any, kind: str) -> float:
        angle = super().check_target(target, kind)
        if abs(angle) > 2 * math.pi:
            raise ValueError(f"AntDirEnv: a custom direction is in radians (|θ| ≤ 2π), got {target!r}")
        return angle

    def task_terms(self, info: dict[str, Any]) -> dict[str, Any]:
        xy_velocity = np.array([info["x_velocity"], info["y_velocity"]], dtype=np.float64)
        along = float(xy_velocity @ np.array([math.cos(self.target), math.sin(self.target)]))
        return {
            "reward_forward": along,
            "velocity_along_target": along,
            "xy_velocity": xy_velocity,
            "heading": math.atan2(xy_velocity[1], xy_velocity[0]),
        }
