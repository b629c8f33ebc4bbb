"""Task bookkeeping shared by the locomotion families (see :mod:`palm_lightning.envs.locomotion`).

:class:`MultiTaskMixin` goes *before* a gymnasium MuJoCo v5 env in the bases. Its ``step`` runs
gymnasium's own ``step`` (physics, observation, termination, info, human rendering) and then
replaces the forward term with the task's; the returned reward is the sum of ``info["reward_*"]``,
as in gymnasium.
"""

from __future__ import annotations

import math
import numbers
from typing import TYPE_CHECKING, Any, ClassVar, Literal

import numpy as np
from gymnasium import utils

if TYPE_CHECKING:  # the mixin goes before a gymnasium MuJoCo env: type-checked as one, a plain class at run time
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    class _MujocoEnvBase(MujocoEnv, utils.EzPickle): ...

else:
    _MujocoEnvBase = object

Split = Literal["train", "adapt"]
Convention = Literal["ear", "pearl"]
SPLITS: tuple[str, ...] = ("train", "adapt")
CONVENTIONS: tuple[str, ...] = ("ear", "pearl")

ADAPT_SEED = 0
"""Our choice: the authors re-draw held-out targets at random in every run; we draw them once, with
``numpy.random.default_rng(ADAPT_SEED)``, so that adaptation results are comparable across runs."""

PEARL_CTRL_COST_WEIGHT = 0.05
"""PEARL's (and garage's) HalfCheetah control-cost weight, ``0.5 * 1e-1``."""

BEHAVIOUR_KEYS: dict[str, str] = {"velocity": "x_velocity", "direction": "heading", "height": "z_height"}
"""Task kind → the ``info`` key that describes the achieved behaviour."""


def draw_adapt_targets(low: float, high: float, n: int, decimals: int) -> tuple[float, ...]:
    """``n`` held-out targets, uniform in ``[low, high)``, rounded so they can be quoted exactly."""
    draws = np.random.default_rng(ADAPT_SEED).uniform(low, high, size=n)
    return tuple(float(x) for x in np.round(draws, decimals))


def check_choice(name: str, value: Any, options: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in options:
        raise ValueError(f"{name} must be one of {list(options)}, got {value!r}")


class MultiTaskMixin(_MujocoEnvBase):
    """One task at a time out of a family's class-level task lists (enumerable without building
    an env, e.g. by samplers), switchable between episodes with :meth:`set_task`."""

    train_targets: ClassVar[tuple[float, ...]]
    adapt_targets: ClassVar[tuple[float, ...]]
    num_train_tasks: ClassVar[int]
    num_adapt_tasks: ClassVar[int]
    kinds: ClassVar[tuple[str, ...]] = ("velocity",)
    """Task kinds of the family; a custom target needs ``kind`` only when there are several."""
    behaviour_key: str = "x_velocity"
    """Class level: the family's (first task's) key; an instance's follows its current task."""
    ctrl_cost_weight: ClassVar[float]
    """EAR's weight; ``convention="pearl"`` uses :data:`PEARL_CTRL_COST_WEIGHT`."""
    survive_bonus: ClassVar[float | None] = None
    """Passed to gymnasium as ``healthy_reward`` (families with a healthy notion only)."""

    def __init__(
        self,
        task: int = 0,
        split: Split = "train",
        target: float | None = None,
        convention: Convention = "ear",
        kind: str | None = None,
        **kwargs: Any,
    ) -> None:
        check_choice("convention", convention, CONVENTIONS)
        self.convention = convention
        self._set_task(task, split, target, kind)
        gym_kwargs = dict(kwargs)  # gymnasium's own kwargs win over ours (explicit beats default)
        gym_kwargs.setdefault(
            "ctrl_cost_weight", PEARL_CTRL_COST_WEIGHT if convention == "pearl" else self.ctrl_cost_weight
        )
        if self.survive_bonus is not None:
            gym_kwargs.setdefault("healthy_reward", self.survive_bonus)
        super().__init__(**gym_kwargs)
        # gymnasium's env recorded its own positional args for pickling/copying; record ours instead
        utils.EzPickle.__init__(self, task=task, split=split, target=target, convention=convention, kind=kind, **kwargs)

    # ---------------------------------------------------------------- class-level task lists
    @classmethod
    def task_targets(cls, split: Split = "train", convention: Convention = "ear") -> list[float]:
        """The split's targets in task order (m/s, radians, or height weights)."""
        check_choice("split", split, SPLITS)
        check_choice("convention", convention, CONVENTIONS)
        return list(cls._targets(split, convention))

    @classmethod
    def _targets(cls, split: str, convention: str) -> tuple[float, ...]:
        return cls.train_targets if split == "train" else cls.adapt_targets

    @classmethod
    def task_kinds(cls, split: Split = "train", convention: Convention = "ear") -> list[str]:
        return [cls.kinds[0]] * len(cls.task_targets(split, convention))

    @classmethod
    def target_of(cls, task: int, split: Split = "train", convention: Convention = "ear") -> float:
        """The target of task ``task``; ``ValueError`` naming the valid range otherwise."""
        targets = cls.task_targets(split, convention)
        if not targets:
            raise ValueError(f"{cls.__name__} has no {split!r} tasks")
        if isinstance(task, bool) or not isinstance(task, numbers.Integral) or not 0 <= task < len(targets):
            raise ValueError(
                f"{cls.__name__}: task must be an integer in [0, {len(targets) - 1}] for split={split!r}, got {task!r}"
            )
        return targets[int(task)]

    @classmethod
    def describe(cls, target: float, kind: str) -> str:
        return f"v={round(target, 3)}"

    @classmethod
    def task_name(cls, task: int, split: Split = "train", convention: Convention = "ear") -> str:
        """Human-readable, e.g. ``"v=5.0"``."""
        target = cls.target_of(task, split, convention)
        return cls.describe(target, cls.task_kinds(split, convention)[task])

    @classmethod
    def behaviour_key_for(cls, task: int, split: Split = "train") -> str:
        cls.target_of(task, split)
        return BEHAVIOUR_KEYS[cls.task_kinds(split)[task]]

    @classmethod
    def check_target(cls, target: Any, kind: str) -> float:
        """A custom target must be a finite real number (subclasses narrow it)."""
        if isinstance(target, bool) or not isinstance(target, numbers.Real) or not math.isfinite(target):
            raise ValueError(f"{cls.__name__}: a custom {kind} target must be a finite number, got {target!r}")
        return float(target)

    # ---------------------------------------------------------------- the instance's task
    def set_task(
        self, task: int = 0, split: Split = "train", target: float | None = None, kind: str | None = None
    ) -> None:
        """Switch task; takes effect at once, so call it between episodes (before ``reset``)."""
        self._set_task(task, split, target, kind)
        self._ezpickle_kwargs.update(task=task, split=split, target=target, kind=kind)

    def _set_task(self, task: int, split: Split, target: float | None, kind: str | None) -> None:
        check_choice("split", split, SPLITS)
        if target is None:
            if kind is not None:
                raise ValueError(f"kind={kind!r} only goes with a custom target")
            self.target = self.target_of(task, split, self.convention)
            self.task_kind = self.task_kinds(split, self.convention)[task]
            self.task = int(task)
        else:
            if kind is None and len(self.kinds) > 1:
                name = type(self).__name__
                raise ValueError(f"{name}: a custom target needs kind in {list(self.kinds)}")
            self.task_kind = self.kinds[0] if kind is None else kind
            check_choice("kind", self.task_kind, self.kinds)
            self.target = self.check_target(target, self.task_kind)
            self.task = -1  # a custom target is no task of the lists
        self.split = split
        self.behaviour_key = BEHAVIOUR_KEYS[self.task_kind]

    def task_info(self) -> dict[str, Any]:
        return {"target": self.target, "task": self.task, "task_kind": self.task_kind}

    # ---------------------------------------------------------------- gymnasium hooks
    def task_terms(self, info: dict[str, Any]) -> dict[str, Any]:
        """Reward terms (``reward_*``) and extra info of the current task, from gymnasium's info."""
        raise NotImplementedError

    # The reward is a float; gymnasium's MujocoEnv.step annotates np.float64, hence Any.
    def step(self, action: np.ndarray) -> tuple[np.ndarray, Any, bool, bool, dict[str, Any]]:
        observation, _, terminated, truncated, info = super().step(action)
        info.update(self.task_terms(info))
        info.update(self.task_info())
        reward = sum(float(value) for key, value in info.items() if key.startswith("reward_"))
        return observation, reward, terminated, truncated, info

    def _get_reset_info(self) -> dict[str, Any]:
        return {**super()._get_reset_info(), **self.task_info()}


class VelocityTaskMixin(MultiTaskMixin):
    """Track a forward velocity: ``reward_forward = -|v_x - target|``; gymnasium supplies ``v_x``
    (``(x_after - x_before) / dt`` of the root), ``reward_ctrl`` and, where healthy is defined,
    ``reward_survive`` and termination."""

    def task_terms(self, info: dict[str, Any]) -> dict[str, Any]:
        error = abs(float(info["x_velocity"]) - self.target)
        return {"reward_forward": -error, "velocity_error": error}
