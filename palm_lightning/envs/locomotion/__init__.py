"""The EAR paper's MuJoCo locomotion task families, as gymnasium environments.

Each family subclasses gymnasium's ``*-v5`` env (physics, observation, termination and info stay
gymnasium's) and replaces the forward reward with the task's. Registered with a 200-step limit as
``palm_lightning/<Name>-v0`` (``gymnasium.make("palm_lightning/HalfCheetahVel-v0", task=4)`` runs at
5 m/s); needs the ``mujoco`` extra.

Rewards per step (``a`` the action, ``v_x`` the root's forward velocity):

- ``halfcheetah_vel`` (HalfCheetahVel): 10 tasks, ``v = task + 1`` ∈ {1, …, 10} m/s;
  ``−|v_x − v| − 0.1‖a‖²``; never terminates.
- ``hopper_vel`` (HopperVel): 10 tasks, ``v`` ∈ ``linspace(0.2, 2, 10)``;
  ``−|v_x − v| − 1e-3‖a‖² + 1.05``; gymnasium Hopper's healthy rules terminate.
- ``walker_vel`` (WalkerVel): HopperVel's targets; ``−|v_x − v| − 1e-3‖a‖² + 1``; terminates
  unless ``0.8 < z < 2`` and ``−1 < angle < 1`` (gymnasium Walker2d's healthy rule).
- ``ant_dir`` (AntDir): 24 tasks, ``θ = 15°·task`` (targets in radians);
  ``v_xy·(cos θ, sin θ) − 0.5‖a‖² − 5e-4·Σclip(cfrc_ext, −1, 1)² + 1``; terminates when the torso
  z ∉ [0.2, 1]. Observation: gymnasium's v5 default, contact forces included (105 dims).
- ``halfcheetah_run_jump`` (HalfCheetahRunJump): tasks 0–6 run at ``v = task + 1`` (reward as
  HalfCheetahVel); tasks 7–9 jump with ``w`` ∈ {1, 5, 10}: ``w·z − 0.1‖a‖²`` with ``z`` the
  ``rootz`` coordinate ``qpos[1]`` (height relative to the initial 0.7 m); never terminates.

``v_x`` is gymnasium's ``info["x_velocity"]``, ``(x_after − x_before)/dt`` of the root (of the
torso for Ant, whose ``v_xy`` is likewise gymnasium's). The survive bonus is gymnasium v5's
``healthy_reward``: paid while healthy, so 0 on the terminal step (the authors pay it there too).

Held-out adaptation targets (``split="adapt"``; our choice: the authors re-draw them at random
in every run, we draw them once with ``numpy.random.default_rng(0)``, uniform, rounded):
HalfCheetahVel 3 in [0, 9.9]: (6.31, 2.67, 0.41); HopperVel and WalkerVel 3 in [0, 1.9]:
(1.21, 0.51, 0.08); AntDir 5 in [0, 2π): (4.0021, 1.6951, 0.2574, 0.1038, 5.1099) rad ≈ (229.3°,
97.1°, 14.8°, 5.9°, 292.8°); HalfCheetahRunJump has none.

Constructor: ``task`` (index into the split), ``split`` ("train" | "adapt"), ``target`` (a custom
target, overriding both: m/s, radians for AntDir, and for RunJump together with
``kind="velocity" | "height"``; ``info["task"]`` is then −1), ``convention`` ("ear" | "pearl"), and
gymnasium's kwargs (``render_mode``, …; its ``ctrl_cost_weight``/``healthy_reward`` override ours).
``convention="pearl"`` (our PEARL/garage compatibility option, not the default) sets the control
weight to 0.05 (PEARL's HalfCheetah ``0.5·1e-1``) in every family, and for HalfCheetahVel uses
PEARL's velocities (``np.random.seed(1337); uniform(0, 3, 130)``): train = its tasks 0–9, adapt =
its eval tasks 100–102. PEARL's own AntDir uses 0.5 and it has no Hopper/Walker velocity tasks, so
there "pearl" only means the 0.05 weight.

``info`` adds to gymnasium's keys (``x_velocity``, ``reward_ctrl``, …): ``target``, ``task``,
``task_kind``, the task's ``reward_forward`` (and ``reward_height`` for RunJump); the reward is the
sum of the ``reward_*`` terms. Velocity tasks add ``velocity_error`` = |v_x − v|; AntDir adds
``xy_velocity``, ``heading`` (atan2 of it) and ``velocity_along_target``; RunJump adds ``z_height``.
``env.unwrapped.set_task(task, split)`` switches task between episodes.
"""

from __future__ import annotations

from palm_lightning.envs import LOCOMOTION_FAMILIES
from palm_lightning.envs.locomotion.ant_dir import AntDirEnv
from palm_lightning.envs.locomotion.base import ADAPT_SEED, PEARL_CTRL_COST_WEIGHT, MultiTaskMixin
from palm_lightning.envs.locomotion.half_cheetah_run_jump import HalfCheetahRunJumpEnv
from palm_lightning.envs.locomotion.half_cheetah_vel import HalfCheetahVelEnv
from palm_lightning.envs.locomotion.hopper_vel import HopperVelEnv
from palm_lightning.envs.locomotion.walker_vel import WalkerVelEnv

_BY_CLASS_NAME = {
    cls.__name__: cls for cls in (AntDirEnv, HalfCheetahRunJumpEnv, HalfCheetahVelEnv, HopperVelEnv, WalkerVelEnv)
}
FAMILIES: dict[str, type[MultiTaskMixin]] = {
    family: _BY_CLASS_NAME[f"{name}Env"] for family, name in LOCOMOTION_FAMILIES.items()
}
"""Short family name → class (named once, in :data:`palm_lightning.envs.LOCOMOTION_FAMILIES`).
Build one task with :func:`palm_lightning.envs.families.make_task_env`."""


__all__ = [
    "ADAPT_SEED",
    "FAMILIES",
    "PEARL_CTRL_COST_WEIGHT",
    "AntDirEnv",
    "HalfCheetahRunJumpEnv",
    "HalfCheetahVelEnv",
    "HopperVelEnv",
    "MultiTaskMixin",
    "WalkerVelEnv",
]
