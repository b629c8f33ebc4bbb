"""Every multi-task family by its short name: locomotion (MuJoCo, EAR's) and manipulation
(Meta-World), so that the experience stream, the batched environments and the EAR tools take any
of them from ``family`` alone.

A family class answers, without building an environment: ``num_train_tasks``,
``num_adapt_tasks``, ``task_name(task, split)``, ``kinds`` and ``describe(target, kind)`` (a custom
target's name, or a ``ValueError`` where the family takes none); its environments take
``task`` and ``split`` and switch with ``env.unwrapped.set_task``.
"""

from __future__ import annotations

from typing import Any

import gymnasium

from palm_lightning.envs import locomotion, manipulation

FAMILIES: dict[str, Any] = {**locomotion.FAMILIES, **manipulation.FAMILIES}
"""Short family name → class (:class:`~palm_lightning.envs.locomotion.MultiTaskMixin` or
:class:`~palm_lightning.envs.manipulation.MetaWorldTaskEnv` subclass)."""


def family_class(family: str) -> Any:
    """The class of ``family``; ``ValueError`` listing the known names otherwise."""
    if family not in FAMILIES:
        raise ValueError(f"unknown task family {family!r}; known: {sorted(FAMILIES)}")
    return FAMILIES[family]


def num_tasks(family: str, split: str = "train") -> int:
    cls = family_class(family)
    return int(cls.num_train_tasks if split == "train" else cls.num_adapt_tasks)


def make_task_env(family: str, task: int = 0, split: str = "train", **kwargs: Any) -> gymnasium.Env:
    """``gymnasium.make`` of one task of any family, with the family's time limit."""
    if family in manipulation.FAMILIES:
        return manipulation.make_task_env(family, task, split=split, **kwargs)
    family_class(family)
    return locomotion.make_task_env(family, task, split=split, **kwargs)


__all__ = ["FAMILIES", "family_class", "make_task_env", "num_tasks"]
