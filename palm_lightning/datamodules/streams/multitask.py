"""The multi-task experience stream of EAR: one set of environments per task, balanced batches.

Same mechanism as PALM's stream (:class:`ExperienceDataModule`): the module's acting policy
steps every environment once per batch, the transitions go into the replay buffer, a batch is
sampled. Here the buffer's per-environment rings are the *per-task partitions* (task-major:
environments ``t·E … t·E+E−1`` run task slot ``t``), and each batch holds exactly
``batch_size_per_task`` transitions of every task.

Defaults follow the EAR authors' code: 128 transitions per task per batch, 10⁵ per task in the
replay, 4000 warm-up steps per task (20 epochs × 200) and one environment step per task per
gradient step (their 200 env steps then 200 updates per epoch, interleaved finer here).

Validation is evaluation: the val loader yields one request, and the module runs one
deterministic episode per task copy on a separate set of environments (:meth:`evaluate`).
"""

from __future__ import annotations

from collections import deque
from typing import Any, cast

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from palm_lightning.datamodules.streams.experience import ExperienceDataModule, Policy
from palm_lightning.envs.families import FAMILIES
from palm_lightning.envs.multitask import MultiTaskVectorEnv, run_episodes

EPISODE_STATISTICS = ("return", "velocity_error", "success")
"""Per-task statistics of recent training episodes in every batch (``task_<key>``; NaN where the
family does not report the key): the return, the velocity error (velocity families) and the
success rate (families whose ``info`` has ``success``, e.g. Meta-World's)."""


class MultiTaskDataModule(ExperienceDataModule):
    """Experience from every task of a task family, for multi-task SAC (EAR and baselines).

    Args:
        family: task family: locomotion (``halfcheetah_vel``, ``hopper_vel``, ``walker_vel``,
            ``ant_dir``, ``halfcheetah_run_jump``) or Meta-World manipulation (``metaworld_reach``,
            ``metaworld_push``, ``metaworld_mt10``; needs the ``metaworld`` package).
        tasks: the family's task indices to train on (``None``: all training tasks). The
            model's one-hot index ``t`` is the ``t``-th entry of this list.
        split: ``"train"`` tasks, or ``"adapt"`` (held-out tasks, e.g. SAC from scratch on one).
        envs_per_task: parallel environments per task.
        batch_size_per_task: transitions of each task in a batch (authors: 128).
        buffer_capacity_per_task: replay partition size per task (authors: 10⁵).
        warmup_steps_per_task: uniform-random steps per task before the policy acts (authors:
            20 epochs × 200 = 4000).
        steps_per_batch: environment steps (of every environment) per collection (authors: 1).
        updates_per_step: gradient steps per collection (authors: 1).
        nstep, discount: return horizon and γ (SAC: 1 and 0.99).
        eval_episodes_per_task: deterministic evaluation episodes per task at each validation.
        stats_window: finished episodes per task averaged in the logged returns.
        env_kwargs: forwarded to every environment (e.g. ``{"convention": "pearl"}``;
            ``{"max_episode_steps": N}`` shortens the episodes of any family).
        save_buffer, seed: as :class:`ExperienceDataModule`.
    """

    obs_dtype = torch.float32

    def __init__(
        self,
        family: str = "halfcheetah_vel",
        tasks: list[int] | None = None,
        split: str = "train",
        envs_per_task: int = 1,
        batch_size_per_task: int = 128,
        buffer_capacity_per_task: int = 100_000,
        warmup_steps_per_task: int = 4000,
        steps_per_batch: int = 1,
        updates_per_step: int = 1,
        nstep: int = 1,
        discount: float = 0.99,
        eval_episodes_per_task: int = 1,
        stats_window: int = 5,
        env_kwargs: dict[str, Any] | None = None,
        save_buffer: bool = False,
        seed: int = 0,
    ) -> None:
        if family not in FAMILIES:
            raise ValueError(f"unknown task family {family!r}; known: {sorted(FAMILIES)}")
        cls = FAMILIES[family]
        available = cls.num_train_tasks if split == "train" else cls.num_adapt_tasks
        if available == 0:
            raise ValueError(f"{family} has no {split!r} tasks")
        tasks = list(range(available)) if tasks is None else [int(t) for t in tasks]
        bad = [t for t in tasks if not 0 <= t < available]
        if bad or not tasks:
            raise ValueError(f"{family} has {split} tasks 0…{available - 1}; got tasks {tasks}")
        if len(set(tasks)) != len(tasks):
            raise ValueError(f"tasks must be distinct, got {tasks}")
        if envs_per_task < 1 or batch_size_per_task < 1:
            raise ValueError("envs_per_task and batch_size_per_task must be ≥ 1")
        num_tasks = len(tasks)
        super().__init__(
            num_envs=num_tasks * envs_per_task,
            batch_size=num_tasks * batch_size_per_task,
            buffer_capacity=num_tasks * buffer_capacity_per_task,
            nstep=nstep,
            discount=discount,
            seed_frames=num_tasks * warmup_steps_per_task,
            steps_per_batch=steps_per_batch,
            updates_per_step=updates_per_step,
            save_buffer=save_buffer,
            seed=seed,
        )
        self.family = family
        self.tasks = tasks
        self.split = split
        self.num_tasks = num_tasks
        self.envs_per_task = envs_per_task
        self.batch_size_per_task = batch_size_per_task
        self.eval_episodes_per_task = eval_episodes_per_task
        self.env_kwargs = dict(env_kwargs or {})
        self.stats_window = stats_window
        self.task_names = [cls.task_name(t, split) for t in tasks]  # task_name checks the split
        self.eval_env: MultiTaskVectorEnv | None = None
        # environment i runs task slot i // envs_per_task (task-major layout)
        self.env_task = torch.arange(num_tasks).repeat_interleave(envs_per_task)
        self._recent: list[deque] = [deque(maxlen=stats_window) for _ in range(num_tasks)]

    # --- environments ---------------------------------------------------------------------
    def make_env(self, num_envs: int, seed: int, device: torch.device) -> MultiTaskVectorEnv:
        family_tasks = [self.tasks[int(s)] for s in self.env_task]
        return MultiTaskVectorEnv(
            self.family, family_tasks, self.split, seed=seed, device=device, env_kwargs=self.env_kwargs
        )

    def setup(self, stage: str | None = None) -> None:
        super().setup(stage)
        self.env_task = self.env_task.to(self.device)

    def policy_task(self) -> Tensor:
        """Each environment's task slot (the model's one-hot index)."""
        return self.env_task

    # --- batches --------------------------------------------------------------------------
    def sample_batch(self) -> dict[str, Tensor]:
        """``batch_size_per_task`` transitions of every task (task-major), with the task slot of
        each, the counters and the recent episode statistics per task."""
        per = self.batch_size_per_task
        copy = torch.randint(self.envs_per_task, (self.num_tasks * per,), device=self.device, generator=self._random)
        slot = torch.arange(self.num_tasks, device=self.device).repeat_interleave(per)
        env_ids = slot * self.envs_per_task + copy
        assert self.buffer is not None  # made in setup()
        batch = self.buffer.sample(self.batch_size, self.nstep, self.discount, env_ids=env_ids, generator=self._random)
        batch["task"] = slot
        batch.update(self.counters())
        batch.update(self._episode_statistics())
        return batch

    def _episode_statistics(self) -> dict[str, Tensor]:
        """Mean return (and velocity error and success rate, where the family has them) of the
        last finished training episodes of each task; NaN for a task with none yet."""
        for summary in self.env.finished:
            slot = self.tasks.index(int(summary["task"]))
            self._recent[slot].append(summary)
        self.env.finished.clear()
        out: dict[str, Tensor] = {}
        for key in EPISODE_STATISTICS:
            values = [
                sum(s[key] for s in recent) / len(recent) if recent and key in recent[0] else float("nan")
                for recent in self._recent
            ]
            out[f"task_{key}"] = torch.tensor(values, device=self.device)
        return out

    # --- evaluation -----------------------------------------------------------------------
    def val_dataloader(self) -> DataLoader:
        """One evaluation request per validation: the module calls :meth:`evaluate`."""
        requests = cast("Dataset[Tensor]", [torch.arange(self.num_tasks)])  # a list is a map-style dataset
        return DataLoader(requests, batch_size=None)

    def evaluate(self, policy: Policy, seed: int = 10_000) -> list[dict[str, float]]:
        """One episode per task copy (``eval_episodes_per_task`` copies), acting with
        ``policy(obs, env_steps, eval_mode=True, task=slots)``; returns the episode summaries with
        ``slot`` (the task's one-hot index) added."""
        copies = self.eval_episodes_per_task
        slots = torch.arange(self.num_tasks).repeat_interleave(copies)
        if self.eval_env is None:
            family_tasks = [self.tasks[int(s)] for s in slots]
            self.eval_env = MultiTaskVectorEnv(
                self.family,
                family_tasks,
                self.split,
                seed=self.seed + 10_000,
                device=self.device,
                env_kwargs=self.env_kwargs,
            )
        slots_dev = slots.to(self.device)
        summaries = run_episodes(
            self.eval_env, lambda obs: policy(obs, self.env_steps, eval_mode=True, task=slots_dev), seed=seed
        )
        for summary, slot in zip(summaries, slots.tolist(), strict=True):
            summary["slot"] = float(slot)
        return summaries
