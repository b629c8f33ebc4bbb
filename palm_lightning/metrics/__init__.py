"""Metrics that are not training losses (generator quality, …)."""

from palm_lightning.metrics.frechet import frechet_distance, gaussian_statistics

__all__ = ["frechet_distance", "gaussian_statistics"]
