"""PALM with a soft actor-critic explorer in place of DrQ-v2's DDPG: the agent ablation.

Why: on ``configs/palm.yaml`` the DDPG actor's tanh saturates and every episode of a class
converges to the same frame, so the APT agent shows the encoder *less* variety than uniform random
actions do (``python -m palm_lightning.tools.policy_frames`` shows it; docs/results/representation.md
has the measurement). SAC keeps its policy's entropy at a target by its learned temperature α: the
agent can still steer towards novel frames, but cannot collapse to one deterministic action.
Everything else is PALM's (stream, representation, reward, probe, export).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from palm_lightning.agents.sac import SACAgent, SACConfig
from palm_lightning.models.palm.palm import PALM
from palm_lightning.nn.multitask_policies import OneHotPolicy
from palm_lightning.training.config_groups import as_config, record_groups


class PALMSAC(PALM):
    """PALM whose exploration agent is SAC with automatic temperature (Haarnoja et al., 2018).

    The policy is a tanh-Gaussian MLP on the (detached) representation, ``sac.q_layers`` hidden
    layers × ``sac.hidden_dim``; the critic twin Q networks of the same size on ``(representation,
    action)``, with a Polyak target (rate ``sac.tau``). PALM's ``agent`` group (DDPG's settings) is
    unused. Our choices where nothing is published for PALM: SAC's usual rates (3e-4), α starting at
    1, target entropy −|A|; the widths, Polyak rate and clipping of PALM's DDPG (1024 wide, two
    hidden layers, 0.01, no clipping).

    Args:
        sac: the SAC agent's settings (:class:`~palm_lightning.agents.sac.SACConfig`), nested in a
            config: ``sac: {lr: 3e-4, init_log_alpha: 0.0}``.
        **kwargs: :class:`~palm_lightning.models.palm.palm.PALM`'s arguments.
    """

    legacy_settings: ClassVar[Mapping[str, tuple[str, ...]]] = {
        **PALM.legacy_settings,
        "hidden_dim": ("agent.hidden_dim", "sac.hidden_dim"),  # PALMSAC's networks had PALM's width ...
        "critic_tau": ("agent.critic_tau", "sac.tau"),  # ... Polyak rate ...
        "gradient_clip_val": ("gradient_clip_val", "sac.grad_clip"),  # ... and clipping
        "sac_lr": ("sac.lr",),
        "alpha_lr": ("sac.alpha_lr",),
        "init_log_alpha": ("sac.init_log_alpha",),
        "target_entropy": ("sac.target_entropy",),
        "sac_hidden_layers": ("sac.q_layers",),
    }

    def __init__(
        self,
        *args: Any,
        sac: SACConfig = SACConfig(hidden_dim=1024, q_layers=2, tau=0.01, grad_clip=None),
        **kwargs: Any,
    ) -> None:
        super().__init__(*args, **kwargs)
        self.sac = as_config(SACConfig, sac, "sac")
        record_groups(self.hparams, sac=self.sac)

    def build_agent(self) -> SACAgent:  # type: ignore[override]  # PALM's returns its DDPGAgent
        sac = self.sac
        policy = OneHotPolicy(self.encoder.out_dim, self.hp.action_dim, 1, sac.hidden_dim, sac.q_layers)
        return SACAgent(policy, self.encoder.out_dim, self.hp.action_dim, num_tasks=1, config=sac)
