"""RL agents as plain modules (DrQ-v2's DDPG, SAC, DrQ(ε), MAML-TRPO, PEARL): ``act``, optimiser
groups and ``update``; the LightningModule that holds one owns optimisation, precision and
checkpointing. Each agent's settings are one frozen ``*Config`` dataclass that the module takes
whole (``agent:`` in a config)."""

from palm_lightning.agents.base import Agent, Transition
from palm_lightning.agents.ddpg import DDPGAgent, DDPGConfig
from palm_lightning.agents.drq_epsilon import DrQEpsilonAgent, DrQEpsilonConfig
from palm_lightning.agents.maml_trpo import MAMLTRPOAgent, MAMLTRPOConfig
from palm_lightning.agents.pearl import PEARLAgent, PEARLConfig
from palm_lightning.agents.sac import SACAgent, SACConfig

__all__ = [
    "Agent",
    "DDPGAgent",
    "DDPGConfig",
    "DrQEpsilonAgent",
    "DrQEpsilonConfig",
    "MAMLTRPOAgent",
    "MAMLTRPOConfig",
    "PEARLAgent",
    "PEARLConfig",
    "SACAgent",
    "SACConfig",
    "Transition",
]
