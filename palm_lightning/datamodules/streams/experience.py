"""Streaming experience: a DataModule that owns environments and a replay buffer, fed by the agent.

The train loader is an endless stream. Before each batch the stream steps the environments with
the agent's acting policy (attached by the LightningModule with :meth:`attach_policy`; uniform
random actions for the first ``seed_frames``), writes the transitions into the buffer, then
samples a batch of n-step transitions — on the training device, in the main process
(``num_workers=0``: a buffer filled by the agent is invisible to DataLoader workers).

The stream knows its action space (the environment's gymnasium ``Box`` or ``Discrete``
``action_space``): the seed frames sample it, and the replay buffer stores actions in its shape
and dtype. Every module's acting policy has one signature, :data:`Policy`.

Drive training with ``trainer.max_steps`` and ``val_check_interval`` (with
``check_val_every_n_epoch: null``): the stream has no epochs. Under DDP every rank builds its own
environments, seeded ``seed + rank``, and its own buffer. The buffer goes into checkpoints only
when ``save_buffer`` is set (buffers can be large); counters and environment state always do.

Subclasses implement :meth:`make_env` (a batched environment with ``num_envs``, ``obs_shape``,
``action_space`` (or ``action_dim`` for a ``Box`` in ``[-1, 1]``), ``reset(mask=None)``,
``step(action)``, ``state_dict``/``load_state_dict``), and :meth:`policy_task` when their
environments run several tasks.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import gymnasium
import lightning as L
import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, IterableDataset

from palm_lightning.datamodules.streams.replay import ReplayBuffer

Policy = Callable[..., Tensor]
"""The one acting-policy signature: ``policy(obs, env_steps, eval_mode=False, task=None) -> actions``,
batched over environments (``task``: each environment's task index, multi-task streams only);
actions ``(N, |A|)`` inside a ``Box`` or ``(N,)`` integers of a ``Discrete`` space."""


def env_action_space(env: Any) -> gymnasium.spaces.Box | gymnasium.spaces.Discrete:
    """A batched environment's per-environment action space: its ``action_space`` if it has one,
    else ``Box(-1, 1, (action_dim,))``."""
    space = getattr(env, "action_space", None)
    if space is None:
        space = gymnasium.spaces.Box(-1.0, 1.0, (int(env.action_dim),), dtype=np.float32)
    if not isinstance(space, (gymnasium.spaces.Box, gymnasium.spaces.Discrete)):
        raise TypeError(f"the experience stream supports Box and Discrete action spaces, not {type(space).__name__}")
    return space


class ExperienceStream(IterableDataset):
    """Endless iterator: collect ``steps_per_batch`` environment steps, then yield one batch."""

    def __init__(self, datamodule: ExperienceDataModule) -> None:
        self.datamodule = datamodule

    def __iter__(self) -> Iterator[dict[str, Tensor]]:
        dm = self.datamodule
        dm.warm_up()
        batches = 0
        while True:
            if batches % dm.updates_per_step == 0:
                dm.collect(dm.steps_per_batch)
            batches += 1
            yield dm.sample_batch()


class ExperienceDataModule(L.LightningDataModule):
    """Base of the experience DataModules (environments + replay buffer + stream).

    Args:
        num_envs: environments stepped together (per rank).
        batch_size: transitions per batch (per rank).
        buffer_capacity: time steps kept in the replay buffer (per rank).
        nstep: n of the n-step returns computed at sampling.
        discount: γ of those returns.
        seed_frames: environment frames (summed over environments) of uniform random actions
            before the policy acts (DrQ-v2: 4000).
        steps_per_batch: vectorised environment steps per collection (each gives ``num_envs``
            frames).
        updates_per_step: training batches per collection. Together they set the replay ratio:
            ``num_envs · steps_per_batch / updates_per_step`` frames per update (DrQ-v2/URLB: 2,
            one update every second frame).
        with_frames: also return every observation of the n-step window (``frames``).
        save_buffer: put the replay buffer into checkpoints (off by default: it can be large).
        seed: base seed; rank r uses ``seed + r``.
    """

    def __init__(
        self,
        num_envs: int = 16,
        batch_size: int = 256,
        buffer_capacity: int = 100_000,
        nstep: int = 3,
        discount: float = 0.99,
        seed_frames: int = 4000,
        steps_per_batch: int = 1,
        updates_per_step: int = 1,
        with_frames: bool = False,
        save_buffer: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__()
        if steps_per_batch < 1:
            raise ValueError(f"steps_per_batch must be ≥ 1, got {steps_per_batch}")
        if updates_per_step < 1:
            raise ValueError(f"updates_per_step must be ≥ 1, got {updates_per_step}")
        self.num_envs = num_envs
        self.batch_size = batch_size
        self.buffer_capacity = buffer_capacity
        self.nstep = nstep
        self.discount = discount
        self.seed_frames = seed_frames
        self.steps_per_batch = steps_per_batch
        self.updates_per_step = updates_per_step
        self.with_frames = with_frames
        self.save_buffer = save_buffer
        self.seed = seed
        self.env: Any = None
        self.action_space: gymnasium.spaces.Box | gymnasium.spaces.Discrete | None = None
        self.buffer: ReplayBuffer | None = None
        self.policy: Policy | None = None
        self.device = torch.device("cpu")
        self.env_steps = 0  # frames, summed over this rank's environments
        self.episodes = 0
        self.env_fps = 0.0
        self._obs: Tensor | None = None
        self._pending_state: dict[str, Any] | None = None
        self.rank = 0

    # --- what subclasses provide ----------------------------------------------------------------
    def make_env(self, num_envs: int, seed: int, device: torch.device) -> Any:
        """Build a batched environment (see the module docstring)."""
        raise NotImplementedError

    # --- set-up ---------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.env is not None:
            return
        trainer = self.trainer
        if trainer is not None:
            self.device = trainer.strategy.root_device
            self.rank = trainer.global_rank
        self.env = self.make_env(self.num_envs, self.seed + self.rank, self.device)
        self.action_space = env_action_space(self.env)
        discrete = isinstance(self.action_space, gymnasium.spaces.Discrete)
        self.buffer = ReplayBuffer(
            self.buffer_capacity,
            self.num_envs,
            self.env.obs_shape,
            self.action_space.shape or (),  # a Discrete space's shape is ()
            self.device,
            obs_dtype=self.obs_dtype,
            action_dtype=torch.long if discrete else torch.float32,
        )
        self._random = torch.Generator(device=self.device)
        self._random.manual_seed(self.seed + self.rank + 1_000_003)
        if self._pending_state is not None:
            self._restore(self._pending_state)
            self._pending_state = None

    obs_dtype: torch.dtype = torch.uint8

    def attach_policy(self, policy: Policy) -> None:
        """Called by the LightningModule (e.g. in ``on_fit_start``) with its acting policy
        (the :data:`Policy` signature)."""
        self.policy = policy

    def policy_task(self) -> Tensor | None:
        """The task index of every environment, passed to the policy as ``task`` (``None``: the
        stream runs one task)."""
        return None

    def train_dataloader(self) -> DataLoader:
        if self.env is None:
            self.setup("fit")
        return DataLoader(ExperienceStream(self), batch_size=None, num_workers=0)

    # --- collection -----------------------------------------------------------------------------
    def random_actions(self, num: int | None = None) -> Tensor:
        """Uniform samples of the action space for ``num`` environments (all by default)."""
        num = self.num_envs if num is None else num
        assert self.action_space is not None  # set in setup()
        return sample_space(self.action_space, num, self.device, self._random)

    def act(self) -> Tensor:
        """Uniform random actions for the first ``seed_frames``, the attached policy after."""
        if self.policy is None or self.env_steps < self.seed_frames:
            return self.random_actions()
        return self.policy(self._obs, self.env_steps, task=self.policy_task())

    @torch.no_grad()
    def collect(self, steps: int) -> None:
        """Step every environment ``steps`` times, writing each step into the buffer."""
        assert self.buffer is not None  # made in setup()
        if self._obs is None:
            self._obs, _ = self.env.reset()
            self.buffer.add(self._obs, first=True)
        start = time.perf_counter()
        for _ in range(steps):
            action = self.act()
            obs, reward, terminated, truncated, _ = self.env.step(action)
            self.buffer.add(obs, action, reward, terminated)
            self.env_steps += self.num_envs
            done = terminated | truncated
            if done.any():
                self.episodes += int(done.sum())
                fresh, _ = self.env.reset(mask=done)
                self.buffer.add(fresh[done], first=True, env_ids=done.nonzero().squeeze(1))
                obs = torch.where(done.view(-1, *[1] * (obs.dim() - 1)), fresh, obs)
            self._obs = obs
        elapsed = time.perf_counter() - start
        fps = steps * self.num_envs / max(elapsed, 1e-9)
        self.env_fps = fps if self.env_fps == 0 else 0.9 * self.env_fps + 0.1 * fps

    def warm_up(self) -> None:
        """Fill the buffer until a batch can be sampled: the seed frames, or (after a resume
        without the buffer) at least one n-step window per environment plus a batch's worth."""
        need = max(self.seed_frames - self.env_steps, 0)
        need_rows = self.nstep + 1 + -(-self.batch_size // self.num_envs)
        assert self.buffer is not None  # made in setup()
        while need > 0 or not self.buffer.can_sample(self.nstep) or len(self.buffer) < need_rows * self.num_envs:
            self.collect(1)
            need -= self.num_envs

    def sample_batch(self) -> dict[str, Tensor]:
        assert self.buffer is not None  # made in setup()
        batch = self.buffer.sample(self.batch_size, self.nstep, self.discount, frames=self.with_frames)
        batch.update(self.counters())
        return batch

    def counters(self) -> dict[str, Tensor]:
        """Environment steps, collection frames/s and finished episodes, as batch entries."""
        return {
            "env_steps": torch.tensor(self.env_steps, device=self.device),
            "env_fps": torch.tensor(self.env_fps, device=self.device),
            "episodes": torch.tensor(self.episodes, device=self.device),
        }

    # --- checkpointing --------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"env_steps": self.env_steps, "episodes": self.episodes}
        if self.env is not None:
            state["env"] = self.env.state_dict()
            state["obs"] = None if self._obs is None else self._obs.cpu()
            state["random"] = self._random.get_state()
        if self.save_buffer and self.buffer is not None:
            state["buffer"] = self.buffer.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if self.env is None:
            self._pending_state = state  # restored in setup()
        else:
            self._restore(state)

    def _restore(self, state: dict[str, Any]) -> None:
        self.env_steps = int(state.get("env_steps", 0))
        self.episodes = int(state.get("episodes", 0))
        if "env" in state:
            self.env.load_state_dict(state["env"])
            self._obs = None if state.get("obs") is None else state["obs"].to(self.device)
            self._random.set_state(state["random"])
        if "buffer" in state:
            assert self.buffer is not None  # made in setup()
            self.buffer.load_state_dict(state["buffer"])
        elif self._obs is not None:
            # No buffer saved: the window being collected has no past rows; start it afresh.
            assert self.buffer is not None  # made in setup()
            self.buffer.add(self._obs, first=True)


def sample_space(
    space: gymnasium.spaces.Space, num: int, device: torch.device, generator: torch.Generator | None = None
) -> Tensor:
    """``num`` uniform samples of a ``Box`` (bounded: ``(num, *shape)`` float32) or ``Discrete``
    (``(num,)`` long) space, drawn on ``device`` with ``generator``."""
    if isinstance(space, gymnasium.spaces.Discrete):
        return torch.randint(int(space.n), (num,), device=device, generator=generator) + int(space.start)
    if isinstance(space, gymnasium.spaces.Box):
        if not space.is_bounded():
            raise ValueError(f"cannot draw uniform actions from an unbounded Box {space}")
        low = torch.as_tensor(space.low, dtype=torch.float32, device=device)
        high = torch.as_tensor(space.high, dtype=torch.float32, device=device)
        unit = torch.rand((num, *space.shape), device=device, generator=generator)
        return low + unit * (high - low)
    raise TypeError(f"the experience stream supports Box and Discrete action spaces, not {type(space).__name__}")
