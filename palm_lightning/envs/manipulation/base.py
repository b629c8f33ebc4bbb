"""One Meta-World task at a time, with the task bookkeeping of the locomotion families.

:class:`MetaWorldTaskEnv` is a gymnasium environment that owns one Meta-World v3 environment
(``metaworld.ALL_V3_ENVIRONMENTS[name]``) with one of Meta-World's own ``Task`` objects set on it.
Observation, reward, termination and ``info`` are Meta-World's as it ships them; ``step`` only adds
keys to ``info`` (the task, the hand position ``obs[:3]`` and its distance to the goal). A family
subclass says which ``Task`` each task index is (:meth:`metaworld_tasks`), class-level like the
locomotion families' target lists, so samplers and the experience stream can enumerate tasks
without building an environment; the ``Task`` lists themselves are drawn by Meta-World on first use.
"""

from __future__ import annotations

import numbers
import pickle
from typing import Any, ClassVar, Literal

import gymnasium
import mujoco
import numpy as np
import torch
from gymnasium import utils
from gymnasium.spaces import Box

from palm_lightning.envs import MANIPULATION_EPISODE_STEPS
from palm_lightning.envs.manipulation.metaworld_import import import_metaworld

Split = Literal["train", "adapt"]
SPLITS: tuple[str, ...] = ("train", "adapt")

EPISODE_STEPS = MANIPULATION_EPISODE_STEPS
"""500, Meta-World's ``max_path_length``: the episode length of its benchmarks (MT10, ML1, …); its
environments refuse to step past it (the registered time limit, set without importing Meta-World)."""

HAND_KEYS = ("hand_x", "hand_y", "hand_z")
"""``info`` keys of the hand (end-effector body) position, Meta-World's ``obs[:3]``."""


class MetaWorldTaskEnv(gymnasium.Env[np.ndarray, np.ndarray], utils.EzPickle):
    """A family of Meta-World tasks; environment on task ``task`` of split ``split``.

    Args:
        task: index into the split's task list.
        split: ``"train"`` or ``"adapt"`` (held-out tasks, where the family has them).
        goal_observable: show the goal position in the last 3 observation entries (``None``: the
            family's default, which follows the Meta-World benchmark it comes from: hidden in the
            ML benchmarks, shown in the MT ones).
        render_mode, camera_name, width, height: Meta-World's rendering arguments.

    ``info`` adds to Meta-World's keys (``success``, ``near_object``, ``obj_to_target``, …):
    ``task``, ``goal`` (3,), ``hand_x``/``hand_y``/``hand_z`` (``obs[:3]``, the hand body) and
    ``hand_to_goal`` (their distance to the goal). Meta-World's own success distance,
    ``obj_to_target``, is measured from the point between the fingertips (reach: about 4.5 cm below
    the hand body, so ``hand_to_goal`` stays near 4.5 cm at success) or from the object (push).
    """

    # gymnasium types metadata as an instance attribute: ClassVar would contradict it
    metadata = {"render_modes": ["human", "rgb_array", "depth_array"], "render_fps": 80}  # noqa: RUF012
    num_train_tasks: ClassVar[int]
    num_adapt_tasks: ClassVar[int]
    kinds: ClassVar[tuple[str, ...]] = ("goal",)
    goal_observable_default: ClassVar[bool] = False
    render_camera: ClassVar[str] = "topview"
    """The Meta-World camera the EAR tools film with (the locomotion families' is ``"track"``): the
    table from above, upright (Meta-World's ``"corner"`` view renders upside down)."""

    def __init__(
        self,
        task: int = 0,
        split: Split = "train",
        goal_observable: bool | None = None,
        render_mode: str | None = None,
        camera_name: str | None = None,
        width: int = 480,
        height: int = 480,
    ) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self._render_kwargs = {"render_mode": render_mode, "camera_name": camera_name, "width": width, "height": height}
        self.goal_observable = self.goal_observable_default if goal_observable is None else bool(goal_observable)
        self.raw: Any = None  # the Meta-World environment (SawyerXYZEnv) of the current task
        self.env_name = ""
        self._set_task(task, split)
        utils.EzPickle.__init__(
            self,
            task=task,
            split=split,
            goal_observable=goal_observable,
            render_mode=render_mode,
            camera_name=camera_name,
            width=width,
            height=height,
        )

    # ---------------------------------------------------------------- class-level task lists
    @classmethod
    def metaworld_tasks(cls, split: Split = "train") -> list[Any]:
        """Meta-World ``Task`` objects of the split, in task order (drawn once per process)."""
        raise NotImplementedError

    @classmethod
    def num_tasks(cls, split: Split = "train") -> int:
        check_split(split)
        return cls.num_train_tasks if split == "train" else cls.num_adapt_tasks

    @classmethod
    def check_task(cls, task: Any, split: Split = "train") -> int:
        """``task`` as an index of the split; ``ValueError`` naming the valid range otherwise."""
        check_split(split)
        n = cls.num_tasks(split)
        if n == 0:
            raise ValueError(f"{cls.__name__} has no {split!r} tasks")
        if isinstance(task, bool) or not isinstance(task, numbers.Integral) or not 0 <= int(task) < n:
            name = cls.__name__
            raise ValueError(f"{name}: task must be an integer in [0, {n - 1}] for split={split!r}, got {task!r}")
        return int(task)

    @classmethod
    def task_name(cls, task: int, split: Split = "train") -> str:
        """Short name for logs (TensorBoard tags), known without Meta-World."""
        raise NotImplementedError

    @classmethod
    def describe(cls, target: float, kind: str) -> str:
        """Refuses custom targets: a manipulation task is one of Meta-World's, chosen by index."""
        held_out = (
            f"a held-out one with --task K, K in [0, {cls.num_adapt_tasks - 1}]"
            if cls.num_adapt_tasks
            else "this family has no held-out tasks"
        )
        raise ValueError(
            f"{cls.__name__} takes no custom target: its tasks are Meta-World's own, chosen by index ({held_out})"
        )

    @classmethod
    def goals(cls, split: Split = "train") -> np.ndarray:
        """The goal position of every task of the split, ``(num_tasks, 3)`` (where Meta-World puts
        its ``_target_pos`` after a reset on that task)."""
        key = (cls, split)
        if key not in _GOALS:
            _GOALS[key] = _goals(cls, split)
        return _GOALS[key].copy()

    # ---------------------------------------------------------------- the instance's task
    def set_task(self, task: int = 0, split: Split = "train") -> None:
        """Switch task; takes effect at once, so call it between episodes (then ``reset``)."""
        self._set_task(task, split)
        self._ezpickle_kwargs.update(task=task, split=split)

    def _set_task(self, task: int, split: Split) -> None:
        task = self.check_task(task, split)
        mw_task = with_observability(self.metaworld_tasks(split)[task], self.goal_observable)
        if self.raw is None or mw_task.env_name != self.env_name:
            if self.raw is not None:
                self.raw.close()
            self.raw = make_raw(mw_task.env_name, **self._render_kwargs)
            self.env_name = mw_task.env_name
        self.raw.set_task(mw_task)
        self.task, self.split = task, split
        # Meta-World recomputes its observation bounds on set_task (the goal's, when shown), but its
        # observation_space attribute keeps the bounds of construction: use the recomputed ones.
        space = self.raw.sawyer_observation_space
        self.observation_space = Box(space.low, space.high, dtype=np.float64)
        self.action_space = self.raw.action_space

    def task_info(self) -> dict[str, Any]:
        return {"task": self.task, "task_kind": "goal"}

    # ---------------------------------------------------------------- gymnasium API
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        if seed is not None:  # Meta-World's reset ignores its seed argument: it is seeded apart
            self.raw.seed(int(seed))
        obs, info = self.raw.reset()
        return np.asarray(obs, dtype=np.float64), {**info, **self.task_info()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.raw.step(np.asarray(action, dtype=np.float32))
        info = dict(info)
        info["success"] = float(info.get("success", 0.0))
        info.update(self.task_info())
        goal = np.array(self.raw._target_pos, dtype=np.float64)
        info["goal"] = goal
        info.update({key: float(value) for key, value in zip(HAND_KEYS, obs[:3], strict=True)})
        info["hand_to_goal"] = float(np.linalg.norm(obs[:3] - goal))
        return np.asarray(obs, dtype=np.float64), float(reward), bool(terminated), bool(truncated), info

    def render(self) -> Any:
        return self.raw.render()

    def close(self) -> None:
        if self.raw is not None:
            self.raw.close()

    # ---------------------------------------------------------------- resuming
    def resume_state(self) -> dict[str, Any]:
        """Everything a resumed run needs to continue the current episode exactly: the physics,
        the mocap target that drives the hand, the step counter and the frame-stacked observation
        (tensors and plain values only: Lightning loads checkpoints with ``weights_only=True``)."""
        raw = self.raw
        return {
            "qpos": torch.from_numpy(raw.data.qpos.copy()),
            "qvel": torch.from_numpy(raw.data.qvel.copy()),
            "mocap_pos": torch.from_numpy(raw.data.mocap_pos.copy()),
            "mocap_quat": torch.from_numpy(raw.data.mocap_quat.copy()),
            "qacc_warmstart": torch.from_numpy(raw.data.qacc_warmstart.copy()),
            "path_length": int(raw.curr_path_length),
            "prev_obs": torch.from_numpy(np.asarray(raw._prev_obs, dtype=np.float64).copy()),
        }

    def load_resume_state(self, state: dict[str, Any]) -> None:
        """Restore :meth:`resume_state` (after a ``reset`` on the same task)."""
        raw = self.raw
        raw.set_state(np.asarray(state["qpos"]), np.asarray(state["qvel"]))
        raw.data.mocap_pos[:] = np.asarray(state["mocap_pos"])
        raw.data.mocap_quat[:] = np.asarray(state["mocap_quat"])
        raw.data.qacc_warmstart[:] = np.asarray(state["qacc_warmstart"])
        mujoco.mj_forward(raw.model, raw.data)
        raw.curr_path_length = int(state["path_length"])
        raw._prev_obs = np.asarray(state["prev_obs"], dtype=np.float64).copy()


def check_split(split: Any) -> None:
    if not isinstance(split, str) or split not in SPLITS:
        raise ValueError(f"split must be one of {list(SPLITS)}, got {split!r}")


def make_raw(env_name: str, **kwargs: Any) -> Any:
    """A Meta-World v3 environment by name (``"reach-v3"``), rendering kwargs passed on."""
    environments = import_metaworld().ALL_V3_ENVIRONMENTS
    if env_name not in environments:
        raise ValueError(f"{env_name!r} is not a Meta-World v3 environment; known: {sorted(environments)}")
    return environments[env_name](**kwargs)


def with_observability(task: Any, goal_observable: bool) -> Any:
    """The same Meta-World ``Task`` with the goal shown (``goal_observable``) or hidden."""
    data = pickle.loads(task.data)  # a Task Meta-World built in this process
    if data.get("partially_observable") == (not goal_observable):
        return task
    data["partially_observable"] = not goal_observable
    return type(task)(env_name=task.env_name, data=pickle.dumps(data))


_GOALS: dict[tuple[type[MetaWorldTaskEnv], str], np.ndarray] = {}
"""Goal positions per family class and split, measured once per process."""


def _goals(cls: type[MetaWorldTaskEnv], split: Split) -> np.ndarray:
    goals = []
    raws: dict[str, Any] = {}
    for task in cls.metaworld_tasks(split):
        if task.env_name not in raws:
            raws[task.env_name] = make_raw(task.env_name)
        raw = raws[task.env_name]
        raw.set_task(task)
        raw.reset()
        goals.append(np.array(raw._target_pos, dtype=np.float64))
    for raw in raws.values():
        raw.close()
    return np.stack(goals) if goals else np.zeros((0, 3))
