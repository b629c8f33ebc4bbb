"""Fréchet distance: zero for identical statistics, and the closed form where one exists."""

from __future__ import annotations

import math

import torch

from palm_lightning.metrics.frechet import frechet_distance, gaussian_statistics


def test_identical_statistics_give_zero() -> None:
    x = torch.randn(500, 6)
    mu, sigma = gaussian_statistics(x)
    assert abs(frechet_distance(mu, sigma, mu, sigma)) < 1e-8


def test_diagonal_gaussians_match_closed_form() -> None:
    # For diagonal covariances: sum_i (m1_i - m2_i)^2 + (s1_i - s2_i)^2 with s the std devs.
    m1, m2 = torch.tensor([0.0, 1.0, -2.0]), torch.tensor([1.0, 1.0, 0.5])
    s1, s2 = torch.tensor([1.0, 2.0, 0.5]), torch.tensor([3.0, 1.0, 0.5])
    expected = float(((m1 - m2) ** 2 + (s1 - s2) ** 2).sum())
    got = frechet_distance(m1, torch.diag(s1**2), m2, torch.diag(s2**2))
    assert math.isclose(got, expected, rel_tol=1e-9)


def test_rotation_invariance_of_a_full_covariance() -> None:
    torch.manual_seed(0)
    a = torch.randn(4, 4, dtype=torch.float64)
    sigma1 = a @ a.T + 0.1 * torch.eye(4, dtype=torch.float64)
    sigma2 = torch.diag(torch.tensor([1.0, 2.0, 3.0, 4.0], dtype=torch.float64))
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64))
    mu = torch.zeros(4, dtype=torch.float64)
    d = frechet_distance(mu, sigma1, mu, sigma2)
    d_rot = frechet_distance(mu, q @ sigma1 @ q.T, mu, q @ sigma2 @ q.T)
    assert d > 0.1 and math.isclose(d, d_rot, rel_tol=1e-8)


def test_sample_statistics_distance_grows_with_shift() -> None:
    torch.manual_seed(0)
    x = torch.randn(2000, 5)
    ref = gaussian_statistics(x)
    near = frechet_distance(*gaussian_statistics(torch.randn(2000, 5)), *ref)
    far = frechet_distance(*gaussian_statistics(torch.randn(2000, 5) + 1.0), *ref)
    assert near < 0.1 and 4.5 < far < 5.5  # shift of 1 in each of 5 dims: ~5
