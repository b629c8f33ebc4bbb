"""Tasks for on-policy meta-RL (MAML-TRPO): a stream of meta-batches of task indices and one
gymnasium vector environment per task.

Unlike the replay streams there is nothing to sample from a buffer: each training batch is the
list of task slots of one meta-iteration, and the module rolls its policy out in
:meth:`MetaTaskDataModule.vector_env` (``episodes_per_task`` sub-environments of the task, one
episode each per rollout: MAML's "K trajectories per task").
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import gymnasium
import lightning as L
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset, IterableDataset

from palm_lightning.envs.families import family_class, make_task_env
from palm_lightning.envs.locomotion import FAMILIES
from palm_lightning.envs.locomotion.base import Split


class TaskStream(IterableDataset):
    """Endless meta-batches of ``meta_batch_size`` task slots: without replacement while the
    batch fits in the task list, with replacement beyond."""

    def __init__(self, num_tasks: int, meta_batch_size: int, seed: int) -> None:
        self.num_tasks, self.meta_batch_size, self.seed = num_tasks, meta_batch_size, seed

    def __iter__(self) -> Iterator[Tensor]:
        generator = torch.Generator().manual_seed(self.seed)
        while True:
            if self.meta_batch_size <= self.num_tasks:
                yield torch.randperm(self.num_tasks, generator=generator)[: self.meta_batch_size]
            else:
                yield torch.randint(self.num_tasks, (self.meta_batch_size,), generator=generator)


class MetaTaskDataModule(L.LightningDataModule):
    """Task sampling and vector environments of a locomotion family, for MAML-TRPO.

    Args:
        family: task family (see :mod:`palm_lightning.envs.locomotion`).
        tasks: the family's training task indices (``None``: all); slot ``t`` is ``tasks[t]``.
        meta_batch_size: tasks per meta-iteration (MAML locomotion: 40, sampled from a
            continuous range; EAR's families have 10 fixed training tasks).
        episodes_per_task: K, episodes per task per rollout (MAML: 20).
        eval_split: tasks validation adapts to: ``"train"`` (the training tasks) or ``"adapt"``
            (the family's held-out tasks).
        env_kwargs: forwarded to every environment (e.g. ``{"convention": "pearl"}``).
        seed: seeds task sampling and the environments.
    """

    def __init__(
        self,
        family: str = "halfcheetah_vel",
        tasks: list[int] | None = None,
        meta_batch_size: int = 40,
        episodes_per_task: int = 20,
        eval_split: str = "adapt",
        env_kwargs: dict[str, Any] | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        cls = family_class(family, among=FAMILIES)  # PEARL and MAML-TRPO run on the locomotion families
        tasks = list(range(cls.num_train_tasks)) if tasks is None else [int(t) for t in tasks]
        bad = [t for t in tasks if not 0 <= t < cls.num_train_tasks]
        if bad or not tasks:
            raise ValueError(f"{family} has train tasks 0…{cls.num_train_tasks - 1}; got tasks {tasks}")
        if meta_batch_size < 1 or episodes_per_task < 1:
            raise ValueError("meta_batch_size and episodes_per_task must be ≥ 1")
        if eval_split not in ("train", "adapt"):
            raise ValueError(f"eval_split must be 'train' or 'adapt', got {eval_split!r}")
        self.family, self.tasks, self.num_tasks = family, tasks, len(tasks)
        self.meta_batch_size, self.episodes_per_task = meta_batch_size, episodes_per_task
        self.eval_split = eval_split
        self.env_kwargs = dict(env_kwargs or {})
        self.seed = seed
        self.task_names = [cls.task_name(t) for t in tasks]
        eval_tasks = tasks if eval_split == "train" else list(range(cls.num_adapt_tasks))
        self.eval_tasks = eval_tasks
        self.eval_task_names = [cls.task_name(t, cast(Split, eval_split)) for t in eval_tasks]
        probe = make_task_env(family, 0, **self.env_kwargs)
        assert probe.observation_space.shape is not None and probe.action_space.shape is not None
        self.obs_dim, self.action_dim = probe.observation_space.shape[0], probe.action_space.shape[0]
        probe.close()
        self._envs: dict[tuple[str, int], gymnasium.vector.VectorEnv] = {}

    def vector_env(self, task: int, split: str = "train") -> gymnasium.vector.VectorEnv:
        """``episodes_per_task`` copies of the family's ``task`` (a task index of ``split``)."""
        key = (split, task)
        if key not in self._envs:
            kwargs = self.env_kwargs

            def make() -> gymnasium.Env:
                return make_task_env(self.family, task, split=split, **kwargs)

            self._envs[key] = gymnasium.vector.SyncVectorEnv([make] * self.episodes_per_task)
        return self._envs[key]

    def train_env(self, slot: int) -> gymnasium.vector.VectorEnv:
        return self.vector_env(self.tasks[slot], "train")

    def train_dataloader(self) -> DataLoader:
        return DataLoader(TaskStream(self.num_tasks, self.meta_batch_size, self.seed), batch_size=None)

    def val_dataloader(self) -> DataLoader:
        """One request per validation: the module adapts to every evaluation task."""
        requests = cast("Dataset[Tensor]", [torch.arange(len(self.eval_tasks))])
        return DataLoader(requests, batch_size=None)

    def teardown(self, stage: str) -> None:
        for env in self._envs.values():
            env.close()
        self._envs.clear()
