"""Multi-task SAC: the shared machinery of EAR and its baselines (OHE-SAC, MHMT-SAC).

One batched forward covers every task: a batch from :class:`MultiTaskDataModule` holds
``batch_size_per_task`` transitions of each task and their task slots. The critics are twin
Q-networks on ``(obs, action, one-hot task)`` (the EAR authors' choice: Q sees the one-hot, not
the LTE), with target networks and one automatically tuned temperature α shared by all tasks.

The update is one summed backward of three losses on disjoint parameters (critic; policy
through detached critic weights; log α through a detached log-probability) and one Adam step
with a parameter group per network, each network's gradient norm clipped separately (authors:
10). The RL update runs in float32 whatever the trainer's precision.

Subclassing point: :meth:`build_policy` returns the policy network
(:class:`~palm_lightning.nn.multitask_policies.MultiTaskPolicy`); :meth:`embeddings` returns
what to show in TensorBoard's projector.
"""

from __future__ import annotations

import copy
import time
from typing import Any

import lightning as L
import torch
import torch.nn.functional as F
from torch import Tensor

from palm_lightning.losses.sac import polyak_update, sac_critic_loss, sac_policy_loss, soft_td_target, temperature_loss
from palm_lightning.models.nan_guard import stop_on_nan
from palm_lightning.nn.multitask_policies import MultiTaskPolicy
from palm_lightning.nn.sac import TwinQ, tanh_gaussian_sample

TASK_INFO_KEY = "palm_lightning_tasks"


class MultiTaskSAC(L.LightningModule):
    """Base of the multi-task SAC modules (not trained on its own: pick a subclass).

    Args:
        obs_dim, action_dim, num_tasks: problem sizes; checked against the DataModule at set-up
            (HalfCheetah 17/6, Hopper 11/3, Walker 17/6, Ant 105/8 with contact forces).
        hidden_dim: width of the critics' (and policies') hidden layers (authors: 400).
        q_layers: hidden layers of each critic (authors: 4).
        lr: Adam learning rate of policy and critics (authors: 3e-4).
        alpha_lr: Adam learning rate of log α (authors: 3e-4).
        init_log_alpha: initial log α (authors: 0, i.e. α = 1).
        target_entropy: entropy target (``None``: −|A|, the authors' choice).
        tau: Polyak rate of the target critics, every update (authors: 0.005).
        reward_scale: factor on rewards (authors: 1).
        grad_clip: max gradient norm of each network (authors: 10; ``None``: no clipping).
        log_every_n_updates: training scalars are written this often (writing every update
            costs a noticeable share of a CPU update).
        embedding_every_n_updates: write the projector embeddings this often (0: only at the
            end of fit).
        embedding_samples_per_task: observations per task whose state embedding is written.
    """

    def __init__(
        self,
        obs_dim: int = 17,
        action_dim: int = 6,
        num_tasks: int = 10,
        hidden_dim: int = 400,
        q_layers: int = 4,
        lr: float = 3e-4,
        alpha_lr: float = 3e-4,
        init_log_alpha: float = 0.0,
        target_entropy: float | None = None,
        tau: float = 0.005,
        reward_scale: float = 1.0,
        grad_clip: float | None = 10.0,
        log_every_n_updates: int = 100,
        embedding_every_n_updates: int = 0,
        embedding_samples_per_task: int = 64,
    ) -> None:
        super().__init__()
        if type(self) is MultiTaskSAC:
            raise TypeError("MultiTaskSAC is a base class: use EAR, OHESAC or MHMTSAC (palm_lightning.models)")
        self.save_hyperparameters()
        self.automatic_optimization = False
        self.policy = self.build_policy()
        self.critic = TwinQ(obs_dim + num_tasks, action_dim, hidden_dim, q_layers)
        self.critic_target = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.nn.Parameter(torch.tensor(float(init_log_alpha)))
        self.target_entropy = float(-action_dim if target_entropy is None else target_entropy)
        self.register_buffer("updates", torch.zeros((), dtype=torch.long))
        self.register_buffer("env_steps", torch.zeros((), dtype=torch.long))
        self.task_info: dict[str, Any] = {}
        self._clock: tuple[float, int, int] | None = None

    # --- subclassing points -------------------------------------------------------------------
    def build_policy(self) -> MultiTaskPolicy:
        """The policy network ``(obs, task) → (mean, log_std)``; ``self.hparams`` holds the sizes."""
        raise NotImplementedError

    @torch.no_grad()
    def embeddings(self, obs: Tensor, task: Tensor) -> dict[str, Tensor]:
        """Matrices for TensorBoard's projector: ``{"name": (rows, dim)}`` for sample
        observations ``obs`` of tasks ``task`` (name ending ``_tasks``: one row per task)."""
        return {}

    # --- set-up -------------------------------------------------------------------------------
    def setup(self, stage: str) -> None:
        dm = getattr(self.trainer, "datamodule", None)
        env = getattr(dm, "env", None)
        if env is None or not hasattr(dm, "num_tasks"):
            if stage == "fit":
                raise TypeError(
                    f"{type(self).__name__} trains on a multi-task experience stream: use "
                    f"palm_lightning.datamodules.MultiTaskDataModule as data, not {type(dm).__name__}"
                )
            return
        hp = self.hparams
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
            "family": dm.family, "tasks": list(dm.tasks), "split": dm.split, "task_names": list(dm.task_names),
            "env_kwargs": dict(dm.env_kwargs),
        }

    def on_fit_start(self) -> None:
        self.trainer.datamodule.attach_policy(self.act)
        if self.trainer.precision in ("16-mixed", "16", "16-true"):
            raise ValueError("multi-task SAC runs its update in float32; use precision 32 or bf16-mixed, not float16")

    def configure_optimizers(self) -> torch.optim.Optimizer:
        hp = self.hparams
        groups = [
            {"params": list(self.policy.parameters()), "lr": hp.lr, "name": "policy"},
            {"params": list(self.critic.parameters()), "lr": hp.lr, "name": "critic"},
            {"params": [self.log_alpha], "lr": hp.alpha_lr, "name": "alpha"},
        ]
        return torch.optim.Adam(groups, fused=True)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TASK_INFO_KEY] = dict(self.task_info)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.task_info = dict(checkpoint.get(TASK_INFO_KEY, {}))

    # --- acting -------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: Tensor, env_steps: int, task: Tensor) -> Tensor:
        """Exploration: a sample of the tanh-Gaussian policy (the training stream calls this)."""
        with torch.autocast(obs.device.type, enabled=False):
            mean, log_std = self.policy(obs.float(), task)
            return tanh_gaussian_sample(mean, log_std)[0]

    @torch.no_grad()
    def act_deterministic(self, obs: Tensor, task: Tensor) -> Tensor:
        """Evaluation: the mean action ``tanh(μ)``, noise-free task embeddings."""
        was_training = self.policy.training
        self.policy.eval()
        try:
            with torch.autocast(obs.device.type, enabled=False):
                return torch.tanh(self.policy(obs.float(), task)[0])
        finally:
            self.policy.train(was_training)

    # --- training -----------------------------------------------------------------------------
    def one_hot(self, task: Tensor) -> Tensor:
        return F.one_hot(task, self.hparams.num_tasks).to(torch.float32)

    def sac_losses(self, batch: dict[str, Tensor]) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """Critic, policy and temperature losses of one balanced multi-task batch."""
        hp = self.hparams
        obs, next_obs, task = batch["obs"].float(), batch["next_obs"].float(), batch["task"]
        one_hot = self.one_hot(task)
        critic_input = torch.cat([obs, one_hot], dim=-1)
        alpha = self.log_alpha.exp()
        with torch.no_grad():
            next_action, next_log_prob = tanh_gaussian_sample(*self.policy(next_obs, task))
            next_q = self.critic_target(torch.cat([next_obs, one_hot], dim=-1), next_action)
            target = soft_td_target(hp.reward_scale * batch["reward"], batch["discount"], next_q, next_log_prob, alpha)
        q = self.critic(critic_input, batch["action"])
        action, log_prob = tanh_gaussian_sample(*self.policy(obs, task))
        q_pi = self.critic(critic_input, action, detached=True)
        losses = {
            "critic_loss": sac_critic_loss(q, target),
            "policy_loss": sac_policy_loss(q_pi, log_prob, alpha),
            "alpha_loss": temperature_loss(self.log_alpha, log_prob, self.target_entropy),
        }
        logs = {"train/q": q.detach().mean(), "train/target_q": target.mean(), "train/entropy": -log_prob.detach().mean(),
                "train/alpha": alpha.detach(), "train/batch_reward": batch["reward"].mean()}
        return losses, logs

    def training_step(self, batch: dict[str, Tensor], batch_idx: int) -> None:
        losses, logs = self.update(batch, self.optimizers())
        if int(self.updates) % self.hparams.log_every_n_updates == 0:
            self.env_steps.fill_(int(batch["env_steps"]))
            self.write_training_logs(batch, losses, logs)

    def update(self, batch: dict[str, Tensor], optimizer: torch.optim.Optimizer) -> tuple[dict[str, Tensor], dict[str, Tensor]]:
        """One SAC update: losses, one backward, per-network clipping, Adam, Polyak.

        Usable without a Trainer (benchmarks call it directly with ``configure_optimizers()``).
        """
        hp = self.hparams
        with torch.autocast(self.device.type, enabled=False):
            losses, logs = self.sac_losses(batch)
        if self._trainer is not None:
            stop_on_nan(self, losses, int(self.updates), int(batch["env_steps"]),
                        "Lower model.init_args.lr or set model.init_args.grad_clip.")
        optimizer.zero_grad(set_to_none=True)
        total = losses["critic_loss"] + losses["policy_loss"] + losses["alpha_loss"]
        if self._trainer is not None:
            self.manual_backward(total)
        else:
            total.backward()
        if hp.grad_clip is not None:
            logs["train/policy_grad_norm"] = torch.nn.utils.clip_grad_norm_(self.policy.parameters(), hp.grad_clip, foreach=True)
            logs["train/critic_grad_norm"] = torch.nn.utils.clip_grad_norm_(self.critic.parameters(), hp.grad_clip, foreach=True)
        optimizer.step()
        polyak_update(list(self.critic_target.parameters()), list(self.critic.parameters()), hp.tau)
        self.updates += 1
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
        names = self.task_info.get("task_names") or [str(t) for t in range(self.hparams.num_tasks)]
        for key in ("return", "velocity_error"):
            values = batch[f"task_{key}"]
            finite = values[torch.isfinite(values)]
            if finite.numel():
                metrics[f"train_{key}/mean"] = float(finite.mean())
            for name, value in zip(names, values.tolist()):
                if value == value:  # not NaN
                    metrics[f"train_{key}/{name}"] = value
        self.logger.log_metrics(metrics, step=updates)

    def on_train_batch_end(self, outputs: Any, batch: Any, batch_idx: int) -> None:
        every = self.hparams.embedding_every_n_updates
        if every and int(self.updates) % every == 0:
            self.log_embeddings()

    def on_train_end(self) -> None:
        self.log_embeddings()

    # --- evaluation ---------------------------------------------------------------------------
    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        """Deterministic episodes on every task (see ``MultiTaskDataModule.evaluate``)."""
        dm = self.trainer.datamodule
        summaries = dm.evaluate(self.act_deterministic)
        names = dm.task_names
        for key in ("return", "velocity_error", "x_velocity", "heading", "z_height"):
            per_slot: dict[int, list[float]] = {}
            for s in summaries:
                if key in s:
                    per_slot.setdefault(int(s["slot"]), []).append(s[key])
            if not per_slot:
                continue
            means = {slot: sum(v) / len(v) for slot, v in per_slot.items()}
            for slot, value in means.items():
                self.log(f"eval_{key}/{names[slot]}", value, batch_size=1, sync_dist=True)
            if key in ("return", "velocity_error"):
                self.log(f"eval/{key}_mean", sum(means.values()) / len(means), batch_size=1, sync_dist=True,
                         prog_bar=True)

    # --- embeddings ---------------------------------------------------------------------------
    def log_embeddings(self) -> None:
        """Write :meth:`embeddings` of replayed observations to TensorBoard's projector."""
        from lightning.pytorch.loggers import TensorBoardLogger

        dm = getattr(self.trainer, "datamodule", None)
        if not isinstance(self.logger, TensorBoardLogger) or dm is None or dm.buffer is None or not len(dm.buffer):
            return
        if not self.trainer.is_global_zero:
            return
        per = self.hparams.embedding_samples_per_task
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
