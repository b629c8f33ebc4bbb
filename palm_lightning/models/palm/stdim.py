"""PALM with ST-DIM's spatiotemporal objective in place of SimSiam: the local-objective ablation.

Why: a global objective (SimSiam, CURL) can leave the AtariARI probe at the untrained encoder's
score on PALM-Atari (docs/results/atari.md), since a global vector can ignore a sprite of a few
pixels. ST-DIM (AtariARI's own method) asks every cell of a conv map to be predictable
from the next frame, so it cannot. Everything else is PALM's: the stream, APT's reward, the agent,
the online probe, the exported encoder.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from palm_lightning.models.palm.palm import PALM
from palm_lightning.nn.stdim import STDIMObjective


class PALMSTDIM(PALM):
    """PALM whose representation is trained with ST-DIM (Anand et al., 2019) on ``(o_t, o_{t+1})``
    (:class:`~palm_lightning.nn.stdim.STDIMObjective`, the sub-module ``stdim``).

    SimSiam's projector and predictor are not built (:meth:`build_heads`). APT's particles live in
    the encoder's own space (:meth:`reward_features` is the identity): ST-DIM has no projection to
    borrow, and the encoder output is layer-normalised, so kNN distances keep one scale (our choice;
    APT itself uses its representation space).

    Args:
        local_layers, cells_per_update: see :class:`~palm_lightning.nn.stdim.STDIMObjective`.
        **kwargs: :class:`~palm_lightning.models.palm.palm.PALM`'s arguments.
    """

    def __init__(self, *args, local_layers: int | None = None, cells_per_update: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stdim = STDIMObjective(self.encoder, local_layers, cells_per_update)

    def build_heads(self) -> None:
        """None of SimSiam's: ST-DIM's own heads are ``self.stdim``."""

    def representation_parameters(self) -> list[nn.Parameter]:
        return [*self.encoder.parameters(), *self.stdim.parameters()]

    def representation_loss(self, obs: Tensor, next_obs: Tensor, actions: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        """ST-DIM on ``(obs, next_obs)``; the encoder outputs are reused by the agent's update."""
        loss, logs, features = self.stdim(self.encoder, obs, next_obs)
        self.view_features = (features[0], features[1])
        return loss, logs

    @torch.no_grad()
    def reward_features(self, features: Tensor) -> Tensor:
        return features
