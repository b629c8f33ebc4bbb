"""What every agent of the package is: a plain ``nn.Module`` with DrQ-v2's small API, held by a
LightningModule that keeps owning optimisation, precision and checkpointing.

An agent provides

- ``action_space`` — a gymnasium ``Box`` (continuous actions) or ``Discrete`` space;
- :meth:`Agent.act` ``(obs, step, eval_mode=False, task=None) → actions`` — what the experience
  stream calls through its module (``obs`` are whatever the agent acts on: representation
  vectors for PALM, state vectors for SAC; ``task`` the per-environment task index of a
  multi-task stream, ``None`` otherwise);
- :meth:`Agent.optimizer_groups` — ``{optimiser name: [param groups]}``: the module builds one
  optimiser per name, in this order, and hands them back to :meth:`Agent.update`;
- :meth:`Agent.update` ``(batch, step, optimizers, backward, check)`` — one update (losses,
  backward passes through the module's ``manual_backward``, optimiser steps, target networks),
  returning the scalars to log.

A discrete-action (DQN-family) agent fits the same API: ``act`` returns ``(N,)`` integer actions
for a ``Discrete`` space, ``optimizer_groups`` has one ``"q"`` entry, and ``update`` does the TD
step and the target update (the package's tests hold a minimal one).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium
from torch import Tensor, nn

Backward = Callable[[Tensor], None]
"""``backward(loss)``: the module's ``manual_backward`` (or ``Tensor.backward`` outside a Trainer)."""

FiniteCheck = Callable[[dict[str, Tensor]], None]
"""``check(losses)`` raises before a step if a loss is not finite (e.g. the module's NaN guard)."""

ParamGroups = list[dict[str, Any]]
"""Optimiser parameter groups: dicts with ``params``, ``lr`` and ``name``."""


class Stepper(Protocol):
    """What an agent does with an optimiser: a ``torch.optim.Optimizer``, Lightning's wrapper of
    one, or a module's :class:`~palm_lightning.training.optimizer_steps.UncountedOptimizer`."""

    def zero_grad(self, set_to_none: bool = True) -> None: ...

    def step(self) -> object: ...


@dataclass
class Transition:
    """A batch of (n-step) transitions in the agent's input space, float32.

    ``obs``/``next_obs`` ``(B, …)``, ``action`` ``(B, |A|)`` (or ``(B,)`` integers for a discrete
    space), ``reward`` ``(B,)`` (already the n-step sum), ``discount`` ``(B,)`` (γⁿ times the
    termination mask), ``task`` ``(B,)`` task indices of a multi-task batch (``None``: one task).
    """

    obs: Tensor
    action: Tensor
    reward: Tensor
    discount: Tensor
    next_obs: Tensor
    task: Tensor | None = None


class Agent(nn.Module):
    """Interface of the package's agents (see the module docstring)."""

    action_space: gymnasium.spaces.Space[Any]

    def act(self, obs: Tensor, step: int, eval_mode: bool = False, task: Tensor | None = None) -> Tensor:
        """Actions for a batch of observations ``(N, …)``: ``(N, |A|)`` in the ``Box``'s bounds or
        ``(N,)`` indices of a ``Discrete`` space. ``step`` counts environment frames (schedules)."""
        raise NotImplementedError

    def optimizer_groups(self) -> dict[str, ParamGroups]:
        """``{name: param groups}``: one optimiser per name (each group a dict with ``params``,
        ``lr`` and ``name``), in the order :meth:`update` steps them."""
        raise NotImplementedError

    def update(
        self,
        batch: Transition,
        step: int,
        optimizers: Mapping[str, Stepper],
        backward: Backward | None = None,
        check: FiniteCheck | None = None,
    ) -> dict[str, Tensor]:
        """One update on ``batch``; returns detached scalars to log (names ``train/…``)."""
        raise NotImplementedError


def optimizer_step(
    loss: Tensor,
    optimizers: list[Stepper],
    backward: Backward | None,
    before_step: Callable[[], None] | None = None,
) -> None:
    """``zero_grad → backward(loss) → before_step() (e.g. clipping) → step`` over ``optimizers``."""
    for optimizer in optimizers:
        optimizer.zero_grad(set_to_none=True)
    (backward or Tensor.backward)(loss)
    if before_step is not None:
        before_step()
    for optimizer in optimizers:
        optimizer.step()


def box_space(action_dim: int, low: float = -1.0, high: float = 1.0) -> gymnasium.spaces.Box:
    """The continuous action space ``[low, high]^action_dim`` (float32)."""
    import numpy as np

    return gymnasium.spaces.Box(low, high, (action_dim,), dtype=np.float32)
