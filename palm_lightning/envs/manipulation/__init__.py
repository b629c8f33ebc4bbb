"""Robot-manipulation task families on Meta-World (v3 environments), for EAR's multi-task stream.

EAR's paper reports a simple manipulation test (reaching goals with a robot arm); Meta-World is
the standard manipulation benchmark. Its environments, observations (39 numbers: hand position,
gripper opening, object poses, the previous frame of those, the goal), rewards (dense, in [0, 10])
and ``info["success"]`` are used as Meta-World ships them; episodes last 500 steps, its
benchmarks' length. Families, chosen like the locomotion ones (``data.init_args.family``):

- ``metaworld_reach`` (MetaWorldReach): ``reach-v3``, one task per goal position: 10 training and
  5 held-out goals (``split="adapt"``). ``metaworld_push`` (MetaWorldPush): the same on ``push-v3``.
  Goals come from Meta-World's own sampler, its ML1 benchmark's variant lists for ``seed=0``
  (training task ``k`` = ML1 training variant ``k``, held-out ``k`` = ML1 test variant ``k``); as
  in ML1, the goal is hidden from the observation; the object starts at Meta-World's default
  position in every task, so that nothing in the observation tells the tasks apart.
- ``metaworld_mt10`` (MetaWorldMT10): the ten skills of Meta-World's MT10, task ``k`` = skill
  ``k``, each with one fixed variant (the first for ``metaworld.MT10(seed=0)``); the goal is shown,
  as in MT10. No held-out tasks.

Our choices (Meta-World leaves them open or does otherwise): the goal sampler's seed (0), the 10 + 5
goals, the goal families' fixed object start (ML1 draws it with each goal), one fixed variant per
MT10 skill (Meta-World's MT10 draws a new one at every reset), and episodes that do not end at the
first success (Meta-World's evaluation ends them there; an episode's ``success`` here is whether
``info["success"]`` was reached at any step, which is the same count). The constructor's
``goal_observable`` overrides the benchmark's convention (shown on a goal family: the ablation in
which the observation tells the policy where to go).

Registered with a 500-step limit as ``palm_lightning/<Name>-v0``
(``gymnasium.make("palm_lightning/MetaWorldReach-v0", task=3)``); ``max_episode_steps`` shortens
the episodes (Meta-World's environments cannot run longer). Needs the ``metaworld`` package,
imported only when an environment is built:
``pip install -c constraints.txt -e ".[dev]" && pip install --no-deps metaworld==3.1.1``.

``info`` adds to Meta-World's keys: ``task``, ``goal``, the hand position ``hand_x``, ``hand_y``,
``hand_z`` (``obs[:3]``) and ``hand_to_goal``; ``env.unwrapped.set_task(task, split)`` switches task
between episodes, and ``MetaWorldReachEnv.goals("adapt")`` lists goal positions.
"""

from __future__ import annotations

from palm_lightning.envs import MANIPULATION_FAMILIES
from palm_lightning.envs.manipulation.base import EPISODE_STEPS, HAND_KEYS, MetaWorldTaskEnv
from palm_lightning.envs.manipulation.goals import (
    GOAL_SEED,
    MetaWorldGoalEnv,
    MetaWorldPushEnv,
    MetaWorldReachEnv,
    goal_tasks,
    ml1_tasks,
)
from palm_lightning.envs.manipulation.metaworld_import import (
    INSTALL_LINE,
    MetaWorldMissingError,
    import_metaworld,
    metaworld_available,
)
from palm_lightning.envs.manipulation.mt10 import MT10_SEED, MT10_SKILLS, MetaWorldMT10Env, mt10_tasks

_BY_CLASS_NAME = {cls.__name__: cls for cls in (MetaWorldReachEnv, MetaWorldPushEnv, MetaWorldMT10Env)}
FAMILIES: dict[str, type[MetaWorldTaskEnv]] = {
    family: _BY_CLASS_NAME[f"{name}Env"] for family, name in MANIPULATION_FAMILIES.items()
}
"""Short family name → class (named once, in :data:`palm_lightning.envs.MANIPULATION_FAMILIES`).
Build one task with :func:`palm_lightning.envs.families.make_task_env`."""


__all__ = [
    "EPISODE_STEPS",
    "FAMILIES",
    "GOAL_SEED",
    "HAND_KEYS",
    "INSTALL_LINE",
    "MT10_SEED",
    "MT10_SKILLS",
    "MetaWorldGoalEnv",
    "MetaWorldMT10Env",
    "MetaWorldMissingError",
    "MetaWorldPushEnv",
    "MetaWorldReachEnv",
    "MetaWorldTaskEnv",
    "goal_tasks",
    "import_metaworld",
    "metaworld_available",
    "ml1_tasks",
    "mt10_tasks",
]
