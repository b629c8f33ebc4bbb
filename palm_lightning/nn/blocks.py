"""The small building blocks every RL and SSL part of the package shares, written once.

- :func:`mlp` — ``in → [hidden → ReLU] × n → out``;
- :func:`one_hot` — float one-hot task/class codes;
- :class:`FusedLinear` — several linear layers that share their input, stored as one matrix;
- :func:`orthogonal_init_` — DrQ-v2's ``weight_init`` (orthogonal weights, zero biases), each
  layer of a :class:`FusedLinear` on its own;
- :func:`polyak_update` — target networks ``θ' ← (1 − τ)·θ' + τ·θ``;
- :func:`frozen_batchnorm_stats` — run a module's batch norms on batch statistics without
  moving their running statistics (for forwards that are not training steps, e.g. reward
  particles).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import Tensor, nn


def mlp(in_dim: int, hidden_dim: int, num_hidden: int, out_dim: int) -> nn.Sequential:
    """``in → [hidden → ReLU] × num_hidden → out`` (``num_hidden = 0``: one linear layer)."""
    if num_hidden < 0:
        raise ValueError(f"num_hidden must be ≥ 0, got {num_hidden}")
    layers: list[nn.Module] = []
    last = in_dim
    for _ in range(num_hidden):
        layers += [nn.Linear(last, hidden_dim), nn.ReLU()]
        last = hidden_dim
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


def one_hot(index: Tensor, num_classes: int) -> Tensor:
    """``(B,)`` integer indices → ``(B, num_classes)`` float32 one-hot codes."""
    return F.one_hot(index.long(), num_classes).to(torch.float32)


class FusedLinear(nn.Linear):
    """``blocks`` linear layers ``in → out_features / blocks`` that read the same input, stored
    as one ``Linear(in, out_features)`` (one ``addmm`` instead of ``blocks``): block ``b`` is rows
    ``b·out/blocks … (b+1)·out/blocks − 1`` of ``weight`` and ``bias``.

    PyTorch's default initialisation already treats the blocks as separate layers (it depends on
    the fan-in alone); :func:`orthogonal_init_` initialises each block on its own, since the row
    blocks of one orthogonal matrix are not themselves orthogonal.
    """

    def __init__(self, in_features: int, out_features: int, blocks: int, bias: bool = True) -> None:
        if blocks < 1 or out_features % blocks:
            raise ValueError(f"out_features ({out_features}) must be a positive multiple of blocks ({blocks})")
        super().__init__(in_features, out_features, bias=bias)
        self.blocks = blocks

    def block_weights(self) -> tuple[Tensor, ...]:
        """Each block's weight ``(out_features / blocks, in_features)``, a view into ``weight``."""
        return self.weight.chunk(self.blocks, dim=0)


@torch.no_grad()
def orthogonal_init_(module: nn.Module) -> nn.Module:
    """DrQ-v2's ``weight_init``: orthogonal weights and zero biases for every linear layer, and
    orthogonal weights with ReLU gain for every convolution; other layers keep their defaults.
    A :class:`FusedLinear` gets an orthogonal matrix per block, as the separate layers it stands
    for would. Returns ``module`` (initialised in place)."""
    for layer in module.modules():
        if isinstance(layer, nn.Linear):
            for weight in layer.block_weights() if isinstance(layer, FusedLinear) else (layer.weight,):
                nn.init.orthogonal_(weight)
            if layer.bias is not None:
                layer.bias.zero_()
        elif isinstance(layer, (nn.Conv2d, nn.ConvTranspose2d)):
            nn.init.orthogonal_(layer.weight, nn.init.calculate_gain("relu"))
            if layer.bias is not None:
                layer.bias.zero_()
    return module


@torch.no_grad()
def polyak_update(target: nn.Module | Iterable[Tensor], online: nn.Module | Iterable[Tensor], tau: float) -> None:
    """``θ' ← (1 − τ)·θ' + τ·θ`` over matching parameters (modules) or tensors (lists), with one
    foreach kernel. Buffers (e.g. batch-norm statistics) are not touched."""
    if not 0.0 <= tau <= 1.0:
        raise ValueError(f"tau must be in [0, 1], got {tau}")
    targets = list(target.parameters() if isinstance(target, nn.Module) else target)
    onlines = list(online.parameters() if isinstance(online, nn.Module) else online)
    if len(targets) != len(onlines):
        raise ValueError(f"target has {len(targets)} tensors, online {len(onlines)}: not the same network")
    if targets:
        torch._foreach_lerp_(targets, onlines, tau)


@contextmanager
def frozen_batchnorm_stats(module: nn.Module) -> Iterator[nn.Module]:
    """Inside the block, ``module``'s batch norms still normalise with the batch's statistics
    (as in training) but their running statistics do not move (momentum 0)."""
    norms = [m for m in module.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in norms]
    for m in norms:
        m.momentum = 0.0
    try:
        yield module
    finally:
        for m, (momentum, tracked) in zip(norms, saved, strict=True):
            m.momentum = momentum
            if tracked is not None and m.num_batches_tracked is not None:
                m.num_batches_tracked.copy_(tracked)


__all__ = ["FusedLinear", "frozen_batchnorm_stats", "mlp", "one_hot", "orthogonal_init_", "polyak_update"]
