"""Every multi-task family by its short name: locomotion (MuJoCo, EAR's) and manipulation
(Meta-World), so that the experience stream, the batched environments and the EAR tools take any
of them from ``family`` alone.

A family class answers, without building an environment: ``num_train_tasks``,
``num_adapt_tasks``, ``task_name(task, split)``, ``kinds`` and ``describe(target, kind)`` (a custom
target's name, or a ``ValueError`` where the family takes none); its environments take
``task`` and ``split`` and switch with ``env.unwrapped.set_task``.

The names are written once, in :data:`palm_lightning.envs.LOCOMOTION_FAMILIES` and
:data:`~palm_lightning.envs.MANIPULATION_FAMILIES` (registration reads them without importing
MuJoCo or Meta-World); each subpackage maps them to its classes, and this module is the one lookup.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import gymnasium

from palm_lightning.envs import (
    LOCOMOTION_FAMILIES,
    MANIPULATION_EPISODE_STEPS,
    MANIPULATION_FAMILIES,
    locomotion,
    manipulation,
    register_envs,
    registered_id,
)

FAMILIES: dict[str, Any] = {**locomotion.FAMILIES, **manipulation.FAMILIES}
"""Short family name → class (:class:`~palm_lightning.envs.locomotion.MultiTaskMixin` or
:class:`~palm_lightning.envs.manipulation.MetaWorldTaskEnv` subclass)."""
_REGISTERED_NAMES = {**LOCOMOTION_FAMILIES, **MANIPULATION_FAMILIES}


def family_class(family: str, among: Mapping[str, Any] = FAMILIES) -> Any:
    """The class of ``family``; ``ValueError`` listing the known names otherwise. ``among`` narrows
    the choice for code that takes only some families (``locomotion.FAMILIES`` for PEARL/MAML)."""
    if family not in among:
        raise ValueError(f"unknown task family {family!r}; known: {sorted(among)}")
    return among[family]


def env_id(family: str) -> str:
    """``"halfcheetah_vel"`` → ``"palm_lightning/HalfCheetahVel-v0"``."""
    family_class(family)
    return registered_id(_REGISTERED_NAMES[family])


def num_tasks(family: str, split: str = "train") -> int:
    cls = family_class(family)
    return int(cls.num_train_tasks if split == "train" else cls.num_adapt_tasks)


def make_task_env(family: str, task: int = 0, split: str = "train", **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make`` of one task of any family, with the family's time limit (locomotion 200
    steps, Meta-World 500; ``max_episode_steps`` shortens a Meta-World episode, which cannot run
    longer)."""
    steps = kwargs.get("max_episode_steps")
    if family in MANIPULATION_FAMILIES and steps is not None and not 1 <= int(steps) <= MANIPULATION_EPISODE_STEPS:
        raise ValueError(
            f"max_episode_steps must be in [1, {MANIPULATION_EPISODE_STEPS}] (Meta-World's limit), got {steps}"
        )
    register_envs()
    return gymnasium.make(env_id(family), task=task, split=split, **kwargs)


__all__ = ["FAMILIES", "env_id", "family_class", "make_task_env", "num_tasks"]
