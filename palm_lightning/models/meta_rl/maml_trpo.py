"""MAML-TRPO (Finn et al., ICML 2017), one of EAR's meta-RL baselines, as a LightningModule.

The algorithm is :class:`~palm_lightning.agents.maml_trpo.MAMLTRPOAgent`'s; this module drives it
from the package's CLI: each training batch is a meta-batch of task slots
(:class:`~palm_lightning.datamodules.MetaTaskDataModule`), ``training_step`` rolls out pre- and
post-update episodes on each task's vector environment and takes one TRPO step. Manual
optimisation: TRPO chooses its own step (line search), which is then applied through a plain SGD
optimiser of rate 1 on ``grad = θ_old − θ_new``, so that Lightning counts one optimiser step per
meta-iteration (``max_steps`` = meta-iterations) and the strategy sees the update.

Validation adapts to every evaluation task (held-out ones by default) with ``inner_steps``
gradient steps and logs the return (and velocity error) before and after:
``eval/return_pre_mean``, ``eval/return_post_mean``. The adaptation curve of a checkpoint is
:func:`maml_adapt` / ``python -m palm_lightning.tools.maml_adapt``.

Paper settings (Finn et al. and ``cbfinn/maml_rl``): policy 2 × 100 ReLU, one inner step with
α = 0.1, K = 20 episodes per task, meta-batch 40, H = 200, TRPO KL 0.01, linear feature baseline,
γ 0.99, λ 1, second order. Our choices: rllab's CG (10 iterations, damping 1e-5) and line search
(0.8, 15 steps); the Fisher-vector products are exact (double backward), not finite differences.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import gymnasium
import lightning as L
import torch
from torch import Tensor

from palm_lightning.agents.maml_trpo import MAMLTRPOAgent, MAMLTRPOConfig, Params, TaskBatch
from palm_lightning.envs.rollouts import run_vector_episodes
from palm_lightning.models.ear.multitask_sac import TASK_INFO_KEY
from palm_lightning.nn.meta_policies import GaussianMLPPolicy
from palm_lightning.training.checkpoint_loading import load_lightning_module
from palm_lightning.training.config_groups import UpgradesGroupedSettings, as_config, record_groups, typed_view
from palm_lightning.training.typed_lightning import attached_datamodule, module_optimizers


@dataclass(frozen=True)
class MAMLTRPOHParams:
    """:class:`MAMLTRPO`'s hyperparameters, typed (see :class:`MAMLTRPO`)."""

    obs_dim: int
    action_dim: int
    hidden_dim: int
    num_hidden: int
    init_std: float
    agent: MAMLTRPOConfig


@torch.no_grad()
def maml_adapt(
    agent: MAMLTRPOAgent,
    env: gymnasium.vector.VectorEnv,
    steps: int = 1,
    seed: int = 0,
    eval_env: gymnasium.vector.VectorEnv | None = None,
) -> list[dict[str, float]]:
    """Adaptation curve on one task: before each inner gradient step and after the last, the
    mean return (and velocity error) of the ``env.num_envs`` episodes collected with the current
    parameters, against the environment steps spent before them (the episodes of step k are the
    data of step k + 1, as in MAML's evaluation). With ``eval_env`` the current parameters are
    also evaluated acting with the policy mean (one episode per sub-environment, not counted as
    steps): ``eval_return`` and ``eval_<key>``, comparable with the other methods' deterministic
    evaluations."""
    if steps < 0:
        raise ValueError(f"steps must be ≥ 0, got {steps}")
    params: Params = {k: v.detach().requires_grad_(True) for k, v in agent.params().items()}
    curve, env_steps = [], 0
    for step in range(steps + 1):
        episodes = agent._episodes(env, params, seed + step)
        record = {"gradient_steps": float(step), "env_steps": float(env_steps)}
        for key in episodes.summaries[0]:
            record[key] = sum(s[key] for s in episodes.summaries) / len(episodes.summaries)
        if eval_env is not None:
            greedy = run_vector_episodes(
                eval_env,
                functools.partial(agent.act, params, deterministic=True),
                agent.config.max_path_length,
                seed + 10_000,
            )
            for key in greedy.summaries[0]:
                record[f"eval_{key}"] = sum(s[key] for s in greedy.summaries) / len(greedy.summaries)
        curve.append(record)
        env_steps += episodes.steps
        if step < steps:
            adapted = agent.inner_step(params, episodes, agent.advantages(episodes), create_graph=False)
            params = {k: v.detach().requires_grad_(True) for k, v in adapted.items()}
    return curve


class MAMLTRPO(UpgradesGroupedSettings, L.LightningModule):
    """MAML with a TRPO meta-step on a Gaussian MLP policy.

    Args:
        obs_dim, action_dim: sizes (checked against the data).
        hidden_dim, num_hidden: policy mean network (paper: 100, 2).
        init_std: initial policy σ (rllab: 1).
        agent: the MAML-TRPO settings (:class:`~palm_lightning.agents.maml_trpo.MAMLTRPOConfig`:
            inner step, TRPO solver, γ, λ, horizon; the paper's and rllab's defaults), nested in a
            config: ``agent: {first_order: true, max_path_length: 100}`` or
            ``--model.init_args.agent.max_kl 0.02``.
    """

    env_steps: Tensor
    legacy_settings: ClassVar[Mapping[str, tuple[str, ...]]] = {
        name: (f"agent.{name}",)
        for name in (
            "inner_lr",
            "inner_steps",
            "first_order",
            "max_kl",
            "cg_iters",
            "cg_damping",
            "backtrack_ratio",
            "max_backtracks",
            "discount",
            "gae_lambda",
            "normalize_advantages",
            "max_path_length",
        )
    }
    """Flat settings of older checkpoints, now fields of the ``agent`` group."""

    def __init__(
        self,
        obs_dim: int = 17,
        action_dim: int = 6,
        hidden_dim: int = 100,
        num_hidden: int = 2,
        init_std: float = 1.0,
        agent: MAMLTRPOConfig = MAMLTRPOConfig(),
    ) -> None:
        super().__init__()
        agent = as_config(MAMLTRPOConfig, agent, "agent")
        self.save_hyperparameters()
        record_groups(self.hparams, agent=agent)
        self.hp = typed_view(MAMLTRPOHParams, locals())
        self.automatic_optimization = False
        self.agent = MAMLTRPOAgent(GaussianMLPPolicy(obs_dim, action_dim, hidden_dim, num_hidden, init_std), agent)
        self.register_buffer("env_steps", torch.zeros((), dtype=torch.long))
        self._rollouts = 0  # seeds successive rollouts apart
        self.task_info: dict[str, Any] = {}  # family and environment options, saved in checkpoints

    def setup(self, stage: str) -> None:
        dm = attached_datamodule(self)
        if not hasattr(dm, "vector_env"):
            if stage == "fit":
                raise TypeError(
                    f"MAMLTRPO rolls out on task vector environments: use "
                    f"palm_lightning.datamodules.MetaTaskDataModule as data, not {type(dm).__name__}"
                )
            return
        self.task_info = {"family": dm.family, "tasks": list(dm.tasks), "env_kwargs": dict(dm.env_kwargs)}
        for name, ours, theirs in (
            ("obs_dim", self.hp.obs_dim, dm.obs_dim),
            ("action_dim", self.hp.action_dim, dm.action_dim),
        ):
            if ours != theirs:
                raise ValueError(
                    f"model.{name} is {ours} but the {dm.family} data has {theirs}: "
                    f"set --model.init_args.{name} {theirs}"
                )

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[TASK_INFO_KEY] = dict(self.task_info)

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.task_info = dict(checkpoint.get(TASK_INFO_KEY, {}))

    def configure_optimizers(self) -> torch.optim.Optimizer:
        """SGD of rate 1: applies the step TRPO chose (see the module docstring)."""
        return torch.optim.SGD(self.agent.policy.parameters(), lr=1.0)

    def on_fit_start(self) -> None:
        if self.device.type != "cpu":
            raise ValueError(
                "MAMLTRPO rolls out and updates on the CPU (MuJoCo episodes): run with --trainer.accelerator cpu"
            )

    def _seed(self) -> int:
        self._rollouts += 1
        return int(torch.randint(2**31 - 1, ()).item()) + self._rollouts

    def training_step(self, batch: Tensor, batch_idx: int) -> None:
        dm = attached_datamodule(self)
        tasks: list[TaskBatch] = [self.agent.collect(dm.train_env(int(slot)), self._seed()) for slot in batch]
        parameters = list(self.agent.policy.parameters())
        before = [p.detach().clone() for p in parameters]
        logs = self.agent.meta_update(tasks)
        optimizer = module_optimizers(self)[0]
        with torch.no_grad():
            for p, old in zip(parameters, before, strict=True):
                p.grad = old - p  # SGD(lr=1) on this gradient lands on TRPO's choice
                p.copy_(old)
        optimizer.step()
        optimizer.zero_grad()
        steps = sum(t.post.steps + sum(e.steps for e, _ in t.inner) for t in tasks)
        self.env_steps += steps
        pre = [s["return"] for t in tasks for s in t.inner[0][0].summaries]
        post = [s["return"] for t in tasks for s in t.post.summaries]
        logs["train/return_pre"] = sum(pre) / len(pre)
        logs["train/return_post"] = sum(post) / len(post)
        logs["charts/env_steps"] = float(self.env_steps)
        if self.logger is not None:
            self.logger.log_metrics(logs, step=self.global_step)

    def validation_step(self, batch: Tensor, batch_idx: int) -> None:
        dm = attached_datamodule(self)
        pre: dict[str, list[float]] = {}
        post: dict[str, list[float]] = {}
        for slot in batch.tolist():
            task, name = dm.eval_tasks[slot], dm.eval_task_names[slot]
            with torch.inference_mode(False), torch.enable_grad():
                curve = maml_adapt(
                    self.agent, dm.vector_env(task, dm.eval_split), self.hp.agent.inner_steps, 10_000 + slot
                )
            for key in ("return", "velocity_error"):
                if key in curve[0]:
                    self.log(f"eval_{key}_post/{name}", curve[-1][key], batch_size=1)
                    pre.setdefault(key, []).append(curve[0][key])
                    post.setdefault(key, []).append(curve[-1][key])
        for key in pre:
            self.log(f"eval/{key}_pre_mean", sum(pre[key]) / len(pre[key]), batch_size=1)
            self.log(f"eval/{key}_post_mean", sum(post[key]) / len(post[key]), batch_size=1, prog_bar=True)

    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str = "cpu") -> MAMLTRPO:
        """Load a trained MAML-TRPO, with clear errors for a missing file or another module's."""

        def check(raw: Mapping[str, Any]) -> None:
            if "agent.policy.log_std" not in raw["state_dict"]:
                raise ValueError(f"{path} is not a MAML-TRPO checkpoint (no Gaussian policy)")

        model = load_lightning_module(cls, path, map_location, check=check, hint="pass the .ckpt of a MAML-TRPO run")
        model.eval()
        return model
