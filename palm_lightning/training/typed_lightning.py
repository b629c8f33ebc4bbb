"""Typed access to what Lightning leaves loosely typed: the trainer's DataModule, a module's
optimisers, an all-gathered tensor. Each helper returns exactly what the plain Lightning call does.
"""

from __future__ import annotations

from typing import Any, cast

import lightning as L
import torch
from torch import Tensor


def attached_datamodule(module: L.LightningModule) -> Any:
    """``module.trainer.datamodule``: the DataModule of the running fit, validate or test (or
    ``None``). Lightning sets the attribute when a ``Trainer`` is made but does not declare it on
    the class, so it is read here, untyped, for every caller."""
    return getattr(module.trainer, "datamodule", None)


def module_optimizers(module: L.LightningModule) -> list[torch.optim.Optimizer]:
    """``module.optimizers()`` as a list. Each is a ``LightningOptimizer``, whose class Lightning
    derives from the wrapped optimiser's class at run time: an ``Optimizer``, which its type
    annotation does not say."""
    optimizers = module.optimizers()
    return cast(list[torch.optim.Optimizer], optimizers if isinstance(optimizers, list) else [optimizers])


def all_gather_tensor(module: L.LightningModule, tensor: Tensor) -> Tensor:
    """``module.all_gather(tensor)``: a tensor gathers into one tensor (``(world_size, *shape)``);
    the annotation covers the dict, list and tuple inputs too."""
    return cast(Tensor, module.all_gather(tensor))
