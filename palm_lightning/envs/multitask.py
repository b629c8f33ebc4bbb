"""Many gymnasium environments of one task family, each on its own task, stepped as one batch.

This is the batched-torch face of the task families (locomotion and manipulation,
:mod:`palm_lightning.envs.families`), the same interface the
experience stream uses for PALM's latent environment (``num_envs``, ``obs_shape``,
``action_dim``, ``reset(mask)``, ``step(action)``, ``state_dict``): tensors in, tensors out.
Environments are stepped one after another in this process, like gymnasium's ``SyncVectorEnv``
(MuJoCo steps take microseconds; worker processes would cost more than they save at these sizes).

Unlike a gymnasium ``VectorEnv`` there is no autoreset: the caller resets finished environments
with ``reset(mask)``, so the last observation of every episode is seen and stored exactly.

Per-episode statistics are kept per environment: return, length, the mean of the behaviour
measures in ``info`` (velocity, its error, height, heading), whether ``info["success"]`` was
reached at any step (families that report it, e.g. Meta-World's) and the last value of the
end-of-episode measures (the hand's position and distance to the goal); finished episodes are
queued in :attr:`finished` for whoever wants to log them.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from gymnasium.spaces import Box
from torch import Tensor

from palm_lightning.envs.families import FAMILIES, make_task_env

SUMMARY_KEYS = ("x_velocity", "velocity_error", "z_height", "velocity_along_target")
"""Per-step ``info`` scalars averaged over each episode (when the family reports them)."""
SUCCESS_KEY = "success"
"""Per-step ``info`` flag; an episode's ``success`` is 1 when it was reached at any step (Meta-World's
evaluation ends an episode at its first success and counts it)."""
FINAL_KEYS = ("hand_x", "hand_y", "hand_z", "hand_to_goal", "obj_to_target")
"""Per-step ``info`` scalars whose last value in an episode is summarised as ``final_<key>``."""


class MultiTaskVectorEnv:
    """``len(tasks)`` environments of ``family``; environment ``i`` runs task ``tasks[i]``.

    Args:
        family: a task family name (``palm_lightning.envs.families.FAMILIES``).
        tasks: the task index of every environment (repeat an index for several copies).
        split: ``"train"`` or ``"adapt"`` (held-out tasks).
        seed: environment ``i`` is seeded ``seed + i`` at its first reset.
        device: where observations, rewards and flags are returned.
        env_kwargs: forwarded to every environment's constructor (e.g. ``convention``,
            ``render_mode``).
    """

    def __init__(
        self,
        family: str,
        tasks: Sequence[int],
        split: str = "train",
        seed: int = 0,
        device: torch.device | str = "cpu",
        env_kwargs: dict[str, Any] | None = None,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown task family {family!r}; known: {sorted(FAMILIES)}")
        if len(tasks) == 0:
            raise ValueError("tasks is empty: give the task index of every environment")
        self.family = family
        self.split = split
        self.tasks = [int(t) for t in tasks]
        self.device = torch.device(device)
        self.envs = [make_task_env(family, t, split=split, **(env_kwargs or {})) for t in self.tasks]
        space, observation_space = self.envs[0].action_space, self.envs[0].observation_space
        assert isinstance(space, Box) and isinstance(observation_space, Box)  # every family's spaces
        self.obs_shape = tuple(observation_space.shape)
        self.action_dim = int(space.shape[0])
        self._low = torch.as_tensor(space.low, dtype=torch.float32)
        self._high = torch.as_tensor(space.high, dtype=torch.float32)
        self.task_ids = torch.tensor(self.tasks, dtype=torch.long, device=self.device)
        self.num_envs = len(self.envs)
        self._seed = seed
        self._seeded = False
        self._obs = np.zeros((self.num_envs, *self.obs_shape), dtype=np.float32)
        self._reset_stats(range(self.num_envs))
        self.finished: list[dict[str, float]] = []
        # which behaviour measures each environment's info carries: per environment, because the
        # tasks of one family can differ (Run-Jump's jumping tasks have no velocity error)
        self._has: dict[int, dict[str, bool]] = {}

    # --- statistics -----------------------------------------------------------------------
    def _reset_stats(self, envs: Sequence[int] | range) -> None:
        if not hasattr(self, "_return"):
            n = self.num_envs
            self._return = np.zeros(n)
            self._length = np.zeros(n, dtype=np.int64)
            self._sums = {k: np.zeros(n) for k in SUMMARY_KEYS}
            self._xy = np.zeros((n, 2))
            self._success = np.zeros(n)
            self._final = {k: np.zeros(n) for k in FINAL_KEYS}
        for i in envs:
            self._return[i] = 0.0
            self._length[i] = 0
            for v in self._sums.values():
                v[i] = 0.0
            self._xy[i] = 0.0
            self._success[i] = 0.0
            for v in self._final.values():
                v[i] = math.nan

    def episode_summary(self, i: int) -> dict[str, float]:
        """Return, length and per-step means of the behaviour measures of environment ``i``'s
        current (or just finished) episode; ``heading`` is the direction of the mean planar
        velocity (Ant), in radians; ``success`` (1 or 0: reached at any step) and ``final_<key>``
        (the last step's value) where the family reports them."""
        length = max(int(self._length[i]), 1)
        out = {"task": float(self.tasks[i]), "return": float(self._return[i]), "length": float(self._length[i])}
        has = self._has.get(i, {})
        for key, total in self._sums.items():
            if has.get(key):
                out[key] = float(total[i]) / length
        if has.get("xy_velocity"):
            vx, vy = self._xy[i] / length
            out["heading"] = math.atan2(vy, vx)
        if has.get(SUCCESS_KEY):
            out[SUCCESS_KEY] = float(self._success[i])
        for key, last in self._final.items():
            if has.get(key):
                out[f"final_{key}"] = float(last[i])
        return out

    def episode_lengths(self) -> Tensor:
        """Steps taken so far in every environment's current episode (0 right after a reset)."""
        return torch.as_tensor(self._length.copy(), device=self.device)

    # --- stepping -------------------------------------------------------------------------
    def reset(self, mask: Tensor | None = None, seed: int | None = None) -> tuple[Tensor, dict[str, Any]]:
        """Reset every environment (or those where ``mask`` is true); returns all observations."""
        which = range(self.num_envs) if mask is None else mask.nonzero().squeeze(1).tolist()
        if seed is not None:
            self._seed, self._seeded = seed, False
        for i in which:
            obs, _ = self.envs[i].reset(seed=None if self._seeded else self._seed + i)
            self._obs[i] = obs
        if mask is None:
            self._seeded = True
        self._reset_stats(which)
        return torch.as_tensor(self._obs, device=self.device).clone(), {}

    def step(
        self, action: Tensor, active: Tensor | None = None
    ) -> tuple[Tensor, Tensor, Tensor, Tensor, dict[str, Any]]:
        """Step every environment (or the ``active`` ones) with actions in ``[-1, 1]``.

        Returns observations, rewards, terminated and truncated flags ``(num_envs, …)``; inactive
        environments report their last observation, reward 0 and no flags.
        """
        if action.shape != (self.num_envs, self.action_dim):
            raise ValueError(f"action must have shape ({self.num_envs}, {self.action_dim}), got {tuple(action.shape)}")
        scaled = (self._low + (action.detach().float().cpu().clamp(-1, 1) + 1) * 0.5 * (self._high - self._low)).numpy()
        reward = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        which = range(self.num_envs) if active is None else active.nonzero().squeeze(1).tolist()
        for i in which:
            obs, r, term, trunc, info = self.envs[i].step(scaled[i])
            self._obs[i] = obs
            reward[i], terminated[i], truncated[i] = r, term, trunc
            self._record(i, float(r), info)
            if term or trunc:
                self.finished.append(self.episode_summary(i))
        dev = self.device
        return (
            torch.as_tensor(self._obs, device=dev).clone(),
            torch.as_tensor(reward, device=dev),
            torch.as_tensor(terminated, device=dev),
            torch.as_tensor(truncated, device=dev),
            {},
        )

    def _record(self, i: int, reward: float, info: dict[str, Any]) -> None:
        has = self._has.get(i)
        if has is None:
            has = self._has[i] = {k: k in info for k in (*SUMMARY_KEYS, "xy_velocity", SUCCESS_KEY, *FINAL_KEYS)}
        self._return[i] += reward
        self._length[i] += 1
        for key, total in self._sums.items():
            if has[key]:
                total[i] += float(info[key])
        if has["xy_velocity"]:
            self._xy[i] += np.asarray(info["xy_velocity"], dtype=np.float64)
        if has[SUCCESS_KEY] and info[SUCCESS_KEY]:
            self._success[i] = 1.0
        for key, last in self._final.items():
            if has[key]:
                last[i] = float(info[key])

    def close(self) -> None:
        for env in self.envs:
            env.close()

    # --- checkpointing --------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Physics state (qpos, qvel; or the family's own ``resume_state()``, e.g. Meta-World's
        hand target), elapsed steps and random generators of every environment, so a resumed run
        continues its episodes exactly."""
        states = []
        for env in self.envs:
            inner: Any = env.unwrapped  # a family env (make_task_env)
            own = getattr(inner, "resume_state", None)
            if callable(own):
                physics = own()
            else:
                physics = {
                    "qpos": torch.from_numpy(inner.data.qpos.copy()),
                    "qvel": torch.from_numpy(inner.data.qvel.copy()),
                }
            states.append({**physics, "elapsed": _elapsed(env), "np_random": inner.np_random.bit_generator.state})
        # tensors and plain Python values only: Lightning loads checkpoints with weights_only=True
        return {
            "tasks": list(self.tasks),
            "envs": states,
            "obs": torch.from_numpy(self._obs.copy()),
            "seeded": self._seeded,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if list(state["tasks"]) != self.tasks:
            raise ValueError(f"saved environments run tasks {state['tasks']}, these run {self.tasks}")
        self.reset()  # initialises wrappers (order enforcing) before the physics is overwritten
        for env, saved in zip(self.envs, state["envs"], strict=True):
            inner: Any = env.unwrapped  # a family env (make_task_env)
            own = getattr(inner, "load_resume_state", None)
            if callable(own):
                own(saved)
            else:
                inner.set_state(np.asarray(saved["qpos"]), np.asarray(saved["qvel"]))
            inner.np_random.bit_generator.state = saved["np_random"]
            _set_elapsed(env, saved["elapsed"])
        self._obs[:] = np.asarray(state["obs"])
        self._seeded = bool(state["seeded"])


def _elapsed(env: Any) -> int | None:
    while env is not None:
        if hasattr(env, "_elapsed_steps"):
            return int(env._elapsed_steps)
        env = getattr(env, "env", None)
    return None


def _set_elapsed(env: Any, value: int | None) -> None:
    while env is not None and value is not None:
        if hasattr(env, "_elapsed_steps"):
            env._elapsed_steps = value
            return
        env = getattr(env, "env", None)


@torch.no_grad()
def run_episodes(
    env: MultiTaskVectorEnv, act: Callable[[Tensor], Tensor], seed: int | None = None
) -> list[dict[str, float]]:
    """One full episode in every environment of ``env`` under ``act(obs) → action``.

    Environments that finish early stop stepping while the others go on. Returns one
    :meth:`MultiTaskVectorEnv.episode_summary` per environment, in order.
    """
    obs, _ = env.reset(seed=seed)
    active = torch.ones(env.num_envs, dtype=torch.bool)
    summaries: list[dict[str, float] | None] = [None] * env.num_envs
    env.finished.clear()
    while active.any():
        obs, _, terminated, truncated, _ = env.step(act(obs), active=active.to(env.device))
        done = (terminated | truncated).cpu() & active
        for i in done.nonzero().squeeze(1).tolist():
            summaries[i] = env.episode_summary(i)
        active &= ~done
    env.finished.clear()
    return [s for s in summaries if s is not None]
