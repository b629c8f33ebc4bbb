"""Fréchet distance between Gaussians fitted to two feature sets (the formula behind FID).

``d² = ‖μ₁ − μ₂‖² + Tr(Σ₁ + Σ₂ − 2 (Σ₁ Σ₂)^{1/2})``. The trace of the matrix square root is
computed as the sum of square roots of the eigenvalues of ``Σ₁^{1/2} Σ₂ Σ₁^{1/2}`` (symmetric
PSD, so ``eigvalsh`` is exact and stable), in float64, without SciPy.
"""

from __future__ import annotations

import torch
from torch import Tensor


def gaussian_statistics(features: Tensor) -> tuple[Tensor, Tensor]:
    """Mean ``(D,)`` and unbiased covariance ``(D, D)`` of ``features (N, D)``, in float64."""
    if features.ndim != 2 or features.shape[0] < 2:
        raise ValueError(f"need features of shape (N ≥ 2, D), got {tuple(features.shape)}")
    x = features.double()
    mu = x.mean(dim=0)
    xc = x - mu
    return mu, xc.T @ xc / (x.shape[0] - 1)


def _sqrtm_psd(matrix: Tensor) -> Tensor:
    eigvals, eigvecs = torch.linalg.eigh(matrix)
    return (eigvecs * eigvals.clamp_min(0).sqrt()) @ eigvecs.T


def frechet_distance(mu1: Tensor, sigma1: Tensor, mu2: Tensor, sigma2: Tensor) -> float:
    """Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2) (squared-distance units, like FID)."""
    if mu1.shape != mu2.shape or sigma1.shape != sigma2.shape:
        raise ValueError(f"statistics of different sizes: {tuple(mu1.shape)} vs {tuple(mu2.shape)}")
    mu1, mu2, sigma1, sigma2 = (t.double() for t in (mu1, mu2, sigma1, sigma2))
    root1 = _sqrtm_psd(sigma1)
    middle = root1 @ sigma2 @ root1
    trace_sqrt = torch.linalg.eigvalsh((middle + middle.T) / 2).clamp_min(0).sqrt().sum()
    value = (mu1 - mu2).square().sum() + sigma1.trace() + sigma2.trace() - 2 * trace_sqrt
    return float(value.clamp_min(0))
