"""Out-of-distribution scorers on frozen features: fit on in-distribution training features, then
score test features. Convention everywhere: a HIGHER score means MORE in-distribution.

- :class:`KNNDistanceScorer` — minus the distance to the k-th nearest training feature, on
  L2-normalised features (Sun et al. 2022, "Out-of-distribution detection with deep nearest
  neighbors"). Non-parametric: no assumption about the feature distribution.
- :class:`MahalanobisScorer` — minus the smallest squared Mahalanobis distance to a class mean,
  with one covariance shared by all classes (Lee et al. 2018, "A simple unified framework for
  detecting out-of-distribution samples and adversarial attacks"), or to a single Gaussian.
"""

from __future__ import annotations

from typing import Protocol

import torch
import torch.nn.functional as F
from torch import Tensor

ELEMENTS_PER_CHUNK = 1 << 24  # query × bank entries per distance matrix (64 MiB in float32)


class OODScorer(Protocol):
    """What :class:`~palm_lightning.models.OODDetector` needs from a scorer."""

    def fit(self, features: Tensor, labels: Tensor | None = None) -> OODScorer: ...

    def score(self, features: Tensor) -> Tensor: ...


def _check_features(features: Tensor, who: str, dim: int | None = None) -> None:
    if features.ndim != 2:
        raise ValueError(f"{who}: features must be (N, D), got shape {tuple(features.shape)}")
    if dim is not None and features.shape[1] != dim:
        raise ValueError(f"{who}: fitted on {dim}-dimensional features, got {features.shape[1]}-dimensional ones")


def _not_fitted(who: str) -> RuntimeError:
    return RuntimeError(f"{who}: call fit(train_features, train_labels) before score(features)")


class KNNDistanceScorer:
    """Score = −(Euclidean distance to the ``k``-th nearest feature of the training bank).

    Args:
        k: which neighbour (Sun et al. use 50 on CIFAR-10's 50 000 images, and scale ``k`` with
            the bank size); a bank smaller than ``k`` uses its farthest feature.
        normalize: L2-normalise bank and queries first (the paper's choice, and what makes the
            distance a monotone function of cosine similarity).
    """

    def __init__(self, k: int = 50, normalize: bool = True) -> None:
        if k < 1:
            raise ValueError(f"KNNDistanceScorer: k must be positive, got {k}")
        self.k = k
        self.normalize = normalize
        self.bank: Tensor | None = None
        self._bank_sq: Tensor | None = None  # squared norms of the bank rows

    def _prepare(self, features: Tensor) -> Tensor:
        features = features.float()
        return F.normalize(features, dim=1) if self.normalize else features

    def fit(self, features: Tensor, labels: Tensor | None = None) -> KNNDistanceScorer:
        """Keep the (normalised) training features as the bank; ``labels`` are not used."""
        _check_features(features, "KNNDistanceScorer")
        if features.shape[0] == 0:
            raise ValueError("KNNDistanceScorer: cannot fit on zero features")
        self.bank = self._prepare(features)
        self._bank_sq = self.bank.square().sum(1)
        return self

    def score(self, features: Tensor) -> Tensor:
        """``(Q,)`` scores on ``features``' device; higher = closer to the training data."""
        if self.bank is None or self._bank_sq is None:
            raise _not_fitted("KNNDistanceScorer")
        _check_features(features, "KNNDistanceScorer", self.bank.shape[1])
        bank = self.bank.to(features.device)
        bank_sq = self._bank_sq.to(features.device)
        k = min(self.k, bank.shape[0])
        chunk_size = max(1, ELEMENTS_PER_CHUNK // bank.shape[0])
        scores = []
        for chunk in self._prepare(features).split(chunk_size):
            # ‖q − b‖² = ‖q‖² + ‖b‖² − 2 q·b; the k-th nearest is the k-th smallest squared distance
            squared = chunk.square().sum(1, keepdim=True) + bank_sq - 2.0 * chunk @ bank.T
            kth = squared.topk(k, dim=1, largest=False).values[:, -1]
            scores.append(-kth.clamp_min(0.0).sqrt())
        if not scores:
            return torch.zeros(0, device=features.device)
        return torch.cat(scores)


class MahalanobisScorer:
    """Score = −min over classes of the squared Mahalanobis distance to the class mean.

    One covariance is shared by all classes (the "tied" covariance of Lee et al.: the within-class
    scatter around each class mean, pooled); without labels, or with ``class_conditional=False``,
    a single Gaussian (one mean) is fitted instead.

    Raw pixels and low-rank features have a singular covariance (Fashion-MNIST's padded border is
    always 0), so the covariance is estimated in float64 and shrunk before inversion:
    ``Σ + eps · (tr Σ / D) · I`` — the ridge is relative to the mean variance, so ``eps`` does not
    depend on the feature scale. Directions with no training variance then get a large but finite
    weight: a test feature that moves along them is far from the training data, as it should be.
    Distances are computed in the whitened space, in float64.

    Args:
        class_conditional: one mean per class (needs labels at ``fit``) or a single mean.
        eps: relative shrinkage of the covariance (see above).
    """

    def __init__(self, class_conditional: bool = True, eps: float = 1e-6) -> None:
        if eps <= 0:
            raise ValueError(f"MahalanobisScorer: eps must be positive, got {eps}")
        self.class_conditional = class_conditional
        self.eps = eps
        self.center: Tensor | None = None  # global mean, subtracted first for numerical accuracy
        self.whitening: Tensor | None = None  # (D, D): x ↦ (x − center) @ whitening has identity covariance
        self.whitened_means: Tensor | None = None  # (C, D) class means in the whitened space

    def fit(self, features: Tensor, labels: Tensor | None = None) -> MahalanobisScorer:
        """Estimate class means and the shared covariance from in-distribution training features."""
        _check_features(features, "MahalanobisScorer")
        if features.shape[0] < 2:
            raise ValueError(f"MahalanobisScorer: a covariance needs at least 2 features, got {features.shape[0]}")
        n, dim = features.shape
        if labels is not None and labels.shape[0] != n:
            raise ValueError(f"MahalanobisScorer: {n} features but {labels.shape[0]} labels")
        if self.class_conditional and labels is not None:
            groups = labels.to(features.device).long().unique(return_inverse=True)[1]  # classes → 0..C-1
        else:
            groups = torch.zeros(n, dtype=torch.long, device=features.device)  # one Gaussian
        num_groups = int(groups.max()) + 1
        # Two chunked passes in float64 (means, then the pooled scatter): a float64 copy of all the
        # features would cost twice their float32 memory (about 1 GB for 60 000 pixel vectors).
        chunk_size = max(1, ELEMENTS_PER_CHUNK // dim)
        center = sum(chunk.double().sum(0) for chunk in features.split(chunk_size)) / n  # for accuracy
        sums = torch.zeros(num_groups, dim, dtype=torch.float64, device=features.device)
        for chunk, group in zip(features.split(chunk_size), groups.split(chunk_size), strict=True):
            sums.index_add_(0, group, chunk.double() - center)
        means = sums / torch.bincount(groups, minlength=num_groups).to(sums)[:, None]  # centred class means
        covariance = torch.zeros(dim, dim, dtype=torch.float64, device=features.device)
        for chunk, group in zip(features.split(chunk_size), groups.split(chunk_size), strict=True):
            residuals = chunk.double() - center - means[group]
            covariance += residuals.T @ residuals
        covariance /= n
        eigenvalues, eigenvectors = torch.linalg.eigh(covariance)
        eigenvalues = eigenvalues.clamp_min(0.0)
        ridge = self.eps * max(float(eigenvalues.mean()), torch.finfo(torch.float64).tiny)
        self.whitening = eigenvectors / (eigenvalues + ridge).sqrt()
        self.center = center
        self.whitened_means = means @ self.whitening
        return self

    def score(self, features: Tensor) -> Tensor:
        """``(Q,)`` float32 scores on ``features``' device; higher = closer to a class mean."""
        if self.whitening is None or self.center is None or self.whitened_means is None:
            raise _not_fitted("MahalanobisScorer")
        _check_features(features, "MahalanobisScorer", self.whitening.shape[0])
        device = features.device
        whitening, center = self.whitening.to(device), self.center.to(device)
        means = self.whitened_means.to(device)
        means_sq = means.square().sum(1)
        chunk_size = max(1, ELEMENTS_PER_CHUNK // whitening.shape[0])
        scores = []
        for chunk in features.split(chunk_size):
            z = (chunk.double() - center) @ whitening
            squared = z.square().sum(1, keepdim=True) + means_sq - 2.0 * z @ means.T  # (Q, C)
            scores.append(-squared.clamp_min(0.0).min(1).values.float())
        if not scores:
            return torch.zeros(0, device=device)
        return torch.cat(scores)


SCORERS: dict[str, type] = {"knn": KNNDistanceScorer, "mahalanobis": MahalanobisScorer}
