"""OOD detection metrics from two sets of scores (torchmetrics' exact binary curves).

Convention: in-distribution samples are the POSITIVE class, scores are higher for more
in-distribution samples (as the scorers of :mod:`~palm_lightning.evaluation.ood_scorers` give).

- ``auroc``: area under the ROC curve (0.5 = chance, 1 = perfect separation);
- ``aupr_in``: average precision with in-distribution as positive;
- ``aupr_out``: average precision with OOD as positive (scores negated);
- ``fpr95``: the fraction of OOD samples accepted at the threshold that accepts 95% of the
  in-distribution samples — the smallest false-positive rate among ROC points with TPR ≥ 0.95
  (lower is better; a sample whose score equals the threshold counts as accepted).
"""

from __future__ import annotations

import torch
from torch import Tensor
from torchmetrics.functional.classification import binary_auroc, binary_average_precision, binary_roc

TPR_PERCENT = 95  # fpr95's in-distribution acceptance rate, in percent (integer arithmetic: no 0.95 rounding)


def _ranks(scores: Tensor) -> Tensor:
    """Scores → values in [0, 1] with the same order and the same ties.

    torchmetrics reads floats outside [0, 1] as logits and applies a sigmoid, which would turn
    distinct large scores (e.g. −1e6 and −2e6 Mahalanobis distances) into tied 0s; the metrics
    depend only on the order, so dense ranks scaled to [0, 1] are exact.
    """
    _, inverse = torch.unique(scores, return_inverse=True)
    top = int(inverse.max()) if inverse.numel() else 0
    return inverse.double() / max(top, 1)


def ood_metrics(in_scores: Tensor, out_scores: Tensor) -> dict[str, float]:
    """``{"auroc", "aupr_in", "aupr_out", "fpr95"}`` of in-distribution vs OOD scores (see module doc)."""
    in_scores, out_scores = in_scores.detach().flatten().cpu().double(), out_scores.detach().flatten().cpu().double()
    if in_scores.numel() == 0 or out_scores.numel() == 0:
        raise ValueError(
            f"ood_metrics needs scores of both sets, got {in_scores.numel()} in-distribution and "
            f"{out_scores.numel()} OOD scores"
        )
    if not (torch.isfinite(in_scores).all() and torch.isfinite(out_scores).all()):
        raise ValueError("ood_metrics: scores contain NaN or infinite values; check the features and the scorer")
    preds = _ranks(torch.cat([in_scores, out_scores]))
    is_in = torch.cat([torch.ones_like(in_scores), torch.zeros_like(out_scores)]).long()
    fpr, tpr, _ = binary_roc(preds, is_in)
    n_in = in_scores.numel()
    accepted = (tpr.double() * n_in).round()  # in-distribution samples accepted at each ROC point
    needed = -(-TPR_PERCENT * n_in // 100)  # ceil(0.95 · n_in)
    return {
        "auroc": float(binary_auroc(preds, is_in)),
        "aupr_in": float(binary_average_precision(preds, is_in)),
        "aupr_out": float(binary_average_precision(1.0 - preds, 1 - is_in)),
        "fpr95": float(fpr[accepted >= needed].min()),
    }
