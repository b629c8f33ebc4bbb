"""Stop training on a non-finite loss, after saving the last finite state."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch
from torch import Tensor


def stop_on_nan(module: L.LightningModule, losses: dict[str, Tensor], updates: int, env_steps: int, hint: str) -> None:
    """Raise ``FloatingPointError`` if any loss is non-finite.

    The bad step has not been applied yet, so the checkpoint written first
    (``<log_dir>/checkpoints/nan-update<N>.ckpt``) holds the last finite state; the error names
    the losses, the update and the environment step, and ends with ``hint`` (what to change).
    """
    bad = {k: float(v.detach()) for k, v in losses.items() if not torch.isfinite(v).all()}
    if not bad:
        return
    where = "no checkpoint saved (no log directory)"
    log_dir = module.trainer.log_dir or None
    if log_dir is not None:
        path = Path(log_dir) / "checkpoints" / f"nan-update{updates}.ckpt"
        module.trainer.save_checkpoint(path)
        where = f"the state before this update is saved in {path}"
    raise FloatingPointError(
        f"non-finite loss at update {updates} (env step {env_steps}): "
        + ", ".join(f"{k} = {v}" for k, v in bad.items())
        + f"; {where}. {hint}"
    )
