"""CURL's contrastive objective (Srinivas, Laskin & Abbeel, 2020): bilinear InfoNCE.

A batch of queries ``q`` (online networks) and keys ``k`` (momentum networks, no gradient) where
``k[i]`` is the positive of ``q[i]`` and every other key of the batch is a negative.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def bilinear_logits(query: Tensor, key: Tensor, weight: Tensor, temperature: float = 1.0) -> Tensor:
    """``(q W kᵀ) / temperature`` as a ``(B, B)`` float32 matrix, each row shifted by its maximum
    (as CURL's code; the softmax is unchanged, the exponentials cannot overflow)."""
    logits = (query.float() @ weight.float()) @ key.detach().float().T / temperature
    return logits - logits.max(dim=1, keepdim=True).values.detach()


def curl_loss(query: Tensor, key: Tensor, weight: Tensor, temperature: float = 1.0) -> tuple[Tensor, Tensor]:
    """InfoNCE over in-batch negatives (labels = the diagonal). Returns the loss and the accuracy
    of picking the positive among the batch (a free sanity metric: 1/B at chance)."""
    if query.shape != key.shape:
        raise ValueError(f"query and key batches differ: {tuple(query.shape)} vs {tuple(key.shape)}")
    logits = bilinear_logits(query, key, weight, temperature)
    labels = torch.arange(logits.shape[0], device=logits.device)
    loss = F.cross_entropy(logits, labels)
    accuracy = (logits.detach().argmax(1) == labels).float().mean()
    return loss, accuracy
