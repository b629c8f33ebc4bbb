"""The multi-task stream of PEARL: :class:`MultiTaskDataModule` plus a *context batch* per task.

PEARL trains its context encoder on transitions of the same task as the RL batch but drawn
separately: here ``context_batch_size`` transitions of each task, from the last
``context_window`` steps of that task's replay (PEARL keeps a separate encoder buffer holding only
the task's latest prior-collected data; a recent window of the one buffer is our simplification).

Collection tells the module when an environment starts an episode (``episode_start``), so that
the module can draw that environment's z for the whole episode: from the prior, or from the
posterior given the task's context (see :class:`~palm_lightning.models.PEARL`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from palm_lightning.datamodules.streams.multitask import MultiTaskDataModule
from palm_lightning.nn.context_encoder import context_dim, make_context


class PEARLDataModule(MultiTaskDataModule):
    """:class:`MultiTaskDataModule` whose batches also hold ``context`` ``(T, C, context_dim)``.

    Args:
        context_batch_size: context transitions per task per batch (PEARL's code:
            ``embedding_batch_size`` 100 for HalfCheetah-Vel, 64 by default).
        context_window: the task's last steps the context is drawn from (our choice: 400,
            PEARL's ``num_steps_prior``, the size of its per-task encoder buffer after a round).
        use_next_obs: put ``s'`` into the context (the paper's ``(s, a, r, s')``; PEARL's code
            leaves it out by default). Must match the model's.
        **kwargs: :class:`MultiTaskDataModule`'s arguments.
    """

    def __init__(
        self, context_batch_size: int = 100, context_window: int = 400, use_next_obs: bool = True, **kwargs: Any
    ) -> None:
        kwargs.setdefault("batch_size_per_task", 256)  # PEARL's RL batch, per task
        super().__init__(**kwargs)
        if context_batch_size < 1:
            raise ValueError(f"context_batch_size must be ≥ 1, got {context_batch_size}")
        if context_window < 2:
            raise ValueError(f"context_window must be ≥ 2 steps, got {context_window}")
        self.context_batch_size = context_batch_size
        self.context_window = context_window
        self.use_next_obs = use_next_obs

    def act(self) -> Tensor:
        if self.policy is None or self.env_steps < self.seed_frames:
            return self.random_actions()
        start = self.env.episode_lengths() == 0
        return self.policy(self._obs, self.env_steps, task=self.policy_task(), episode_start=start)

    def context_batch(self) -> Tensor:
        """``context_batch_size`` recent transitions of every task ``(T, C, context_dim)``; before
        every task has a transition (e.g. a sanity validation before the warm-up) an empty
        context ``(T, 0, context_dim)``, whose posterior is the prior."""
        assert self.buffer is not None  # made in setup()
        if not bool((self.buffer.count > 1).all()):
            obs_dim, action_dim = self.env.obs_shape[0], self.env.action_dim
            empty_dim = context_dim(obs_dim, action_dim, self.use_next_obs)
            return torch.zeros(self.num_tasks, 0, empty_dim, device=self.device)
        per, tasks = self.context_batch_size, self.num_tasks
        copy = torch.randint(self.envs_per_task, (tasks * per,), device=self.device, generator=self._random)
        env_ids = torch.arange(tasks, device=self.device).repeat_interleave(per) * self.envs_per_task + copy
        recent = max(self.context_window, 2)
        sample = self.buffer.sample(tasks * per, 1, 1.0, env_ids=env_ids, generator=self._random, recent=recent)
        context = make_context(
            sample["obs"], sample["action"], sample["reward"], sample["next_obs"] if self.use_next_obs else None
        )
        return context.view(tasks, per, -1)

    def sample_batch(self) -> dict[str, Tensor]:
        batch = super().sample_batch()
        batch["context"] = self.context_batch()
        return batch
