"""Multi-task SAC on task families: EAR (task embeddings on a hypersphere) and its OHE / MHMT baselines."""

from palm_lightning.models.ear.baselines import MHMTSAC, OHESAC
from palm_lightning.models.ear.ear import EAR
from palm_lightning.models.ear.multitask_sac import MultiTaskSAC

__all__ = ["EAR", "MHMTSAC", "OHESAC", "MultiTaskSAC"]
