"""The linear-probe recipe, shared by :class:`~palm_lightning.models.LinearProbe` (Lightning, streams
images through the frozen encoder) and :func:`fit_linear_probe` (cached features, for tables).

One recipe in one place, so the two paths cannot drift apart: ``BatchNorm1d(affine=False)`` (a
parameter-free feature standardisation, as in MAE's linear probe, so one learning rate suits raw
pixels and learned features alike) followed by a ``Linear`` layer initialised with
``trunc_normal(std=0.01)``; AdamW with a cosine decay over the number of optimiser steps.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def linear_probe_head(in_dim: int, num_classes: int) -> nn.Sequential:
    """``BatchNorm1d(in_dim, affine=False) → Linear(in_dim, num_classes)``."""
    norm, linear = nn.BatchNorm1d(in_dim, affine=False, eps=1e-6), nn.Linear(in_dim, num_classes)
    nn.init.trunc_normal_(linear.weight, std=0.01)
    nn.init.zeros_(linear.bias)
    return nn.Sequential(norm, linear)


def linear_probe_optimizer(
    head: nn.Module, lr: float, weight_decay: float, total_steps: int, min_lr_ratio: float = 0.0
) -> tuple[torch.optim.Optimizer, torch.optim.lr_scheduler.LRScheduler]:
    """AdamW on the head and a per-step cosine schedule from ``lr`` to ``lr * min_lr_ratio``."""
    optimizer = torch.optim.AdamW(head.parameters(), lr=lr, weight_decay=weight_decay)
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=max(1, int(total_steps)), eta_min=lr * min_lr_ratio
    )
    return optimizer, scheduler


def topk_accuracy(scores: Tensor, labels: Tensor, k: int) -> float:
    """Fraction of rows whose label is among the ``k`` highest scores."""
    k = min(k, scores.shape[1])
    return float((scores.topk(k, dim=1).indices == labels[:, None]).any(1).float().mean())


def fit_linear_probe(
    train_features: Tensor,
    train_labels: Tensor,
    test_features: Tensor,
    test_labels: Tensor,
    num_classes: int,
    steps: int = 2000,
    batch_size: int = 256,
    lr: float = 1e-3,
    weight_decay: float = 0.0,
    min_lr_ratio: float = 0.0,
    seed: int = 0,
) -> dict[str, float]:
    """Train the probe head on cached features and return test ``acc`` and ``acc_top5``.

    Same recipe and step count as ``configs/eval/linear_fmnist.yaml`` (2 000 steps of batch 256,
    shuffled epochs with the last partial batch dropped, batch statistics while training and
    running statistics at test), but the frozen encoder runs once per image instead of once per
    step — the reason a table of many encoders fits in minutes on a CPU.
    """
    if train_features.ndim != 2 or test_features.ndim != 2 or train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"fit_linear_probe: features must be (N, D) with the same D, got train {tuple(train_features.shape)} "
            f"and test {tuple(test_features.shape)}"
        )
    if len(train_labels) != len(train_features) or len(test_labels) != len(test_features):
        raise ValueError("fit_linear_probe: one label per feature row is needed")
    generator = torch.Generator().manual_seed(seed)
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        head = linear_probe_head(train_features.shape[1], num_classes)
    optimizer, scheduler = linear_probe_optimizer(head, lr, weight_decay, steps, min_lr_ratio)
    n = len(train_features)
    batch_size = min(batch_size, n)
    head.train()
    step = 0
    while step < steps:
        order = torch.randperm(n, generator=generator)
        for start in range(0, n - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            loss = F.cross_entropy(head(train_features[index]), train_labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            scheduler.step()
            step += 1
            if step == steps:
                break
    head.eval()
    with torch.no_grad():
        scores = torch.cat([head(chunk) for chunk in test_features.split(4096)])
    return {"acc": topk_accuracy(scores, test_labels, 1), "acc_top5": topk_accuracy(scores, test_labels, 5)}
