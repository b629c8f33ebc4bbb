"""Shared fixtures: tiny datasets written in the real on-disk formats."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest
import torch

torch.set_num_threads(1)  # tests are small; one thread avoids oversubscription


def write_idx_images(path: Path, images: np.ndarray) -> None:
    """IDX3 (magic 2051): big-endian header, then uint8 pixels — the format of (Fashion-)MNIST."""
    n, h, w = images.shape
    path.write_bytes(struct.pack(">IIII", 2051, n, h, w) + images.astype(np.uint8).tobytes())


def write_idx_labels(path: Path, labels: np.ndarray) -> None:
    """IDX1 (magic 2049): big-endian header, then uint8 labels."""
    path.write_bytes(struct.pack(">II", 2049, len(labels)) + labels.astype(np.uint8).tobytes())


def class_patterns(labels: np.ndarray, size: int = 28, seed: int = 0) -> np.ndarray:
    """Images whose class is visible (a bright horizontal band at a class-specific height) plus
    noise, so that tiny classifiers can learn them in a few steps."""
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 60, size=(len(labels), size, size))
    band = max(1, size // 10)
    for i, k in enumerate(labels):
        top = int(k) * (size - band) // 9
        images[i, top : top + band, :] = 255
    return images.astype(np.uint8)


def make_fashion_mnist(root: Path, n_train: int = 200, n_test: int = 100) -> Path:
    """A tiny Fashion-MNIST in torchvision's layout ``<root>/FashionMNIST/raw/`` (uncompressed IDX)."""
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n, seed in (("train", n_train, 0), ("t10k", n_test, 1)):
        labels = np.arange(n) % 10
        write_idx_images(raw / f"{prefix}-images-idx3-ubyte", class_patterns(labels, seed=seed))
        write_idx_labels(raw / f"{prefix}-labels-idx1-ubyte", labels)
    return root


@pytest.fixture
def fmnist_root(tmp_path: Path) -> Path:
    """A data_dir holding a tiny Fashion-MNIST (200 train, 100 test images)."""
    return make_fashion_mnist(tmp_path / "data")
