"""The AtariARI state probe without Lightning: label entropy and the variables it keeps, weighted F1,
category means, and one linear 256-way classifier per RAM variable trained on cached features.

The classifiers of one game are held as one weight tensor ``(V, 256, D)`` and trained together:
each variable's loss reaches only its own slice, and Adam scales every parameter on its own, so
this is V independent probes at the cost of one batched product. Early stopping is per variable,
as in AtariARI: a variable whose validation accuracy has not improved for ``patience`` epochs keeps
its best weights while the others train on.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

NUM_VALUES = 256  # a RAM byte


def label_entropy(labels: Tensor) -> Tensor:
    """Natural-log entropy of each column's empirical value distribution: ``(N, V)`` → ``(V,)``
    (AtariARI drops variables below 0.6 nats: near-constant ones are no test of a representation)."""
    if labels.ndim != 2:
        raise ValueError(f"labels must be (N, V), got {tuple(labels.shape)}")
    out = []
    for column in labels.long().T:
        p = torch.bincount(column, minlength=1).double()
        p = p[p > 0] / len(column)
        out.append(float(-(p * p.log()).sum()) if len(column) else 0.0)
    return torch.tensor(out, dtype=torch.float64)


@dataclass(frozen=True)
class StateVariables:
    """The annotated variables of one game that are scored: their names, RAM bytes and categories,
    and the dropped ones with their entropies. One selection serves the probe and the supervised
    upper bound, so both are scored on the same variables."""

    names: tuple[str, ...]
    ram_index: Tensor
    categories: dict[str, str]
    dropped: dict[str, float]


def kept_variables(
    annotations: Mapping[str, tuple[int, str]], ram: Tensor, entropy_threshold: float = 0.6
) -> StateVariables:
    """The variables of ``annotations`` (``{name: (RAM index, category)}``, e.g. from
    :func:`~palm_lightning.evaluation.atari_ram.game_annotations`) whose value entropy over the
    game's frames ``ram`` ``(N, 128)`` is at least ``entropy_threshold`` nats (AtariARI: 0.6, over
    all of a game's frames)."""
    names = list(annotations)
    index = torch.tensor([annotations[n][0] for n in names], dtype=torch.long)
    entropy = label_entropy(ram[:, index])
    keep = entropy >= entropy_threshold
    return StateVariables(
        names=tuple(n for n, k in zip(names, keep, strict=True) if k),
        ram_index=index[keep],
        categories={n: annotations[n][1] for n, k in zip(names, keep, strict=True) if k},
        dropped={n: float(e) for n, e, k in zip(names, entropy, keep, strict=True) if not k},
    )


def weighted_f1(predictions: Tensor, labels: Tensor) -> float:
    """F1 of each class present in ``labels``, averaged with the class frequencies as weights
    (scikit-learn's ``f1_score(average="weighted")``, what AtariARI reports)."""
    if len(labels) == 0:
        return float("nan")
    num = int(max(int(predictions.max()), int(labels.max()))) + 1
    true_positive = torch.bincount(labels[predictions == labels], minlength=num).double()
    support = torch.bincount(labels, minlength=num).double()
    predicted = torch.bincount(predictions, minlength=num).double()
    denominator = support + predicted
    f1 = torch.where(denominator > 0, 2 * true_positive / denominator.clamp_min(1), torch.zeros_like(denominator))
    return float((f1 * support).sum() / support.sum())


def category_means(scores: Mapping[str, float], categories: Mapping[str, str]) -> dict[str, float]:
    """Mean score of each category that has scored variables, in ``categories``' value order."""
    groups: dict[str, list[float]] = {}
    for name, score in scores.items():
        groups.setdefault(categories[name], []).append(score)
    return {category: sum(values) / len(values) for category, values in groups.items()}


class StateHeads(nn.Module):
    """``V`` linear classifiers ``D → 256`` in one module: ``(N, D)`` → logits ``(N, V, 256)``."""

    def __init__(self, in_dim: int, num_variables: int, num_values: int = NUM_VALUES) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(in_dim)  # nn.Linear's default initialisation, per head
        self.weight = nn.Parameter(torch.empty(num_variables, num_values, in_dim).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(num_variables, num_values).uniform_(-bound, bound))

    def forward(self, features: Tensor) -> Tensor:
        # One (N, D) x (D, V*256) GEMM: faster on a CPU than the same einsum, which torch runs as a
        # batched product over the variables.
        num_variables, num_values, in_dim = self.weight.shape
        logits = features @ self.weight.reshape(num_variables * num_values, in_dim).T
        return logits.view(len(features), num_variables, num_values) + self.bias

    def loss(self, features: Tensor, labels: Tensor) -> Tensor:
        """Sum over variables of each one's mean cross-entropy: each head gets the gradient it would alone."""
        logits = self(features)
        return F.cross_entropy(logits.flatten(0, 1), labels.flatten(), reduction="sum") / len(features)

    @torch.no_grad()
    def predict(self, features: Tensor, batch_size: int = 4096) -> Tensor:
        """Most likely value of each variable, ``(N, V)``."""
        if len(features) == 0:
            return torch.zeros(0, self.weight.shape[0], dtype=torch.long, device=features.device)
        return torch.cat([self(chunk).argmax(-1) for chunk in features.split(batch_size)])


def fit_state_heads(
    train_features: Tensor,
    train_labels: Tensor,
    val_features: Tensor | None = None,
    val_labels: Tensor | None = None,
    lr: float = 3e-4,
    batch_size: int = 64,
    max_epochs: int = 100,
    patience: int = 15,
    seed: int = 0,
) -> tuple[StateHeads, int]:
    """Train one linear classifier per column of ``train_labels`` ``(N, V)`` (values 0–255) on
    ``train_features`` ``(N, D)``; return the heads and the number of epochs run.

    AtariARI's recipe: Adam (lr 3e-4 in the paper; its code's default is 5e-4, ``eps`` 1e-5),
    batch 64, at most 100 epochs, early stopping on each variable's validation accuracy with
    patience 15. Ours: each epoch is one shuffled pass over the frames (AtariARI samples episodes
    with replacement), each variable ends with its best-validation weights, and there is no
    learning-rate decay on plateaus. Without validation data every head trains ``max_epochs``.
    """
    if train_features.ndim != 2 or train_labels.ndim != 2 or len(train_features) != len(train_labels):
        raise ValueError(
            f"features (N, D) and labels (N, V) are needed, got {tuple(train_features.shape)} and "
            f"{tuple(train_labels.shape)}"
        )
    if len(train_features) == 0:
        raise ValueError("no training frames")
    device = train_features.device
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        heads = StateHeads(train_features.shape[1], train_labels.shape[1]).to(device)
    optimizer = torch.optim.Adam(heads.parameters(), lr=lr, eps=1e-5, fused=True)  # one kernel: ~1.2x per step
    generator = torch.Generator().manual_seed(seed)
    train_labels = train_labels.long()
    validate = val_features is not None and val_labels is not None and len(val_features) > 0
    best = torch.full((train_labels.shape[1],), -1.0, device=device)
    best_weight, best_bias = heads.weight.detach().clone(), heads.bias.detach().clone()
    since_best = torch.zeros(train_labels.shape[1], dtype=torch.long, device=device)
    n, batch_size = len(train_features), min(batch_size, len(train_features))
    epoch = 0
    while epoch < max_epochs:
        order = torch.randperm(n, generator=generator).to(device)
        for start in range(0, n - batch_size + 1, batch_size):
            index = order[start : start + batch_size]
            loss = heads.loss(train_features[index], train_labels[index])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        epoch += 1
        if not validate:
            continue
        assert val_features is not None and val_labels is not None
        accuracy = (heads.predict(val_features) == val_labels.long()).double().mean(0).float()
        improved = accuracy > best
        best = torch.where(improved, accuracy, best)
        with torch.no_grad():
            best_weight[improved], best_bias[improved] = heads.weight[improved], heads.bias[improved]
        since_best = torch.where(improved, torch.zeros_like(since_best), since_best + 1)
        if bool((since_best >= patience).all()):
            break
    if validate:
        with torch.no_grad():
            heads.weight.copy_(best_weight)
            heads.bias.copy_(best_bias)
    return heads, epoch
