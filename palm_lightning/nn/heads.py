"""SimSiam's heads: the projector (3-layer MLP with batch norm) and the bottleneck predictor."""

from __future__ import annotations

from torch import nn


class Projector(nn.Sequential):
    """``in → hidden → hidden → out`` with BN + ReLU, and BN (no affine) on the output, as in
    SimSiam."""

    def __init__(self, in_dim: int, hidden_dim: int = 512, out_dim: int = 256) -> None:
        super().__init__(
            nn.Linear(in_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, out_dim, bias=False),
            nn.BatchNorm1d(out_dim, affine=False),
        )


class Predictor(nn.Sequential):
    """The bottleneck MLP ``out → hidden → out`` (SimSiam uses hidden = out / 4)."""

    def __init__(self, dim: int = 256, hidden_dim: int = 64) -> None:
        super().__init__(
            nn.Linear(dim, hidden_dim, bias=False),
            nn.BatchNorm1d(hidden_dim),
            nn.ReLU(inplace=True),
            nn.Linear(hidden_dim, dim),
        )
