"""RL agents as plain modules (DrQ-v2's DDPG, SAC): ``act``, optimiser groups and ``update``; the
LightningModule that holds one owns optimisation, precision and checkpointing."""

from palm_lightning.agents.base import Agent, Transition
from palm_lightning.agents.ddpg import DDPGAgent
from palm_lightning.agents.drq_epsilon import DrQEpsilonAgent
from palm_lightning.agents.maml_trpo import MAMLTRPOAgent
from palm_lightning.agents.pearl import PEARLAgent
from palm_lightning.agents.sac import SACAgent

__all__ = ["Agent", "DDPGAgent", "DrQEpsilonAgent", "MAMLTRPOAgent", "PEARLAgent", "SACAgent", "Transition"]
