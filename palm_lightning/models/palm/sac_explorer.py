"""PALM with a soft actor-critic explorer in place of DrQ-v2's DDPG: the agent ablation.

Why: on ``configs/palm.yaml`` the DDPG actor's tanh saturates and every episode of a class
converges to the same frame, so the APT agent shows the encoder *less* variety than uniform random
actions do (``python -m palm_lightning.tools.policy_frames`` shows it; docs/results/representation.md
has the measurement). SAC keeps its policy's entropy at a target by its learned temperature α: the
agent can still steer towards novel frames, but cannot collapse to one deterministic action.
Everything else is PALM's (stream, representation, reward, probe, export).
"""

from __future__ import annotations

from dataclasses import dataclass

from palm_lightning.agents.sac import SACAgent
from palm_lightning.models.palm.palm import PALM
from palm_lightning.nn.multitask_policies import OneHotPolicy


@dataclass(frozen=True)
class SACSettings:
    """The SAC agent's own hyperparameters (PALM's ``hidden_dim`` and ``critic_tau`` are shared)."""

    lr: float
    alpha_lr: float
    init_log_alpha: float
    target_entropy: float | None
    hidden_layers: int


class PALMSAC(PALM):
    """PALM whose exploration agent is SAC with automatic temperature (Haarnoja et al., 2018).

    The policy is a tanh-Gaussian MLP on the (detached) representation, ``hidden_layers`` ×
    ``hidden_dim``; the critic twin Q networks of the same size on ``(representation, action)``,
    with a Polyak target (rate ``critic_tau``). DDPG's ``stddev_schedule``/``stddev_clip``/
    ``feature_dim`` are unused. Our choices where nothing is published for PALM: SAC's usual rates
    (3e-4), α starting at 1, target entropy −|A|.

    Args:
        sac_lr: Adam rate of policy and critics (3e-4).
        alpha_lr: Adam rate of log α (3e-4).
        init_log_alpha: initial log α (0: α = 1).
        target_entropy: the entropy α holds the policy at (``None``: −|A|, SAC's default).
        sac_hidden_layers: hidden layers of policy and critics (2).
        **kwargs: :class:`~palm_lightning.models.palm.palm.PALM`'s arguments.
    """

    def __init__(
        self,
        *args,
        sac_lr: float = 3e-4,
        alpha_lr: float = 3e-4,
        init_log_alpha: float = 0.0,
        target_entropy: float | None = None,
        sac_hidden_layers: int = 2,
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if sac_hidden_layers < 1:
            raise ValueError(f"sac_hidden_layers must be >= 1, got {sac_hidden_layers}")
        self.sac = SACSettings(sac_lr, alpha_lr, init_log_alpha, target_entropy, sac_hidden_layers)

    def build_agent(self) -> SACAgent:  # type: ignore[override]  # PALM's returns its DDPGAgent
        hp, sac = self.hp, self.sac
        policy = OneHotPolicy(self.encoder.out_dim, hp.action_dim, 1, hp.hidden_dim, sac.hidden_layers)
        return SACAgent(
            policy,
            self.encoder.out_dim,
            hp.action_dim,
            num_tasks=1,
            hidden_dim=hp.hidden_dim,
            q_layers=sac.hidden_layers,
            lr=sac.lr,
            alpha_lr=sac.alpha_lr,
            init_log_alpha=sac.init_log_alpha,
            target_entropy=sac.target_entropy,
            tau=hp.critic_tau,
            grad_clip=hp.gradient_clip_val,
        )
