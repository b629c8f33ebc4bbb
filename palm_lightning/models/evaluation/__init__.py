"""Evaluations of a frozen encoder: linear and kNN probes, OOD detection, and the online kNN probe."""

from palm_lightning.models.evaluation.frozen_encoder import FrozenEncoder
from palm_lightning.models.evaluation.knn_probe import KNNProbe
from palm_lightning.models.evaluation.linear_probe import LinearProbe
from palm_lightning.models.evaluation.online_probe import OnlineKNNProbe
from palm_lightning.models.evaluation.ood_detector import OODDetector

__all__ = ["FrozenEncoder", "KNNProbe", "LinearProbe", "OODDetector", "OnlineKNNProbe"]
