"""ST-DIM's spatiotemporal InfoNCE (Anand et al., 2019, "Unsupervised State Representation Learning
in Atari"): the objective AtariARI's state probe was made to measure.

Two consecutive frames ``x_t`` and ``x_{t+1}`` give a global vector ``g`` (the encoder's output) and
a local feature map ``l`` (a conv map, one ``C``-vector per cell ``(m, n)``). Both terms are InfoNCE
over the batch, one classification problem per cell, with the other samples' cell ``(m, n)`` as
negatives:

- *global-local*: ``W_g g(x_{t+1})`` scores ``l_{m,n}(x_t)``;
- *local-local*: ``W_l l_{m,n}(x_{t+1})`` scores ``l_{m,n}(x_t)``.

Each cell sees a small patch, so a sprite of a few pixels has to be predictable from the next
frame on its own: a global objective can average it away, this one cannot.

``groups`` (optional, one id per sample, e.g. the game) keeps only negatives of the sample's own
group. Why: AtariARI trains one encoder per game; with several games in a batch, telling the game
apart already takes each term from ln B to ln(B / games) (six games at B = 256: 11.1 → 7.5 nats
for the sum), and an encoder can stop there, its global vector holding the game and little else.
Within a group that shortcut is worth nothing (docs/results/atari.md has the measurement with and
without groups).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def cell_infonce(predictions: Tensor, targets: Tensor, groups: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """InfoNCE per cell. ``predictions`` ``(L, B, C)`` (or ``(B, C)``, the same for every cell) and
    ``targets`` ``(L, B, C)``: cell ``l`` of sample ``i`` must pick ``targets[l, i]`` among
    ``targets[l, :]``, or among the ``targets[l, k]`` with ``groups[k] == groups[i]`` when ``groups``
    ``(B,)`` is given. Returns the loss averaged over cells and the accuracy of that pick (1/B at
    chance; 1/group size with groups), in float32."""
    if targets.dim() != 3:
        raise ValueError(f"targets must be (cells, batch, channels), got {tuple(targets.shape)}")
    if predictions.shape[-2:] != targets.shape[-2:]:
        raise ValueError(f"predictions {tuple(predictions.shape)} do not match targets {tuple(targets.shape)}")
    if predictions.dim() == 2:
        logits = torch.einsum("bc,lkc->lbk", predictions.float(), targets.float())
    else:
        logits = torch.einsum("lbc,lkc->lbk", predictions.float(), targets.float())
    cells, batch = logits.shape[0], logits.shape[1]
    if groups is not None:
        if groups.shape != (batch,):
            raise ValueError(f"groups must be one id per sample, shape ({batch},), got {tuple(groups.shape)}")
        other_group = groups[:, None] != groups[None, :]
        logits = logits.masked_fill(other_group, float("-inf"))  # never the diagonal: a sample is its own group
    labels = torch.arange(batch, device=logits.device).repeat(cells)
    flat = logits.reshape(cells * batch, batch)
    loss = F.cross_entropy(flat, labels)
    accuracy = (flat.detach().argmax(1) == labels).float().mean()
    return loss, accuracy


def cells(feature_map: Tensor, index: Tensor | None = None) -> Tensor:
    """``(B, C, H, W)`` → ``(L, B, C)``, the cells in row-major order, or the ``L`` cells of
    ``index`` (flat indices into ``H·W``)."""
    flat = feature_map.flatten(2).permute(2, 0, 1)
    return flat if index is None else flat[index]


def stdim_loss(
    global_next: Tensor,
    local_now: Tensor,
    local_next: Tensor,
    global_to_local: torch.nn.Module,
    local_to_local: torch.nn.Module,
    index: Tensor | None = None,
    groups: Tensor | None = None,
) -> tuple[Tensor, dict[str, Tensor]]:
    """ST-DIM's loss, the sum of its two terms (equal weights, as published).

    Args:
        global_next: ``(B, D)`` global features of ``x_{t+1}``.
        local_now: ``(B, C, H, W)`` local map of ``x_t`` (the targets of both terms).
        local_next: ``(B, C, H, W)`` local map of ``x_{t+1}``.
        global_to_local: ``W_g``, ``D → C``.
        local_to_local: ``W_l``, ``C → C``.
        index: cells to use (flat indices into ``H·W``); all by default.
        groups: ``(B,)`` group ids: negatives only from the sample's own group (see the module).

    Returns:
        The loss and ``{"global_local": …, "local_local": …, "global_local_acc": …,
        "local_local_acc": …}`` (detached).
    """
    if local_now.shape != local_next.shape:
        raise ValueError(f"local maps differ: {tuple(local_now.shape)} vs {tuple(local_next.shape)}")
    targets = cells(local_now, index)
    gl_loss, gl_acc = cell_infonce(global_to_local(global_next), targets, groups)
    ll_loss, ll_acc = cell_infonce(local_to_local(cells(local_next, index)), targets, groups)
    logs = {
        "global_local": gl_loss.detach(),
        "local_local": ll_loss.detach(),
        "global_local_acc": gl_acc,
        "local_local_acc": ll_acc,
    }
    return gl_loss + ll_loss, logs
