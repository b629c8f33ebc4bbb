"""PEARL (Rakelly et al., ICML 2019): off-policy meta-RL by probabilistic context variables, one
of EAR's meta-RL baselines.

A context encoder (:class:`~palm_lightning.nn.context_encoder.ContextEncoder`) turns transitions
of a task into a Gaussian posterior over a latent task code z (product of per-transition
factors); SAC's policy and critics are conditioned on a sample of z. Training (per update, all
training tasks of the stream at once): z ~ q(z | context of its task), critic and policy losses on
the task's RL batch, plus ``kl_lambda · Σ_tasks KL(q(z|c) ‖ N(0, I))``; the critic's gradient
flows into the encoder, the policy's does not. Collection draws z per episode: ``prior_episodes``
episodes with z ~ N(0, I), then ``posterior_episodes`` with z ~ q(z | the task's recent context).
Adaptation to a held-out task: ``python -m palm_lightning.tools.pearl_adapt`` (posterior sampling).

Settings from the paper and its code (``katerakelly/oyster``): latent size 5, networks of 300 units
(3 hidden layers), encoder 3 × 200, Adam 3e-4 everywhere, reward scale 5, KL weight 0.1, τ 0.005,
γ 0.99, RL batch 256 per task, context batch 100 (HalfCheetah-Vel). Departures, each a parameter:
the package's twin-Q SAC with target critics instead of PEARL's SAC-v1 value network, with α fixed
at 1 (``agent.alpha_lr 0``: PEARL's entropy weight is set through the reward scale) unless
``agent.alpha_lr`` is given; every training task in every batch (PEARL samples a meta-batch of 16
out of 100); collection interleaved with updates (PEARL alternates rounds); the context is a recent
window of the task's replay (see :class:`~palm_lightning.datamodules.streams.pearl.PEARLDataModule`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, ClassVar, cast

import torch
from torch import Tensor

from palm_lightning.agents.base import Transition
from palm_lightning.agents.pearl import PEARLAgent, PEARLConfig
from palm_lightning.models.ear.multitask_sac import MultiTaskSAC, MultiTaskSACHParams
from palm_lightning.nn.context_encoder import ContextEncoder, context_dim, gaussian_kl_to_standard_normal
from palm_lightning.nn.meta_policies import LatentConditionedPolicy
from palm_lightning.nn.sac import tanh_gaussian_sample
from palm_lightning.training.checkpoint_loading import load_lightning_module
from palm_lightning.training.config_groups import as_config
from palm_lightning.training.typed_lightning import attached_datamodule


@dataclass(frozen=True)
class PEARLParams:
    """PEARL's own hyperparameters (see :class:`PEARL`)."""

    latent_dim: int
    encoder_hidden_dim: int
    encoder_layers: int
    policy_layers: int
    kl_lambda: float
    use_next_obs: bool
    deterministic_encoder: bool
    prior_episodes: int
    posterior_episodes: int


@dataclass(frozen=True)
class PEARLHParams(MultiTaskSACHParams, PEARLParams):
    """:class:`PEARL`'s hyperparameters, typed: :class:`MultiTaskSAC`'s (its ``agent`` a
    :class:`~palm_lightning.agents.pearl.PEARLConfig`) and PEARL's own."""

    agent: PEARLConfig


def _shallow_fields(params: object) -> dict[str, Any]:
    """A dataclass's fields by name, nested dataclasses kept (``asdict`` would turn them to dicts)."""
    return {f.name: getattr(params, f.name) for f in fields(params)}  # type: ignore[arg-type]  # a dataclass


class PEARL(MultiTaskSAC):
    """PEARL on the multi-task SAC machinery; train with :class:`~palm_lightning.datamodules.
    PEARLDataModule`.

    Args:
        latent_dim: size of z (paper: 5).
        encoder_hidden_dim, encoder_layers: the encoder MLP (PEARL's code: 200, 3).
        policy_layers: hidden layers of the policy (PEARL: 3), ``agent.hidden_dim`` wide (the
            critics' width: PEARL uses 300 for both).
        kl_lambda: weight of the KL term (paper: 0.1), summed over the batch's tasks as in
            PEARL's code.
        use_next_obs: ``s'`` in the context (the paper's (s, a, r, s'); PEARL's code: off by
            default). Must match the data's.
        deterministic_encoder: the paper's ablation without the information bottleneck (z = mean
            of the per-transition codes, no KL).
        prior_episodes, posterior_episodes: collection cycle per environment (our choice, 1 and 1:
            PEARL collects 400 prior steps then 400–600 posterior steps per sampled task).
        agent: the agent's settings (:class:`~palm_lightning.agents.pearl.PEARLConfig`: SAC's with
            PEARL's defaults, 300-wide networks of 3 hidden layers, reward scale 5, α fixed
            (``alpha_lr`` 0), no clipping, and the encoder's Adam rate ``context_lr`` 3e-4),
            nested in a config: ``agent: {hidden_dim: 256, context_lr: 1e-3}``.
        **kwargs: the other :class:`MultiTaskSAC` arguments.
    """

    hp: PEARLHParams
    legacy_settings: ClassVar[Mapping[str, tuple[str, ...]]] = {
        **MultiTaskSAC.legacy_settings,
        "context_lr": ("agent.context_lr",),
    }
    """Flat settings of older checkpoints (same names) and the group they now live in."""

    def __init__(
        self,
        latent_dim: int = 5,
        encoder_hidden_dim: int = 200,
        encoder_layers: int = 3,
        policy_layers: int = 3,
        kl_lambda: float = 0.1,
        use_next_obs: bool = True,
        deterministic_encoder: bool = False,
        prior_episodes: int = 1,
        posterior_episodes: int = 1,
        agent: PEARLConfig = PEARLConfig(),
        **kwargs: Any,
    ) -> None:
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be ≥ 1, got {latent_dim}")
        if prior_episodes < 0 or posterior_episodes < 0 or prior_episodes + posterior_episodes == 0:
            raise ValueError("prior_episodes and posterior_episodes must be ≥ 0 and not both 0")
        if kl_lambda < 0:
            raise ValueError(f"kl_lambda must be ≥ 0, got {kl_lambda}")
        agent = as_config(PEARLConfig, agent, "agent")
        # read by build_agent, which MultiTaskSAC.__init__ calls
        self._pearl = PEARLParams(
            latent_dim=latent_dim,
            encoder_hidden_dim=encoder_hidden_dim,
            encoder_layers=encoder_layers,
            policy_layers=policy_layers,
            kl_lambda=kl_lambda,
            use_next_obs=use_next_obs,
            deterministic_encoder=deterministic_encoder,
            prior_episodes=prior_episodes,
            posterior_episodes=posterior_episodes,
        )
        super().__init__(agent=agent, **kwargs)
        self.hp = PEARLHParams(**_shallow_fields(self.hp), **_shallow_fields(self._pearl))
        self._acting_z: Tensor | None = None  # one z per collecting environment
        self._acting_episodes: Tensor | None = None
        self._eval_z: tuple[int, Tensor] | None = None  # (env_steps, posterior means per task)

    # --- networks -----------------------------------------------------------------------------
    def build_policy(self) -> LatentConditionedPolicy:
        hp, extra = self.hp, self._pearl
        return LatentConditionedPolicy(
            hp.obs_dim, extra.latent_dim, hp.action_dim, hp.agent.hidden_dim, extra.policy_layers
        )

    def build_agent(self) -> PEARLAgent:
        hp, extra = self.hp, self._pearl
        encoder = ContextEncoder(
            context_dim(hp.obs_dim, hp.action_dim, extra.use_next_obs),
            extra.latent_dim,
            extra.encoder_hidden_dim,
            extra.encoder_layers,
            deterministic=extra.deterministic_encoder,
        )
        # self.hp is still MultiTaskSAC's here (built before PEARL's): its agent is the PEARLConfig passed on
        config = as_config(PEARLConfig, hp.agent, "agent")
        return PEARLAgent(encoder, self.build_policy(), hp.obs_dim, hp.action_dim, config)

    @property
    def encoder(self) -> ContextEncoder:
        return cast(PEARLAgent, self.agent).encoder

    @property
    def policy(self) -> LatentConditionedPolicy:
        return cast(LatentConditionedPolicy, self.agent.policy)

    def setup(self, stage: str) -> None:
        super().setup(stage)
        dm = attached_datamodule(self)
        if stage == "fit" and not hasattr(dm, "context_batch"):
            raise TypeError(
                f"PEARL needs context batches: use palm_lightning.datamodules.PEARLDataModule as data, "
                f"not {type(dm).__name__}"
            )
        if dm is not None and getattr(dm, "use_next_obs", self.hp.use_next_obs) != self.hp.use_next_obs:
            raise ValueError(
                f"model.use_next_obs is {self.hp.use_next_obs} but data.use_next_obs is {dm.use_next_obs}: "
                "set both to the same value"
            )

    # --- task inference -----------------------------------------------------------------------
    def posterior(self, context: Tensor) -> tuple[Tensor, Tensor]:
        """``q(z | context)``: mean and variance ``(T, latent_dim)`` for context ``(T, N, D)``."""
        return self.encoder(context.to(self.device).float())

    def agent_batch(self, batch: dict[str, Tensor]) -> tuple[Transition, dict[str, Tensor]]:
        """z sampled per task from its context batch, spread over the task's transitions; the
        KL of every task's posterior to the prior as the extra loss."""
        if "context" not in batch:
            raise KeyError("PEARL batches need 'context' (T, C, D): use PEARLDataModule")
        mean, variance = self.posterior(batch["context"])
        extra: dict[str, Tensor] = {}
        if self.hp.deterministic_encoder:
            z = mean
        else:
            z = ContextEncoder.sample(mean, variance)
            extra["kl_loss"] = self.hp.kl_lambda * gaussian_kl_to_standard_normal(mean, variance).sum()
        transition = Transition(
            batch["obs"], batch["action"], batch["reward"], batch["discount"], batch["next_obs"], task=z[batch["task"]]
        )
        return transition, extra

    # --- acting -------------------------------------------------------------------------------
    @torch.no_grad()
    def act_with_z(self, obs: Tensor, z: Tensor, deterministic: bool = False) -> Tensor:
        """Actions for observations ``(B, O)`` and codes ``z`` ``(B, L)`` (or one ``(L,)`` for all)."""
        obs = obs.to(self.device).float()
        z = z.to(self.device).float()
        if z.dim() == 1:
            z = z.expand(obs.shape[0], -1)
        mean, log_std = self.policy(obs, z)
        return torch.tanh(mean) if deterministic else tanh_gaussian_sample(mean, log_std)[0]

    @torch.no_grad()
    def act(
        self,
        obs: Tensor,
        env_steps: int,
        eval_mode: bool = False,
        task: Tensor | None = None,
        episode_start: Tensor | None = None,
    ) -> Tensor:
        """The stream's policy. Collection: each environment keeps one z per episode, drawn at its
        start from the prior or the task's posterior (the cycle of ``prior_episodes`` and
        ``posterior_episodes``). ``eval_mode`` (validation on training tasks): the posterior mean
        of each task given its recent context, deterministic actions."""
        if task is None:
            raise ValueError("PEARL acts per task: pass the task slot of every environment")
        task = task.to(self.device)
        if eval_mode:
            means = self._eval_z[1] if self._eval_z is not None and self._eval_z[0] == env_steps else None
            if means is None:
                means = self.posterior(attached_datamodule(self).context_batch())[0]
                self._eval_z = (env_steps, means)
            return self.act_with_z(obs, means[task], deterministic=True)
        n, latent = obs.shape[0], self.hp.latent_dim
        if self._acting_z is None or self._acting_z.shape[0] != n or self._acting_episodes is None:
            self._acting_z = torch.randn(n, latent, device=self.device)
            self._acting_episodes = torch.zeros(n, dtype=torch.long, device=self.device)
            episode_start = torch.zeros(n, dtype=torch.bool, device=self.device)
        if episode_start is not None and episode_start.any():
            start = episode_start.to(self.device)
            cycle = self.hp.prior_episodes + self.hp.posterior_episodes
            from_posterior = start & (self._acting_episodes % cycle >= self.hp.prior_episodes)
            z = torch.randn(n, latent, device=self.device)
            if from_posterior.any():
                mean, variance = self.posterior(attached_datamodule(self).context_batch())
                z = torch.where(from_posterior[:, None], mean[task] + variance[task].sqrt() * z, z)
            self._acting_z = torch.where(start[:, None], z, self._acting_z)
            self._acting_episodes += start.long()
        return self.act_with_z(obs, self._acting_z)

    # --- loading for the tools ------------------------------------------------------------------
    @classmethod
    def from_checkpoint(cls, path: str | Path, map_location: str = "cpu") -> PEARL:
        """Load a trained PEARL, with clear errors for a missing file or another module's."""

        def check(raw: Mapping[str, Any]) -> None:
            if not any(k.startswith("agent.encoder.") for k in raw["state_dict"]):
                raise ValueError(f"{path} is not a PEARL checkpoint (no context encoder)")

        model = load_lightning_module(cls, path, map_location, check=check, hint="pass the .ckpt of a PEARL run")
        model.eval()
        return model
