"""HalfCheetahRunJump: a mix of running (7 velocities) and jumping (3 height weights) tasks."""

from __future__ import annotations

from typing import Any

from gymnasium.envs.mujoco.half_cheetah_v5 import HalfCheetahEnv

from palm_lightning.envs.locomotion.base import Convention, MultiTaskMixin, Split


class HalfCheetahRunJumpEnv(MultiTaskMixin, HalfCheetahEnv):
    """Tasks 0–6 run at ``v = 1…7`` (reward ``-|v_x - v| - 0.1‖a‖²``); tasks 7–9 jump with weight
    ``w ∈ {1, 5, 10}`` (reward ``w·z - 0.1‖a‖²``); never terminates. ``z`` (``info["z_height"]``)
    is the root's ``rootz`` slide coordinate ``qpos[1]`` (the torso's height relative to its
    initial 0.7 m), the quantity the authors reward (their ``obs[0]``). No adapt split (the
    authors have none); a custom target needs ``kind="velocity"`` or ``kind="height"``."""

    train_targets = (1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 1.0, 5.0, 10.0)
    adapt_targets = ()
    num_train_tasks = len(train_targets)
    num_adapt_tasks = 0
    kinds = ("velocity", "height")
    ctrl_cost_weight = 0.1

    @classmethod
    def task_kinds(cls, split: Split = "train", convention: Convention = "ear") -> list[str]:
        n = len(cls.task_targets(split, convention))
        return (["velocity"] * 7 + ["height"] * 3)[:n]

    @classmethod
    def describe(cls, target: float, kind: str) -> str:
        return f"v={round(target, 3)}" if kind == "velocity" else f"w={round(target, 3)}"

    def task_terms(self, info: dict[str, Any]) -> dict[str, Any]:
        z = float(self.data.qpos[1])
        if self.task_kind == "height":
            return {"reward_forward": 0.0, "reward_height": self.target * z, "z_height": z}
        error = abs(float(info["x_velocity"]) - self.target)
        return {"reward_forward": -error, "reward_height": 0.0, "z_height": z, "velocity_error": error}
