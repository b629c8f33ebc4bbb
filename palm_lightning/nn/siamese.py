"""SimSiam's forward pass on two views, shared by every module trained with it.

PALM (two consecutive generated frames, or two shifted copies of one) and SimSiam on real images
(two augmented views) differ only in where the views come from; the encoder → projector →
predictor pass, the symmetric loss and the collapse monitor are this one function.
"""

from __future__ import annotations

from torch import Tensor, nn

from palm_lightning.losses.simsiam import output_std, simsiam_loss


def simsiam_forward(
    encoder: nn.Module, projector: nn.Module, predictor: nn.Module, view1: Tensor, view2: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """SimSiam's loss on two batches of views, and the metrics to log (``train/ssl_loss``,
    ``train/z_std``).

    The two views go through the networks separately (as SimSiam's reference code), so the
    projector's batch norm sees the statistics of one view at a time.
    """
    return simsiam_heads(projector, predictor, encoder(view1), encoder(view2))


def simsiam_heads(
    projector: nn.Module, predictor: nn.Module, features1: Tensor, features2: Tensor
) -> tuple[Tensor, dict[str, Tensor]]:
    """:func:`simsiam_forward` from the encoder's features of the two views (for a caller that
    reuses those features elsewhere, as PALM's agent does)."""
    z1, z2 = projector(features1), projector(features2)
    p1, p2 = predictor(z1), predictor(z2)
    loss = simsiam_loss(p1, p2, z1, z2)
    return loss, {"train/ssl_loss": loss.detach(), "train/z_std": output_std(z1)}
