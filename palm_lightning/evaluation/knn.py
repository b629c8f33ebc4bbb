"""Weighted k-nearest-neighbour classification on cosine similarity (the kNN probe).

The vote of InstDisc (Wu et al. 2018), used by solo-learn's online kNN: each of the ``k`` most
similar bank features votes for its label with weight ``exp(similarity / temperature)``. A
non-parametric probe: nothing is trained, so it measures the feature geometry itself.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

QUERY_CHUNK = 1024  # queries per similarity matrix: bounds memory at QUERY_CHUNK × bank size


def knn_votes(
    bank: Tensor, bank_labels: Tensor, queries: Tensor, num_classes: int, k: int = 20, temperature: float = 0.07
) -> Tensor:
    """Weighted votes ``(Q, num_classes)`` of the ``k`` nearest bank features of every query.

    The votes (not only their argmax) are returned so that top-k accuracies can be computed.
    ``k`` larger than the bank uses the whole bank. Everything runs on ``queries``' device.
    """
    if bank.ndim != 2 or queries.ndim != 2 or bank.shape[1] != queries.shape[1]:
        raise ValueError(
            f"bank and queries must be (N, D) and (Q, D) features of the same D, got {tuple(bank.shape)} "
            f"and {tuple(queries.shape)}"
        )
    if bank.shape[0] == 0 or bank_labels.shape[0] != bank.shape[0]:
        raise ValueError(
            f"the bank needs at least one feature and one label per feature, got {bank.shape[0]} features "
            f"and {bank_labels.shape[0]} labels"
        )
    if k < 1 or temperature <= 0:
        raise ValueError(f"k must be positive and temperature > 0, got k={k}, temperature={temperature}")
    device = queries.device
    bank = F.normalize(bank.to(device).float(), dim=1)
    bank_labels = bank_labels.to(device).long()
    votes = []
    for chunk in F.normalize(queries.float(), dim=1).split(QUERY_CHUNK):
        similarity, index = (chunk @ bank.T).topk(min(k, bank.shape[0]), dim=1)
        weights = (similarity / temperature).exp()
        chunk_votes = torch.zeros(chunk.shape[0], num_classes, device=device)
        chunk_votes.scatter_add_(1, bank_labels[index], weights)
        votes.append(chunk_votes)
    if not votes:
        return torch.zeros(0, num_classes, device=device)
    return torch.cat(votes)


def knn_classify(
    bank: Tensor, bank_labels: Tensor, queries: Tensor, num_classes: int, k: int = 20, temperature: float = 0.07
) -> Tensor:
    """The predicted class of every query: the argmax of :func:`knn_votes`."""
    return knn_votes(bank, bank_labels, queries, num_classes, k, temperature).argmax(1)
