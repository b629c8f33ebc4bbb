"""MT10: Meta-World's ten-skill multi-task benchmark, one task per skill.

Task ``k`` is skill ``MT10_SKILLS[k]`` (Meta-World's MT10 order) with a fixed variant: the first
of the skill's 50 variants (object and goal positions) in ``metaworld.MT10(seed=MT10_SEED)``.
Meta-World's own MT10 draws a new variant of each skill at every reset; one variant per skill is our
choice, so that a task id means one behaviour, as in EAR's task families. As in the MT benchmarks,
the goal position is part of the observation. There are no held-out tasks.
"""

from __future__ import annotations

import functools
from typing import Any, ClassVar

from palm_lightning.envs.manipulation.base import MetaWorldTaskEnv, Split, check_split
from palm_lightning.envs.manipulation.metaworld_import import import_metaworld

MT10_SEED = 0
"""Our choice: the seed of ``metaworld.MT10`` whose first variant of each skill is used."""

MT10_SKILLS: tuple[str, ...] = (
    "reach-v3",
    "push-v3",
    "pick-place-v3",
    "door-open-v3",
    "drawer-open-v3",
    "drawer-close-v3",
    "button-press-topdown-v3",
    "peg-insert-side-v3",
    "window-open-v3",
    "window-close-v3",
)
"""Meta-World's MT10 skills in its order (written out so that task names need no Meta-World)."""


@functools.cache
def mt10_tasks(seed: int = MT10_SEED) -> tuple[Any, ...]:
    """The first ``Task`` of every skill of ``metaworld.MT10(seed=seed)``, in skill order."""
    benchmark = import_metaworld().MT10(seed=seed)
    skills = tuple(benchmark.train_classes)
    if skills != MT10_SKILLS:
        raise RuntimeError(f"this metaworld's MT10 skills are {skills}, not {MT10_SKILLS}: install metaworld==3.1.1")
    return tuple(next(t for t in benchmark.train_tasks if t.env_name == skill) for skill in skills)


class MetaWorldMT10Env(MetaWorldTaskEnv):
    """The ten MT10 skills; task ``k`` is :data:`MT10_SKILLS` ``[k]``."""

    num_train_tasks = len(MT10_SKILLS)
    num_adapt_tasks = 0
    goal_observable_default = True
    seed_of_variants: ClassVar[int] = MT10_SEED

    @classmethod
    def metaworld_tasks(cls, split: Split = "train") -> list[Any]:
        check_split(split)
        return list(mt10_tasks(cls.seed_of_variants)) if split == "train" else []

    @classmethod
    def task_name(cls, task: int, split: Split = "train") -> str:
        """The skill, e.g. ``"door-open-v3"``."""
        return MT10_SKILLS[cls.check_task(task, split)]
