"""Episodes of plain gymnasium environments as tensors, for the meta-RL baselines' adaptation
(PEARL's context, MAML's policy-gradient batches).

The policies act in ``[-1, 1]``; actions are clipped there and mapped onto the environment's
``Box`` bounds (the locomotion families' actions are already ``[-1, 1]``). Per-episode summaries
hold the return, the length and the per-step mean of ``velocity_error`` / ``x_velocity`` when the
environment's ``info`` reports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import gymnasium
import numpy as np
import torch
from torch import Tensor

INFO_KEYS = ("velocity_error", "x_velocity")
"""Per-step ``info`` scalars averaged over each episode when present."""


def _scale(action: np.ndarray, space: gymnasium.spaces.Space) -> np.ndarray:
    if not isinstance(space, gymnasium.spaces.Box):
        raise TypeError(f"meta-RL rollouts need a Box action space, got {type(space).__name__}")
    action = np.clip(action, -1.0, 1.0)
    return (space.low + (action + 1.0) * 0.5 * (space.high - space.low)).astype(space.dtype)


@dataclass
class Episodes:
    """``N`` episodes of at most ``T`` steps, time-major: ``obs``/``next_obs`` ``(T, N, O)``,
    ``action`` ``(T, N, A)`` (as the policy chose it, before clipping), ``reward`` ``(T, N)``,
    ``mask`` ``(T, N)`` (1 while the episode runs), and one summary per episode."""

    obs: Tensor
    action: Tensor
    reward: Tensor
    next_obs: Tensor
    mask: Tensor
    summaries: list[dict[str, float]]

    @property
    def steps(self) -> int:
        """Environment steps the episodes took."""
        return int(self.mask.sum())

    def transitions(self) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """The valid ``(obs, action, reward, next_obs)`` as flat rows."""
        keep = self.mask.bool()
        return self.obs[keep], self.action[keep], self.reward[keep], self.next_obs[keep]


def run_vector_episodes(
    env: gymnasium.vector.VectorEnv, act: Callable[[Tensor], Tensor], horizon: int, seed: int | None = None
) -> Episodes:
    """One episode in every sub-environment of ``env`` (at most ``horizon`` steps), acting with
    ``act(obs (N, O)) → actions (N, A)``; steps after an episode's end (autoreset) are masked."""
    obs_np, _ = env.reset(seed=seed)
    n = env.num_envs
    alive = np.ones(n, dtype=bool)
    rows: dict[str, list[Tensor]] = {k: [] for k in ("obs", "action", "reward", "next_obs", "mask")}
    returns, lengths = np.zeros(n), np.zeros(n)
    sums = {k: np.zeros(n) for k in INFO_KEYS}
    has: set[str] = set()
    for _ in range(horizon):
        obs = torch.as_tensor(obs_np, dtype=torch.float32)
        action = act(obs).detach().float().cpu()
        next_np, reward, terminated, truncated, info = env.step(_scale(action.numpy(), env.single_action_space))
        mask = alive.astype(np.float32)
        reward = np.asarray(reward, dtype=np.float64) * mask
        returns += reward
        lengths += mask
        for key in INFO_KEYS:
            if key in info:
                has.add(key)
                sums[key] += np.asarray(info[key], dtype=np.float64) * mask
        rows["obs"].append(obs)
        rows["action"].append(action)
        rows["reward"].append(torch.as_tensor(reward, dtype=torch.float32))
        rows["next_obs"].append(torch.as_tensor(next_np, dtype=torch.float32))
        rows["mask"].append(torch.as_tensor(mask))
        alive &= ~(np.asarray(terminated) | np.asarray(truncated))
        obs_np = next_np
        if not alive.any():
            break
    summaries = []
    for i in range(n):
        summary = {"return": float(returns[i]), "length": float(lengths[i])}
        for key in has:
            summary[key] = float(sums[key][i] / max(lengths[i], 1.0))
        summaries.append(summary)
    stacked = {k: torch.stack(v) for k, v in rows.items()}
    return Episodes(summaries=summaries, **stacked)


def run_episode(
    env: gymnasium.Env, act: Callable[[Tensor], Tensor], horizon: int = 1000, seed: int | None = None
) -> Episodes:
    """One episode of a single environment (``N = 1``), at most ``horizon`` steps."""
    vector = _SingleAsVector(env)
    return run_vector_episodes(vector, act, horizon, seed)  # type: ignore[arg-type]  # duck-typed VectorEnv


class _SingleAsVector:
    """The few ``VectorEnv`` members :func:`run_vector_episodes` uses, over one environment
    (without autoreset: a finished episode ends the loop, since ``N = 1``)."""

    num_envs = 1

    def __init__(self, env: gymnasium.Env) -> None:
        self.env = env
        self.single_action_space = env.action_space

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict]:
        obs, info = self.env.reset(seed=seed)
        return np.asarray(obs)[None], info

    def step(self, action: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict]:
        obs, reward, terminated, truncated, info = self.env.step(action[0])
        batched = {k: np.asarray([v]) for k, v in info.items() if np.isscalar(v)}
        return np.asarray(obs)[None], np.asarray([reward]), np.asarray([terminated]), np.asarray([truncated]), batched
