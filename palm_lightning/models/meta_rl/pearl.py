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
at 1 (``alpha_lr 0``: PEARL's entropy weight is set through the reward scale) unless ``alpha_lr`` is
given; every training task in every batch (PEARL samples a meta-batch of 16 out of 100);
collection interleaved with updates (PEARL alternates rounds); the context is a recent window of
the task's replay (see :class:`~palm_lightning.datamodules.streams.pearl.PEARLDataModule`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

import torch
from torch import Tensor

from palm_lightning.agents.base import Transition
from palm_lightning.agents.pearl import PEARLAgent
from palm_lightning.models.ear.multitask_sac import MultiTaskSAC, MultiTaskSACHParams
from palm_lightning.nn.context_encoder import ContextEncoder, context_dim, gaussian_kl_to_standard_normal
from palm_lightning.nn.meta_policies import LatentConditionedPolicy
from palm_lightning.nn.sac import tanh_gaussian_sample
from palm_lightning.training.typed_lightning import attached_datamodule


@dataclass(frozen=True)
class PEARLParams:
    """PEARL's own hyperparameters (see :class:`PEARL`)."""

    latent_dim: int
    encoder_hidden_dim: int
    encoder_layers: int
    policy_layers: int
    context_lr: float
    kl_lambda: float
    use_next_obs: bool
    deterministic_encoder: bool
    prior_episodes: int
    posterior_episodes: int


@dataclass(frozen=True)
class PEARLHParams(MultiTaskSACHParams, PEARLParams):
    """:class:`PEARL`'s hyperparameters, typed: :class:`MultiTaskSAC`'s and PEARL's own."""


class PEARL(MultiTaskSAC):
    """PEARL on the multi-task SAC machinery; train with :class:`~palm_lightning.datamodules.
    PEARLDataModule`.

    Args:
        latent_dim: size of z (paper: 5).
        encoder_hidden_dim, encoder_layers: the encoder MLP (PEARL's code: 200, 3).
        policy_layers: hidden layers of the policy (PEARL: 3, ``hidden_dim`` wide).
        context_lr: Adam rate of the encoder (3e-4).
        kl_lambda: weight of the KL term (paper: 0.1), summed over the batch's tasks as in
            PEARL's code.
        use_next_obs: ``s'`` in the context (the paper's (s, a, r, s'); PEARL's code: off by
            default). Must match the data's.
        deterministic_encoder: the paper's ablation without the information bottleneck (z = mean
            of the per-transition codes, no KL).
        prior_episodes, posterior_episodes: collection cycle per environment (our choice, 1 and 1:
            PEARL collects 400 prior steps then 400–600 posterior steps per sampled task).
        hidden_dim, q_layers, reward_scale, alpha_lr, grad_clip: :class:`MultiTaskSAC`'s, with
            PEARL's defaults (300, 3, 5, 0 = fixed α, no clipping).
        **kwargs: the other :class:`MultiTaskSAC` arguments.
    """

    hp: PEARLHParams

    def __init__(
        self,
        latent_dim: int = 5,
        encoder_hidden_dim: int = 200,
        encoder_layers: int = 3,
        policy_layers: int = 3,
        context_lr: float = 3e-4,
        kl_lambda: float = 0.1,
        use_next_obs: bool = True,
        deterministic_encoder: bool = False,
        prior_episodes: int = 1,
        posterior_episodes: int = 1,
        hidden_dim: int = 300,
        q_layers: int = 3,
        reward_scale: float = 5.0,
        alpha_lr: float = 0.0,
        grad_clip: float | None = None,
        **kwargs: Any,
    ) -> None:
        if latent_dim < 1:
            raise ValueError(f"latent_dim must be ≥ 1, got {latent_dim}")
        if prior_episodes < 0 or posterior_episodes < 0 or prior_episodes + posterior_episodes == 0:
            raise ValueError("prior_episodes and posterior_episodes must be ≥ 0 and not both 0")
        if kl_lambda < 0:
            raise ValueError(f"kl_lambda must be ≥ 0, got {kl_lambda}")
        # read by build_agent, which MultiTaskSAC.__init__ calls
        self._pearl = PEARLParams(
            latent_dim=latent_dim,
            encoder_hidden_dim=encoder_hidden_dim,
            encoder_layers=encoder_layers,
            policy_layers=policy_layers,
            context_lr=context_lr,
            kl_lambda=kl_lambda,
            use_next_obs=use_next_obs,
            deterministic_encoder=deterministic_encoder,
            prior_episodes=prior_episodes,
            posterior_episodes=posterior_episodes,
        )
        super().__init__(
            hidden_dim=hidden_dim,
            q_layers=q_layers,
            reward_scale=reward_scale,
            alpha_lr=alpha_lr,
            grad_clip=grad_clip,
            **kwargs,
        )
        self.hp = PEARLHParams(**asdict(self.hp), **asdict(self._pearl))
        self._acting_z: Tensor | None = None  # one z per collecting environment
        self._acting_episodes: Tensor | None = None
        self._eval_z: tuple[int, Tensor] | None = None  # (env_steps, posterior means per task)

    # --- networks -----------------------------------------------------------------------------
    def build_policy(self) -> LatentConditionedPolicy:
        hp, extra = self.hp, self._pearl
        return LatentConditionedPolicy(hp.obs_dim, extra.latent_dim, hp.action_dim, hp.hidden_dim, extra.policy_layers)

    def build_agent(self) -> PEARLAgent:
        hp, extra = self.hp, self._pearl
        encoder = ContextEncoder(
            context_dim(hp.obs_dim, hp.action_dim, extra.use_next_obs),
            extra.latent_dim,
            extra.encoder_hidden_dim,
            extra.encoder_layers,
            deterministic=extra.deterministic_encoder,
        )
        return PEARLAgent(
            encoder,
            self.build_policy(),
            hp.obs_dim,
            hp.action_dim,
            hp.hidden_dim,
            hp.q_layers,
            context_lr=extra.context_lr,
            **self.sac_optimisation_kwargs(),
        )

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
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no checkpoint at {path}: pass the .ckpt of a PEARL run")
        try:
            raw = torch.load(path, map_location="cpu", weights_only=False)
        except Exception as error:  # any unreadable file gets the same message
            raise ValueError(f"{path} is not a readable checkpoint ({type(error).__name__}: {error})") from error
        if not isinstance(raw, dict) or not any(k.startswith("agent.encoder.") for k in raw.get("state_dict", {})):
            raise ValueError(f"{path} is not a PEARL checkpoint (no context encoder)")
        model = cls.load_from_checkpoint(path, map_location=map_location)
        model.eval()
        return model
