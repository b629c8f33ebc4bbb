"""Environments: PALM's latent manifold (batched torch + gymnasium).

Importing :mod:`palm_lightning` registers ``palm_lightning/LatentManifold-v0`` with gymnasium.
"""

from __future__ import annotations

import gymnasium

from palm_lightning.envs.latent_manifold import LatentManifold, from_uint8, to_uint8

LATENT_MANIFOLD_ID = "palm_lightning/LatentManifold-v0"


def register_envs() -> None:
    """Register the package's environments with gymnasium (idempotent)."""
    if LATENT_MANIFOLD_ID not in gymnasium.registry:
        gymnasium.register(
            id=LATENT_MANIFOLD_ID,
            entry_point="palm_lightning.envs.gym:LatentManifoldEnv",
            vector_entry_point="palm_lightning.envs.gym:LatentManifoldVectorEnv",
            disable_env_checker=False,
        )


register_envs()

__all__ = ["LATENT_MANIFOLD_ID", "LatentManifold", "from_uint8", "register_envs", "to_uint8"]
