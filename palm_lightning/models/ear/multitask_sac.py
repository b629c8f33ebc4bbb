"""Multi-task SAC: the shared machinery of EAR and its baselines (OHE-SAC, MHMT-SAC).

One batched forward covers every task: a batch from :class:`MultiTaskDataModule` holds
``batch_size_per_task`` transitions of each task and their task slots. The critics are twin
Q-networks on ``(obs, action, one-hot task)`` (the EAR authors' choice: Q sees the one-hot, not
the LTE), with target networks and one automatically tuned temperature α shared by all tasks.

The update is :class:`~palm_lightning.agents.SACAgent`'s, in the EAR authors' order: the
temperature first, then critic and policy from one backward, each network's gradient norm
clipped separately (authors: 10). Its settings are one group, ``agent``
(:class:`~palm_lightning.agents.sac.SACConfig`, the authors' values by default): in a config
``agent: {hidden_dim: 256, init_log_alpha: -4.6}``, on the command line
``--model.init_args.agent.lr 1e-4``. The RL update runs in float32 whatever the trainer's precision.
Under DDP use ``strategy: ddp_find_unused_parameters_true`` (two backward passes per update).

Subclassing points: :meth:`build_policy` returns the policy network
(:class:`~palm_lightning.nn.multitask_policies.MultiTaskPolicy`); :meth:`build_agent` the SAC
agent around it; :meth:`agent_batch` turns a stream batch into the agent's transitions (PEARL
replaces the one-hot task by a latent code inferred from context); :meth:`embeddings` returns
what to show in TensorBoard's projector.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import lightning as L
import torch
from torch import Tensor, nn

from palm_lightning.agents.base import Stepper, Transition
from palm_lightning.agents.sac import SACAgent, SACConfig
from palm_lightning.nn.sac import TwinQ
from palm_lightning.training.config_groups import UpgradesGroupedSettings, as_config, record_groups, typed_view
from palm_lightning.training.nan_guard import stop_on_nan
from palm_lightning.training.optimizer_steps import UncountedOptimizer, check_ddp_allows_partial_backward
from palm_lightning.training.typed_lightning import attached_datamodule, module_optimizers

TASK_INFO_KEY = "palm_lightning_tasks"


@dataclass(frozen=True)
class MultiTaskSACHParams:
    """:class:`MultiTaskSAC`'s hyperparameters, typed: its constructor's arguments (the values
    ``self.hparams`` holds besides a subclass's own; see :class:`MultiTaskSAC` for their meaning)."""

    obs_dim: int
    action_dim: int
    num_tasks: int
    agent: SACConfig
    log_every_n_updates: int
    embedding_every_n_updates: int
    embedding_samples_per_task: int


class MultiTaskSAC(UpgradesGroupedSettings, L.LightningModule):
    """Base of the multi-task SAC modules (not trained on its own: pick a subclass).

    Args:
        obs_dim, action_dim, num_tasks: problem sizes; checked against the DataModule at set-up
            (HalfCheetah 17/6, Hopper 11/3, Walker 17/6, Ant 105/8 with contact forces).
        agent: the SAC agent's settings (:class:`~palm_lightning.agents.sac.SACConfig`: critic
            width and depth, learning rates, temperature, Polyak rate, reward scale, clipping and
            update order; defaults: the EAR authors'), nested in a config:
            ``agent: {hidden_dim: 256, q_layers: 2}`` or ``--model.init_args.agent.lr 1e-4``.
            ``agent.hidden_dim`` is also the width of the policy's hidden layers (the authors use
            one width, 400, for policies and critics; the policy is the agent's): a subclass builds
            its policy that wide, and only the policy's depth is its own setting.
        log_every_n_updates: training scalars are written this often (writing every update
            costs a noticeable share of a CPU update).
        embedding_every_n_updates: write the projector embeddings this often (0: only at the
            end of fit).
        embedding_samples_per_task: observations per task whose state embedding is written.
    """

    updates: Tensor  # buffers (registered in __init__)
    env_steps: Tensor

    legacy_settings: ClassVar[Mapping[str, tuple[str, ...]]] = {
        name: (f"agent.{name}",)
        for name in (
            "hidden_dim",
            "q_layers",
            "lr",
            "alpha_lr",
            "init_log_alpha",
            "target_entropy",
            "tau",
            "reward_scale",
            "grad_clip",
            "grad_clip_per",
            "alpha_first",
        )
    }
    """Flat settings of older checkpoints (same names) and the group they now live in."""

    def __init__(
        self,
        obs_dim: int = 17,
        action_dim: int = 6,
        num_tasks: int = 10,
        agent: SACConfig = SACConfig(),
        log_every_n_updates: int = 100,
        embedding_every_n_updates: int = 0,
        embedding_samples_per_task: int = 64,
    ) -> None:
        super().__init__()
        if type(self) is MultiTaskSAC:
            raise TypeError("MultiTaskSAC is a base class: use EAR, OHESAC, MHMTSAC or PEARL (palm_lightning.models)")
        agent = as_config(SACConfig, agent, "agent")  # a subclass's config (PEARL's) is passed on as it is
        self.save_hyperparameters()
        record_groups(self.hparams, agent=agent)
        self.hp = typed_view(MultiTaskSACHParams, locals())
        self.automatic_optimization = False
        self.agent = self.build_agent()
        self.agent_optimizer_names: list[str] = []  # set by configure_optimizers
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("env_steps", torch.zeros((), dtype=torch.long))
        self.task_info: dict[str, Any] = {}
        self._clock: tuple[float, int, int] | None = None

    # --- the agent's parts, by their usual names -------------------------------------------------
    @property
    def policy(self) -> nn.Module:
        return self.agent.policy

    @property
    def critic(self) -> TwinQ:
        return self.agent.critic

    @property
    def critic_target(self) -> TwinQ:
        return self.agent.critic_target

    @property
    def log_alpha(self) -> nn.Parameter:
        return self.agent.log_alpha

    @property
    def target_entropy(self) -> float:
        return self.agent.target_entropy

    # --- subclassing points -------------------------------------------------------------------
    def build_agent(self) -> SACAgent:
        """The SAC agent over :meth:`build_policy` (critic on ``obs ⊕ one-hot task``)."""
        hp = self.hp
        return SACAgent(self.build_policy(), hp.obs_dim, hp.action_dim, hp.num_tasks, hp.agent)

    def agent_batch(self, batch: dict[str, Tensor]) -> tuple[Transition, dict[str, Tensor]]:
        """The stream's batch as the agent's :class:`Transition` (``task``: the one-hot slots),
        and extra losses for the same backward (none here; PEARL adds its KL)."""
        transition = Transition(
            batch["obs"], batch["action"], batch["reward"], batch["discount"], batch["next_obs"], task=batch["task"]
        )
        return transition, {}

    def build_policy(self) -> nn.Module:
        """The policy network ``(obs, task) → (mean, log_std)`` (a
        :class:`~palm_lightning.nn.multitask_policies.MultiTaskPolicy` here; PEARL's reads a latent
        code as its task); ``self.hp`` holds the sizes, ``self.hp.agent.hidden_dim`` its width."""
        raise NotImplementedError

    @torch.no_grad()
    def embeddings(self, obs: Tensor, task: Tensor) -> dict[str, Tensor]:
        """Matrices for TensorBoard's projector: ``{"name": (rows, dim)}`` for sample
        observations ``obs`` of tasks ``task`` (name ending ``_tasks``: one row per task)."""
        return {}

    # --- set-up -------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = attached_datamodule(self)
        env = getattr(dm, "env", None)
        if env is None or not hasattr(dm, "num_tasks"):
            if stage == "fit":
                raise TypeError(
                    f"{type(self).__name__} trains on a multi-task experience stream: use "
                    f"palm_lightning.datamodules.MultiTaskDataModule as data, not {type(dm).__name__}"
                )
            return
        hp = self.hp
        for name, ours, theirs in (
            ("obs_dim", hp.obs_dim, env.obs_shape[0]),
            ("action_dim", hp.action_dim, env.action_dim),
            ("num_tasks", hp.num_tasks, dm.num_tasks),
        ):
            if ours != theirs:
                raise ValueError(
                    f"model.{name} is {ours} but the {dm.family} data has {theirs}: "
                    f"set --model.init_args.{name} {theirs}"
                )
        self.task_info = {
            "family": dm.family,
            "tasks": list(dm.tasks),
            "split": dm.split,
            "task_names": list(dm.task_names),
            "env_kwargs": dict(dm.env_kwargs),
        }

    def on_fit_start(self) -> None:
        check_ddp_allows_partial_backward(self)
        attached_datamodule(self).attach_policy(self.act)
        if self.trainer.precision in ("16-mixed", "16", "16-true"):
            raise ValueError("multi-task SAC runs its update in float32; use precision 32 or bf16-mixed, not float16")

    def configure_optimizers(self) -> list[torch.optim.Optimizer]:
        """One fused Adam per agent optimiser (``alpha``, then ``actor_critic``)."""
        agent_groups = self.agent.optimizer_groups()
        self.agent_optimizer_names = list(agent_groups)  # read by every update: kept, not rebuilt
        return [torch.optim.Adam(groups, fused=True) for groups in agent_groups.values()]

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TASK_INFO_KEY] = dict(self.task_info)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.task_info = dict(checkpoint.get(TASK_INFO_KEY, {}))

    # --- acting -------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, env_steps: int, eval_mode: bool = False, task: Tensor | None = None) -> Tensor:
        """The stream's policy: a tanh-Gaussian sample, or with ``eval_mode`` its mean ``tanh(μ)``
        with noise-free task embeddings."""
        with torch.autocast(obs.device.type, enabled=False):
            return self.agent.act(obs.float(), env_steps, eval_mode=eval_mode, task=task)

    @torch.no_grad()
    def act_deterministic(self, obs: Tensor, task: Tensor) -> Tensor:
        """Evaluation: the mean action ``tanh(μ)``, noise-free task embeddings."""
        return self.act(obs, int(self.env_steps), eval_mode=True, task=task)

    # --- training -----------------------------------------------------------------------------
    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        losses, logs = self.update(batch, module_optimizers(self))
        if int(self.updates) % self.hp.log_every_n_updates == 0:
            self.env_steps.fill_(int(batch["env_steps"]))
            self.write_training_logs(batch, losses, logs)

    def update(
        self, batch: dict[str, Tensor], optimizers: Sequence[torch.optim.Optimizer]
    ) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One SAC update (the agent's), returning ``(losses, other scalars)``.

        Usable without a Trainer (benchmarks call it directly with ``configure_optimizers()``).
        """
        in_trainer = self._trainer is not None

        def check(losses: dict[str, Tensor]) -> None:
            if in_trainer:
                stop_on_nan(
                    self,
                    losses,
                    int(self.updates),
                    int(batch["env_steps"]),
                    "Lower model.init_args.agent.lr or set model.init_args.agent.grad_clip.",
                )

        names = self.agent_optimizer_names
        steppers: Sequence[Stepper] = optimizers
        if in_trainer:  # max_steps counts updates: only the last optimiser's step is counted
            steppers = [UncountedOptimizer(self, o) for o in optimizers[:-1]] + [optimizers[-1]]
        with torch.autocast(self.device.type, enabled=False):
            transition, extra_losses = self.agent_batch(batch)
            logs = self.agent.update(
                transition,
                int(batch["env_steps"]),
                dict(zip(names, steppers, strict=True)),
                backward=self.manual_backward if in_trainer else None,
                check=check,
                extra_losses=extra_losses,
            )
        self.updates += 1
        losses = {k.removeprefix("train/"): logs.pop(k) for k in list(logs) if k.endswith("_loss")}
        return losses, logs

    def write_training_logs(self, batch: dict[str, Tensor], losses: dict[str, Tensor], logs: dict[str, Tensor]) -> None:
        """Scalars straight to the logger, every ``log_every_n_updates`` (rank 0)."""
        if self.logger is None:
            return
        updates, env_steps = int(self.updates), int(batch["env_steps"])
        metrics = {f"train/{k}": float(v.detach()) for k, v in losses.items()}
        metrics.update({k: float(v) for k, v in logs.items()})
        now = time.perf_counter()
        if self._clock is not None:
            then, last_updates, last_steps = self._clock
            metrics["charts/updates_per_s"] = (updates - last_updates) / max(now - then, 1e-9)
            metrics["charts/env_steps_per_s"] = (env_steps - last_steps) / max(now - then, 1e-9)
        self._clock = (now, updates, env_steps)
        metrics["charts/env_steps"] = env_steps
        metrics["charts/collection_fps"] = float(batch["env_fps"])
        metrics["charts/episodes"] = float(batch["episodes"])
        names = self.task_info.get("task_names") or [str(t) for t in range(self.hp.num_tasks)]
        for key in ("return", "velocity_error", "success"):
            if f"task_{key}" not in batch:
                continue
            values = batch[f"task_{key}"]
            finite = values[torch.isfinite(values)]
            if finite.numel():
                metrics[f"train_{key}/mean"] = float(finite.mean())
            for name, value in zip(names, values.tolist(), strict=True):
                if not math.isnan(value):
                    metrics[f"train_{key}/{name}"] = value
        self.logger.log_metrics(metrics, step=updates)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = self.hp.embedding_every_n_updates
        if every and int(self.updates) % every == 0:
            self.log_embeddings()

    def on_train_end(self) -> None:
        self.log_embeddings()

    # --- evaluation ---------------------------------------------------------------------------
    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        """Deterministic episodes on every task (see ``MultiTaskDataModule.evaluate``)."""
        dm = attached_datamodule(self)
        summaries = dm.evaluate(self.act)
        names = dm.task_names
        for key in ("return", "velocity_error", "x_velocity", "heading", "z_height", "success", "final_hand_to_goal"):
            per_slot: dict[int, list[float]] = {}
            for s in summaries:
                if key in s:
                    per_slot.setdefault(int(s["slot"]), []).append(s[key])
            if not per_slot:
                continue
            means = {slot: sum(v) / len(v) for slot, v in per_slot.items()}
            for slot, value in means.items():
                self.log(f"eval_{key}/{names[slot]}", value, batch_size=1, sync_dist=True)
            if key in ("return", "velocity_error", "success", "final_hand_to_goal"):
                self.log(
                    f"eval/{key}_mean", sum(means.values()) / len(means), batch_size=1, sync_dist=True, prog_bar=True
                )

    # --- embeddings ---------------------------------------------------------------------------
    def log_embeddings(self) -> None:
        """Write :meth:`embeddings` of replayed observations to TensorBoard's projector."""
        from lightning.pytorch.loggers import TensorBoardLogger

        dm = getattr(self.trainer, "datamodule", None)
        if not isinstance(self.logger, TensorBoardLogger) or dm is None or dm.buffer is None or not len(dm.buffer):
            return
        if not self.trainer.is_global_zero:
            return
        per = self.hp.embedding_samples_per_task
        slot = torch.arange(dm.num_tasks, device=dm.device).repeat_interleave(per)
        env_ids = slot * dm.envs_per_task + torch.randint(dm.envs_per_task, slot.shape, device=dm.device)
        obs = dm.buffer.sample(slot.numel(), 1, env_ids=env_ids)["obs"].float().to(self.device)
        was_training = self.policy.training
        self.policy.eval()
        try:
            matrices = self.embeddings(obs, slot.to(self.device))
        finally:
            self.policy.train(was_training)
        names = dm.task_names
        for tag, matrix in matrices.items():
            labels = names if tag.endswith("_tasks") else [names[int(s)] for s in slot]
            self.logger.experiment.add_embedding(matrix.cpu(), metadata=labels, tag=tag, global_step=int(self.updates))
