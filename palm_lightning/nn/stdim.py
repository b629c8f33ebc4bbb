"""ST-DIM's scoring heads and the pass that feeds them, shared by PALM-ST-DIM (generated frames) and
ST-DIM on real frames: one objective, two data sources."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from palm_lightning.losses.simsiam import output_std
from palm_lightning.losses.stdim import stdim_loss
from palm_lightning.nn.encoders import DrQEncoder


class STDIMObjective(nn.Module):
    """ST-DIM (Anand et al., 2019) for a :class:`~palm_lightning.nn.encoders.DrQEncoder`.

    The *local* map is the output of the encoder's first ``local_layers`` convolutions (after the
    ReLU), the *global* vector its output, both from one pass
    (:meth:`~palm_lightning.nn.encoders.DrQEncoder.forward_with_map`). ``global_to_local`` (``W_g``)
    and ``local_to_local`` (``W_l``) are linear maps without bias: the published bilinear scores.
    The encoder is passed at each call, not held, so it stays its owner's sub-module alone.

    Args:
        encoder: the encoder whose map and output are scored (read for sizes only).
        local_layers: convolutions feeding the local map. ``None``: all of them, the last map
            (25×25 cells for 64×64 frames, a receptive field of 15 pixels). AtariARI takes the map
            one layer before the last of its own encoder, whose last map is coarser than ours
            (``num_layers - 1`` is that choice).
        cells_per_update: cells scored per call, drawn at random (the same cells for the whole
            batch); ``None`` scores all of them, as published. Why a subset: the logits are
            ``cells × B × B`` per term, most of an update's time on a CPU when every cell is scored.
    """

    def __init__(self, encoder: DrQEncoder, local_layers: int | None = None, cells_per_update: int | None = None):
        super().__init__()
        num_convs = len(encoder.convnet) // 2
        if local_layers is not None and not 1 <= local_layers <= num_convs:
            raise ValueError(
                f"local_layers must be in [1, {num_convs}] (the encoder's convolutions), got {local_layers}"
            )
        if cells_per_update is not None and cells_per_update < 1:
            raise ValueError(f"cells_per_update must be positive or null (all cells), got {cells_per_update}")
        self.local_layers = num_convs if local_layers is None else local_layers
        self.cells_per_update = cells_per_update
        channels = encoder.channels  # every convolution has as many filters
        self.global_to_local = nn.Linear(encoder.out_dim, channels, bias=False)
        self.local_to_local = nn.Linear(channels, channels, bias=False)

    def forward(
        self, encoder: DrQEncoder, obs: Tensor, next_obs: Tensor, groups: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor], Tensor]:
        """ST-DIM on ``(obs, next_obs)`` (float images ``(B, C, H, W)``), with negatives only from the
        sample's own group where ``groups`` ``(B,)`` is given (:mod:`palm_lightning.losses.stdim`).
        Returns the loss, the logs
        (``train/ssl_loss``, both terms and their accuracies — the positive picked among the batch,
        1/B at chance — and ``train/z_std`` of the global vectors) and the detached encoder outputs
        ``(2, B, D)`` of both frames, for a caller that reuses them."""
        global_now, local_now = encoder.forward_with_map(obs, self.local_layers)
        global_next, local_next = encoder.forward_with_map(next_obs, self.local_layers)
        num_cells = local_now.shape[2] * local_now.shape[3]
        index = None
        if self.cells_per_update is not None and self.cells_per_update < num_cells:
            index = torch.randperm(num_cells, device=obs.device)[: self.cells_per_update]
        loss, terms = stdim_loss(
            global_next, local_now, local_next, self.global_to_local, self.local_to_local, index, groups
        )
        logs = {f"train/{name}": value for name, value in terms.items()}
        logs["train/ssl_loss"] = loss.detach()
        logs["train/z_std"] = output_std(global_now)
        return loss, logs, torch.stack([global_now.detach(), global_next.detach()])
