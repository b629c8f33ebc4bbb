"""Downstream evaluation on frozen encoders, without Lightning: features, kNN votes, OOD scorers,
OOD metrics, the linear-probe recipe and the AtariARI state probe (the LightningModules KNNProbe,
OODDetector and AtariStateProbe are thin wrappers around these)."""

from palm_lightning.evaluation.features import encode, extract_features
from palm_lightning.evaluation.knn import knn_classify, knn_votes
from palm_lightning.evaluation.linear import fit_linear_probe, linear_probe_head, linear_probe_optimizer, topk_accuracy
from palm_lightning.evaluation.ood_metrics import ood_metrics
from palm_lightning.evaluation.ood_scorers import SCORERS, KNNDistanceScorer, MahalanobisScorer, OODScorer
from palm_lightning.evaluation.state_probe import fit_state_heads, label_entropy, weighted_f1

__all__ = [
    "SCORERS",
    "KNNDistanceScorer",
    "MahalanobisScorer",
    "OODScorer",
    "encode",
    "extract_features",
    "fit_linear_probe",
    "fit_state_heads",
    "knn_classify",
    "knn_votes",
    "label_entropy",
    "linear_probe_head",
    "linear_probe_optimizer",
    "ood_metrics",
    "topk_accuracy",
    "weighted_f1",
]
