"""Optimiser steps that do not advance ``trainer.global_step``.

Under manual optimisation every ``LightningOptimizer.step()`` counts as one step of
``trainer.max_steps``. An RL update steps several optimisers (representation, critic, actor,
temperature), and ``max_steps`` should count *updates*: a module steps one optimiser the normal
way and the others through :class:`UncountedOptimizer`, which still goes through the strategy and
its precision plugin (loss-scaler unscaling under ``16-mixed``, DDP hooks) but skips the progress
counter.
"""

from __future__ import annotations

from typing import Any, cast

import lightning as L
import torch


class UncountedOptimizer:
    """``zero_grad``/``step`` of a (Lightning) optimiser through ``module``'s strategy, not counted
    in ``global_step``."""

    def __init__(self, module: L.LightningModule, optimizer: torch.optim.Optimizer) -> None:
        self.module = module
        self.optimizer = getattr(optimizer, "optimizer", optimizer)  # unwrap a LightningOptimizer

    def zero_grad(self, set_to_none: bool = True) -> None:
        self.optimizer.zero_grad(set_to_none=set_to_none)

    def step(self) -> None:
        trainer = self.module._trainer
        if trainer is None:
            self.optimizer.step()
        else:
            trainer.strategy.optimizer_step(self.optimizer, closure=lambda: None, model=self.module)


def module_optimizers(module: L.LightningModule) -> list[torch.optim.Optimizer]:
    """``module.optimizers()`` as a list. Each is a ``LightningOptimizer``, whose class Lightning
    derives from the wrapped optimiser's class at run time: an ``Optimizer``, which its type
    annotation does not say."""
    optimizers = module.optimizers()
    return cast(list[torch.optim.Optimizer], optimizers if isinstance(optimizers, list) else [optimizers])


def attached_datamodule(module: L.LightningModule) -> Any:
    """``module.trainer.datamodule``: the DataModule of the running fit, validate or test (or
    ``None``). Lightning sets the attribute when a ``Trainer`` is made but does not declare it on
    the class, so it is read here, untyped, for every caller."""
    return getattr(module.trainer, "datamodule", None)


def check_ddp_allows_partial_backward(module: L.LightningModule) -> None:
    """An RL update runs several backward passes, each over part of the parameters; DDP accepts that
    only with ``find_unused_parameters``. Raise a ``ValueError`` with the fix otherwise."""
    from lightning.pytorch.strategies import DDPStrategy

    strategy = module.trainer.strategy
    if isinstance(strategy, DDPStrategy) and not strategy._ddp_kwargs.get("find_unused_parameters", False):
        raise ValueError(
            f"{type(module).__name__} runs several backward passes per update; under DDP set "
            "--trainer.strategy ddp_find_unused_parameters_true (or ddp_spawn_find_unused_parameters_true)"
        )
