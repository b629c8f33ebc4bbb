"""Optimiser steps that do not advance ``trainer.global_step``.

Under manual optimisation every ``LightningOptimizer.step()`` counts as one step of
``trainer.max_steps``. An RL update steps several optimisers (representation, critic, actor,
temperature), and ``max_steps`` should count *updates*: a module steps one optimiser the normal
way and the others through :class:`UncountedOptimizer`, which still goes through the strategy and
its precision plugin (loss-scaler unscaling under ``16-mixed``, DDP hooks) but skips the progress
counter.
"""

from __future__ import annotations

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
