"""ST-DIM on real consecutive frames: AtariARI's own method, the reference for PALM-ST-DIM.

:class:`~palm_lightning.models.PALMSTDIM` trains the same objective on generated frames. Run on the
real frames the generator learned from, this tells the two causes of a low probe score apart: the
objective (it does not beat the untrained encoder here either) or the generated frames (it does).
"""

from __future__ import annotations

from typing import Literal

from torch import Tensor

from palm_lightning.models.baselines.simsiam_images import SimSiamImages
from palm_lightning.nn.stdim import STDIMObjective


class STDIMFrames(SimSiamImages):
    """ST-DIM (Anand et al., 2019) on ``(o_t, o_{t+1})`` pairs of real frames of one episode.

    Data: :class:`~palm_lightning.datamodules.AtariFramesDataModule` with ``serve_next: true``
    (training batches ``(images, labels, next_images)``; the labels, the game, reach the objective only
    with ``negatives: same_game``).
    No augmentation, as ST-DIM. Encoder, optimiser options, online kNN probe and export are
    :class:`~palm_lightning.models.SimSiamImages`' (whose augmentation arguments and SimSiam heads
    are unused here: the heads are frozen and stay out of the gradient).

    Args:
        local_layers, cells_per_update: see :class:`~palm_lightning.nn.stdim.STDIMObjective`.
        negatives: ``batch`` (default, as published): every other sample of the batch is a negative;
            ``same_game``: only those of the sample's game (its label). AtariARI trains one encoder
            per game, where both are the same; on six games at once, ``batch`` lets the encoder lower
            the loss by telling the games apart (:mod:`palm_lightning.losses.stdim`).
        **kwargs: :class:`~palm_lightning.models.SimSiamImages`' arguments.
    """

    def __init__(
        self,
        *args,
        local_layers: int | None = None,
        cells_per_update: int | None = None,
        negatives: Literal["batch", "same_game"] = "batch",
        **kwargs,
    ) -> None:
        super().__init__(*args, **kwargs)
        if negatives not in ("batch", "same_game"):
            raise ValueError(f"negatives must be 'batch' or 'same_game', got {negatives!r}")
        self.negatives = negatives
        self.stdim = STDIMObjective(self.encoder, local_layers, cells_per_update)
        self.projector.requires_grad_(False)
        self.predictor.requires_grad_(False)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        if len(batch) != 3:
            raise ValueError(
                f"{type(self).__name__} trains on pairs of consecutive frames: set --data.init_args.serve_next true "
                f"(batches (images, labels, next_images)), got batches of {len(batch)} tensors"
            )
        obs, labels, next_obs = batch
        loss, logs, _ = self.stdim(self.encoder, obs, next_obs, labels if self.negatives == "same_game" else None)
        self.updates += 1
        logs["charts/updates"] = self.updates.float()
        self.log_dict(logs, on_step=True, on_epoch=False)
        self.log("train/loss", loss.detach(), prog_bar=True)
        return loss
