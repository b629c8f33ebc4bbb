"""Meta-RL baselines on EAR's task families: PEARL and MAML-TRPO."""

from palm_lightning.models.meta_rl.maml_trpo import MAMLTRPO
from palm_lightning.models.meta_rl.pearl import PEARL

__all__ = ["MAMLTRPO", "PEARL"]
