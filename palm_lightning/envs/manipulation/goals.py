"""Goal families: one Meta-World environment, one task per goal position (EAR's reaching test).

The goals are Meta-World's own: the ``Task`` lists of its ML1 benchmark for that environment,
drawn by ``metaworld.ML1(env_name, seed=GOAL_SEED)`` (50 training and 50 test variants, each an
object and a goal position). Training task ``k`` is ML1's training variant ``k``, held-out task
``k`` its test variant ``k``. As in ML1, the goal is hidden from the observation (its last 3 entries
are 0). Unlike ML1 (our choice, ``fixed_object``), the object starts at Meta-World's default
position in every task: ML1 draws it anew with each goal, and since the observation shows it, its
position would tell the tasks apart. Fixed, only the goal differs between tasks, as only the target
velocity differs in a velocity family: the task index, or EAR's task embedding, is all that tells
the policy where to go.
"""

from __future__ import annotations

import functools
import pickle
from typing import Any, ClassVar

import numpy as np

from palm_lightning.envs.manipulation.base import MetaWorldTaskEnv, Split, check_split, make_raw
from palm_lightning.envs.manipulation.metaworld_import import import_metaworld

GOAL_SEED = 0
"""Our choice: the seed of Meta-World's goal sampler (``metaworld.ML1(env_name, seed=GOAL_SEED)``),
fixed so that every run trains and adapts on the same goals."""


@functools.cache
def ml1_tasks(env_name: str, seed: int = GOAL_SEED) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    """Meta-World's ML1 training and test ``Task`` lists of ``env_name`` for ``seed`` (once per process)."""
    metaworld = import_metaworld()
    if env_name not in metaworld.ML1.ENV_NAMES:
        raise ValueError(f"{env_name!r} is not a Meta-World v3 environment; known: {sorted(metaworld.ML1.ENV_NAMES)}")
    benchmark = metaworld.ML1(env_name, seed=seed)
    return tuple(benchmark.train_tasks), tuple(benchmark.test_tasks)


MIN_OBJECT_TO_GOAL = 0.15
"""Meta-World's reach/push resets redraw a variant whose object lies closer than this (in the
plane) to the goal; a variant with a fixed object must keep that distance (else the redraw loops)."""


def with_object(task: Any, start: np.ndarray) -> Any:
    """The same Meta-World ``Task`` with its object starting at ``start`` (its goal unchanged)."""
    data = pickle.loads(task.data)  # a Task Meta-World built in this process
    rand_vec = np.array(data["rand_vec"], dtype=np.float64)
    if rand_vec.shape != (6,):
        raise ValueError(
            f"{task.env_name}: a fixed object needs variants of (object xyz, goal xyz), got {rand_vec.shape}; "
            "set fixed_object = False on the family"
        )
    rand_vec[:3] = start
    if np.linalg.norm(rand_vec[:2] - rand_vec[3:5]) < MIN_OBJECT_TO_GOAL:
        raise ValueError(f"{task.env_name}: a goal lies within {MIN_OBJECT_TO_GOAL} m of the fixed object start")
    data["rand_vec"] = rand_vec
    return type(task)(env_name=task.env_name, data=pickle.dumps(data))


@functools.cache
def goal_tasks(env_name: str, seed: int = GOAL_SEED, fixed_object: bool = True) -> tuple[tuple[Any, ...], ...]:
    """ML1's training and test ``Task`` lists of ``env_name``, the object moved to Meta-World's
    default start (``init_config["obj_init_pos"]``) where ``fixed_object``."""
    train, test = ml1_tasks(env_name, seed)
    if not fixed_object:
        return train, test
    raw = make_raw(env_name)
    start = np.asarray(raw.init_config["obj_init_pos"], dtype=np.float64)
    raw.close()
    return tuple(with_object(t, start) for t in train), tuple(with_object(t, start) for t in test)


class MetaWorldGoalEnv(MetaWorldTaskEnv):
    """Goal family on the Meta-World environment :attr:`env_name`: ``num_train_tasks`` training
    goals and ``num_adapt_tasks`` held-out goals (our choice: 10 and 5, out of ML1's 50 + 50).

    Subclass it with another ``env_name`` for another environment (``MetaWorldPushEnv``).
    """

    env_name_of_family: ClassVar[str] = "reach-v3"
    num_train_tasks = 10
    num_adapt_tasks = 5
    goal_seed: ClassVar[int] = GOAL_SEED
    fixed_object: ClassVar[bool] = True
    """Our choice: the object starts at Meta-World's default position in every task (see the module)."""

    @classmethod
    def metaworld_tasks(cls, split: Split = "train") -> list[Any]:
        check_split(split)
        train, test = goal_tasks(cls.env_name_of_family, cls.goal_seed, cls.fixed_object)
        return list(train[: cls.num_train_tasks] if split == "train" else test[: cls.num_adapt_tasks])

    @classmethod
    def task_name(cls, task: int, split: Split = "train") -> str:
        """``goal3`` (training) or ``heldout1`` (held out); the positions: :meth:`goals`."""
        task = cls.check_task(task, split)
        return f"goal{task}" if split == "train" else f"heldout{task}"


class MetaWorldReachEnv(MetaWorldGoalEnv):
    """``reach-v3``: move the gripper to the goal; success when the fingertips are within 5 cm."""

    env_name_of_family = "reach-v3"


class MetaWorldPushEnv(MetaWorldGoalEnv):
    """``push-v3``: push the puck to the goal; success when the puck is within 5 cm."""

    env_name_of_family = "push-v3"
