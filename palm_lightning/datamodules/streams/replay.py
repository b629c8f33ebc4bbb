"""A replay buffer of device tensors for N parallel environments, with n-step sampling.

Layout: one ring per environment, ``(capacity_per_env, num_envs, …)``. Each row is a *time step*
in DrQ-v2's sense: the observation reached, the action that led to it, the reward received on
arrival, the discount (0 after termination, 1 otherwise — truncation bootstraps) and a ``first``
flag. A reset writes a row with ``first=True`` (no action). Storing the final observation of an
episode as its own row, and the next episode's first observation as the next row, keeps every
transition exact without storing ``next_obs`` twice.

A transition sampled at row ``j`` of environment ``e`` (rows ``j+1 … j+n`` in the same episode)::

    obs      = obs[j]            action = action[j+1]
    reward   = Σ_k γ^k · Π_{m<k} d[j+1+m] · r[j+1+k]      (k = 0 … n−1)
    discount = γ^n · Π_k d[j+1+k]
    next_obs = obs[j+n]          frames = obs[j … j+n]   (the whole n-step window)
    actions  = action[j+1 … j+n] (every action of the window, with ``frames``)

Like DrQ-v2, the last n−1 steps of an episode are never the *start* of a transition (they appear
inside windows). Observations are stored as ``uint8``.

Observations are written and gathered through a view of each row as 8-byte words (when its size
allows): PyTorch's indexed copy moves one element per step, so a ``uint8`` Atari stack of 28 224
bytes moves in 3 528 steps as words instead of 28 224 as bytes, which brings the Atari stream
closer to a bare gymnasium vector env (benchmarks/atari.py compares the two).

Feature cache (:meth:`ReplayBuffer.cache_features`, off unless asked for): a learner whose
observations only ever reach it through a *fixed* function — a frozen encoder without augmentation
(:class:`~palm_lightning.models.AtariFinetune` with ``freeze_encoder``) — can have the buffer keep
``encode(obs)`` per slot. A slot is encoded the first time a batch draws it (the misses of a
batch in one call), kept until :meth:`add` overwrites the slot, and :meth:`sample` returns
``obs_features``/``next_obs_features`` beside the frames. Every slot is encoded at most once per
write, however often it is sampled (DrQ(ε) draws 32 × 2 frames per update and writes one new row
per update: each row is drawn 64 times on average over a run). It costs ``capacity × dim`` float32
(100 000 × 256: 102 MB, beside the frames' 2.8 GB) and is not checkpointed (loading a buffer
invalidates it).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

WORDS = ((8, torch.int64), (4, torch.int32), (2, torch.int16))
"""The widest word (bytes, dtype) whose size divides an observation row is what rows move as."""


def word_dtype(obs_shape: tuple[int, ...], dtype: torch.dtype) -> torch.dtype | None:
    """The integer dtype of the widest word dividing one observation's bytes (``None``: bytes)."""
    nbytes = math.prod(obs_shape) * torch.empty((), dtype=dtype).element_size()
    return next((d for size, d in WORDS if nbytes % size == 0 and size > dtype.itemsize), None)


class ReplayBuffer:
    """Bounded FIFO replay of ``capacity`` time steps in total, split evenly over ``num_envs``.

    Args:
        capacity: total time steps kept (oldest overwritten first).
        num_envs: parallel environments writing one row each per step (or a subset, by index).
        obs_shape: shape of one observation.
        action_shape: shape of one action: an int (a vector's size) or a tuple (``()`` for the index
            of a discrete action).
        device: where every tensor lives (the training device: sampling never leaves it).
        obs_dtype: ``torch.uint8`` for images, ``torch.float32`` for state vectors.
        action_dtype: ``torch.float32`` (continuous) or ``torch.long`` (discrete).
    """

    def __init__(
        self,
        capacity: int,
        num_envs: int,
        obs_shape: tuple[int, ...],
        action_shape: int | tuple[int, ...],
        device: torch.device | str = "cpu",
        obs_dtype: torch.dtype = torch.uint8,
        action_dtype: torch.dtype = torch.float32,
    ) -> None:
        if capacity < 2 * num_envs:
            raise ValueError(f"capacity {capacity} is too small for {num_envs} environments (need ≥ 2 rows each)")
        self.num_envs = num_envs
        self.size = capacity // num_envs  # rows per environment
        self.device = torch.device(device)
        rows = (self.size, num_envs)
        self.obs = torch.zeros(*rows, *obs_shape, dtype=obs_dtype, device=self.device)
        self.obs_shape = tuple(obs_shape)
        self._word = word_dtype(self.obs_shape, obs_dtype)
        # The same storage, one row of words per (row, env); obs is filled in place (copy_) when loaded.
        self._obs_words = self.obs if self._word is None else self.obs.view(*rows, -1).view(self._word)
        self._all_envs = torch.arange(num_envs, device=self.device)
        action_shape = (action_shape,) if isinstance(action_shape, int) else tuple(action_shape)
        self.action = torch.zeros(*rows, *action_shape, dtype=action_dtype, device=self.device)
        self.reward = torch.zeros(*rows, device=self.device)
        self.discount = torch.ones(*rows, device=self.device)
        self.first = torch.ones(*rows, dtype=torch.bool, device=self.device)
        self.ptr = torch.zeros(num_envs, dtype=torch.long, device=self.device)  # next row to write
        self.count = torch.zeros(num_envs, dtype=torch.long, device=self.device)  # rows written (≤ size)
        self._encode: Callable[[Tensor], Tensor] | None = None  # the feature cache, if any (cache_features)
        self.features: Tensor | None = None  # (size, num_envs, dim): encode(obs) of each slot, where cached
        self.cached: Tensor | None = None  # (size, num_envs) bool: the slot's features are encode(its obs)

    @property
    def capacity(self) -> int:
        return self.size * self.num_envs

    def __len__(self) -> int:
        return int(self.count.sum())

    def nbytes(self) -> int:
        fields = (self.obs, self.action, self.reward, self.discount, self.first, self.features, self.cached)
        return sum(t.numel() * t.element_size() for t in fields if t is not None)

    # --- writing ----------------------------------------------------------------------------
    def add(
        self,
        obs: Tensor,
        action: Tensor | None = None,
        reward: Tensor | None = None,
        terminated: Tensor | None = None,
        first: bool = False,
        env_ids: Tensor | None = None,
    ) -> None:
        """Append one row for each environment in ``env_ids`` (all by default).

        ``first=True`` marks reset observations (``action``/``reward`` are then ignored).
        """
        env = self._all_envs if env_ids is None else env_ids.to(self.device)
        n = env.numel()
        if n == 0:
            return
        rows = self.ptr[env]
        self._obs_words[rows, env] = self._as_words(obs.to(self.device, self.obs.dtype))
        if first:
            self.action[rows, env] = 0
            self.reward[rows, env] = 0.0
            self.discount[rows, env] = 1.0
        else:
            if action is None or reward is None:
                raise ValueError("a non-first row needs the action and the reward")
            self.action[rows, env] = action.to(self.device, self.action.dtype)
            self.reward[rows, env] = reward.to(self.device, torch.float32)
            done = (
                torch.zeros(n, dtype=torch.bool, device=self.device)
                if terminated is None
                else terminated.to(self.device)
            )
            self.discount[rows, env] = (~done).float()
        self.first[rows, env] = first
        if self.cached is not None:
            self.cached[rows, env] = False  # new frames: their features are computed when first sampled
        if env_ids is None:  # every environment: in place, fewer small ops (the Atari stream's hot path)
            self.ptr.add_(1).remainder_(self.size)
            self.count.add_(1).clamp_(max=self.size)
        else:
            self.ptr[env] = (rows + 1) % self.size
            self.count[env] = (self.count[env] + 1).clamp(max=self.size)

    def _as_words(self, obs: Tensor) -> Tensor:
        """Observations ``(n, *obs_shape)`` as rows of words (see the module docstring)."""
        if self._word is None:
            return obs
        flat = obs.reshape(obs.shape[0], -1)
        if flat.stride(-1) != 1 or flat.storage_offset() % (self._word.itemsize // obs.element_size()):
            flat = flat.clone()  # a view must start on a word boundary
        return flat.view(self._word)

    def obs_at(self, rows: Tensor, env: Tensor) -> Tensor:
        """The observations at ``(rows, env)`` (index tensors of one shape ``S``): ``(*S, *obs_shape)``."""
        words = self._obs_words[rows, env]
        if self._word is None:
            return words
        return words.view(self.obs.dtype).view(*rows.shape, *self.obs_shape)

    # --- feature cache ----------------------------------------------------------------------
    def cache_features(self, encode: Callable[[Tensor], Tensor] | None, dim: int = 0) -> None:
        """Keep ``encode(obs)`` (``(n, *obs_shape)`` stored frames → ``(n, dim)`` float32, a pure
        function of the frames) per slot, and have :meth:`sample` return ``obs_features`` and
        ``next_obs_features`` (see the module docstring). Allocates the cache (``capacity × dim``
        float32), empty; ``encode=None`` drops it. ``encode`` runs under ``torch.no_grad()``."""
        self._encode = encode
        if encode is None:
            self.features = self.cached = None
            return
        if dim < 1:
            raise ValueError(f"the feature cache needs the features' size, got dim={dim}")
        rows = (self.size, self.num_envs)
        self.features = torch.zeros(*rows, dim, device=self.device)
        self.cached = torch.zeros(*rows, dtype=torch.bool, device=self.device)

    @torch.no_grad()
    def features_at(self, rows: Tensor, env: Tensor) -> Tensor:
        """The cached features of the slots ``(rows, env)`` (index tensors of one shape ``S``):
        ``(*S, dim)``; the slots not cached yet are encoded first, all in one ``encode`` call."""
        if self._encode is None or self.features is None or self.cached is None:
            raise RuntimeError("no feature cache: call cache_features first")
        features, cached = self.features.view(-1, self.features.shape[-1]), self.cached.view(-1)
        slots = (rows * self.num_envs + env).flatten()
        missing = slots[~cached[slots]].unique()
        if missing.numel() > 0:
            fresh = self._encode(self.obs_at(missing // self.num_envs, missing % self.num_envs))
            features[missing] = fresh.to(features.dtype)
            cached[missing] = True
        return features[slots].view(*rows.shape, features.shape[-1])

    # --- sampling ---------------------------------------------------------------------------
    def can_sample(self, nstep: int = 1) -> bool:
        return bool((self.count > nstep).any())

    def sample(
        self,
        batch_size: int,
        nstep: int = 1,
        gamma: float = 0.99,
        frames: bool = False,
        generator: torch.Generator | None = None,
        env_ids: Tensor | None = None,
        recent: int | None = None,
    ) -> dict[str, Tensor]:
        """A batch of ``batch_size`` n-step transitions, uniformly over valid start rows.

        ``env_ids`` ``(batch_size,)`` fixes the environment of every slot (e.g. an equal number
        per task, for balanced multi-task batches); by default environments are drawn uniformly
        among those that hold an n-step window. ``recent`` draws start rows only among each
        environment's last ``recent`` rows (e.g. PEARL's context from a task's latest data).

        Returns ``obs``, ``action``, ``reward``, ``discount``, ``next_obs``, ``env`` (the
        environment of each transition) and ``step_discounts`` ``(B, n)`` (the factor in front
        of the k-th reward, for rewards the learner computes itself, e.g. intrinsic ones); with
        ``frames=True`` also ``frames`` ``(B, n+1, …)``, every observation of the window, and
        ``actions`` ``(B, n, …)``, every action of it (``actions[:, k]`` leads from ``frames[:, k]``
        to ``frames[:, k+1]``); with a feature cache (:meth:`cache_features`) also
        ``obs_features`` and ``next_obs_features`` ``(B, dim)``.
        """
        if nstep < 1:
            raise ValueError(f"nstep must be ≥ 1, got {nstep}")
        if recent is not None and recent <= nstep:
            raise ValueError(f"recent must exceed nstep ({nstep}) to hold a window, got {recent}")
        eligible = self.count > nstep
        if env_ids is None:
            if not eligible.any():
                raise RuntimeError(f"the replay buffer holds no {nstep}-step window yet; collect more steps first")
            env_pool = eligible.nonzero().squeeze(1)
            env = env_pool[torch.randint(env_pool.numel(), (batch_size,), device=self.device, generator=generator)]
        else:
            env = env_ids.to(self.device, torch.long)
            if env.shape != (batch_size,):
                raise ValueError(f"env_ids must have shape ({batch_size},), got {tuple(env.shape)}")
            if not eligible[env].all():
                raise RuntimeError(
                    f"some requested environments hold no {nstep}-step window yet; collect more steps first"
                )
        # Draw a start row per slot; redraw the slots whose window crosses an episode start.
        start = torch.empty_like(env)
        todo = torch.arange(batch_size, device=self.device)
        offsets = torch.arange(1, nstep + 1, device=self.device)
        for _ in range(100):
            e = env[todo]
            held = self.count[e] if recent is None else self.count[e].clamp(max=recent)
            span = held - nstep  # start positions counted from the oldest row considered
            age = self.count[e] - held
            age = age + (torch.rand(todo.numel(), device=self.device, generator=generator) * span).long()
            rows = (self.ptr[e] - self.count[e] + age) % self.size
            window = (rows[:, None] + offsets[None]) % self.size
            valid = ~self.first[window, e[:, None]].any(1)
            start[todo[valid]] = rows[valid]
            todo = todo[~valid]
            if todo.numel() == 0:
                break
        else:
            raise RuntimeError("could not find enough valid n-step windows (episodes shorter than nstep?)")
        window = (start[:, None] + torch.arange(nstep + 1, device=self.device)[None]) % self.size  # (B, n+1)
        envs = env[:, None].expand_as(window)
        rewards = self.reward[window[:, 1:], envs[:, 1:]]  # (B, n)
        discounts = self.discount[window[:, 1:], envs[:, 1:]]
        powers = gamma ** torch.arange(nstep, device=self.device, dtype=torch.float32)
        alive = torch.cumprod(torch.cat([torch.ones_like(discounts[:, :1]), discounts[:, :-1]], 1), 1)
        step_discounts = powers[None] * alive
        batch = {
            "obs": self.obs_at(start, env),
            "action": self.action[window[:, 1], env],
            "reward": (step_discounts * rewards).sum(1),
            "discount": (gamma**nstep) * discounts.prod(1),
            "next_obs": self.obs_at(window[:, -1], env),
            "step_discounts": step_discounts,
            "env": env,
        }
        if frames:
            batch["frames"] = self.obs_at(window, envs)
            batch["actions"] = self.action[window[:, 1:], envs[:, 1:]]
        if self._encode is not None:  # obs and next_obs in one call: their misses are encoded together
            both = self.features_at(torch.stack([start, window[:, -1]]), torch.stack([env, env]))
            batch["obs_features"], batch["next_obs_features"] = both[0], both[1]
        return batch

    # --- checkpointing ----------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        fields = ("obs", "action", "reward", "discount", "first", "ptr", "count")
        return {k: getattr(self, k).cpu() for k in fields}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key, value in state.items():
            own = getattr(self, key)
            if own.shape != value.shape:
                raise ValueError(
                    f"saved replay buffer field {key!r} has shape {tuple(value.shape)}, this buffer "
                    f"{tuple(own.shape)}: capacity, num_envs or the observation shape changed"
                )
            own.copy_(value.to(self.device))
        if self.cached is not None:
            self.cached.zero_()  # other frames: nothing cached holds
