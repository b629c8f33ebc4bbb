"""ST-DIM on real consecutive frames: AtariARI's own method, the reference for PALM-ST-DIM.

:class:`~palm_lightning.models.PALMSTDIM` trains the same objective on generated frames. Run on the
real frames the generator learned from, this tells the two causes of a low probe score apart: the
objective (it does not beat the untrained encoder here either) or the generated frames (it does).
"""

from __future__ import annotations

from torch import Tensor

from palm_lightning.models.simsiam_images import SimSiamImages
from palm_lightning.nn.stdim import STDIMObjective


class STDIMFrames(SimSiamImages):
    """ST-DIM (Anand et al., 2019) on ``(o_t, o_{t+1})`` pairs of real frames of one episode.

    Data: :class:`~palm_lightning.datamodules.AtariFramesDataModule` with ``serve_next: true``
    (training batches ``(images, labels, next_images)``; the labels never reach the objective).
    No augmentation, as ST-DIM. Encoder, optimiser options, online kNN probe and export are
    :class:`~palm_lightning.models.SimSiamImages`' (whose augmentation arguments and SimSiam heads
    are unused here: the heads are frozen and stay out of the gradient).

    Args:
        local_layers, cells_per_update: see :class:`~palm_lightning.nn.stdim.STDIMObjective`.
        **kwargs: :class:`~palm_lightning.models.SimSiamImages`' arguments.
    """

    def __init__(self, *args, local_layers: int | None = None, cells_per_update: int | None = None, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.stdim = STDIMObjective(self.encoder, local_layers, cells_per_update)
        self.projector.requires_grad_(False)
        self.predictor.requires_grad_(False)

    def training_step(self, batch: tuple[Tensor, ...], batch_idx: int) -> Tensor:
        if len(batch) != 3:
            raise ValueError(
                f"{type(self).__name__} trains on pairs of consecutive frames: set --data.init_args.serve_next true "
                f"(batches (images, labels, next_images)), got batches of {len(batch)} tensors"
            )
        obs, _, next_obs = batch
        loss, logs, _ = self.stdim(self.encoder, obs, next_obs)
        self.updates += 1
        logs["charts/updates"] = self.updates.float()
        self.log_dict(logs, on_step=True, on_epoch=False)
        self.log("train/loss", loss.detach(), prog_bar=True)
        return loss
