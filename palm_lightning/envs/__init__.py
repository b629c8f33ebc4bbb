"""Environments: PALM's latent manifold (batched torch + gymnasium), EAR's MuJoCo locomotion task
families (:mod:`palm_lightning.envs.locomotion`) and Meta-World manipulation task families
(:mod:`palm_lightning.envs.manipulation`, needs the optional ``metaworld`` package);
:mod:`palm_lightning.envs.families` looks any family up by name.

Importing :mod:`palm_lightning` registers ``palm_lightning/LatentManifold-v0``, the locomotion ids
``palm_lightning/<Name>-v0`` (200-step limit) and the manipulation ids (500-step limit) with
gymnasium; registration imports neither MuJoCo nor Meta-World.
"""

from __future__ import annotations

import gymnasium

from palm_lightning.envs.latent_manifold import LatentManifold, from_uint8, to_uint8

LATENT_MANIFOLD_ID = "palm_lightning/LatentManifold-v0"

LOCOMOTION_FAMILIES: dict[str, str] = {
    "halfcheetah_vel": "HalfCheetahVel",
    "hopper_vel": "HopperVel",
    "walker_vel": "WalkerVel",
    "ant_dir": "AntDir",
    "halfcheetah_run_jump": "HalfCheetahRunJump",
}
"""Short family name → ``<Name>``: id ``palm_lightning/<Name>-v0``, class ``<Name>Env`` in
:mod:`palm_lightning.envs.locomotion` (named here so that registration needs no MuJoCo import)."""
LOCOMOTION_EPISODE_STEPS = 200

MANIPULATION_FAMILIES: dict[str, str] = {
    "metaworld_reach": "MetaWorldReach",
    "metaworld_push": "MetaWorldPush",
    "metaworld_mt10": "MetaWorldMT10",
}
"""Short family name → ``<Name>``: id ``palm_lightning/<Name>-v0``, class ``<Name>Env`` in
:mod:`palm_lightning.envs.manipulation` (named here so that registration needs no Meta-World)."""
MANIPULATION_EPISODE_STEPS = 500  # Meta-World's max_path_length, its benchmarks' episode length


def registered_id(name: str) -> str:
    """``"HalfCheetahVel"`` → ``"palm_lightning/HalfCheetahVel-v0"``: a family's gymnasium id."""
    return f"palm_lightning/{name}-v0"


def register_envs() -> None:
    """Register the package's environments with gymnasium (idempotent)."""
    if LATENT_MANIFOLD_ID not in gymnasium.registry:
        gymnasium.register(
            id=LATENT_MANIFOLD_ID,
            entry_point="palm_lightning.envs.gym:LatentManifoldEnv",
            vector_entry_point="palm_lightning.envs.gym:LatentManifoldVectorEnv",
            disable_env_checker=False,
        )
    for name in LOCOMOTION_FAMILIES.values():
        env_id = registered_id(name)
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point=f"palm_lightning.envs.locomotion:{name}Env",
                max_episode_steps=LOCOMOTION_EPISODE_STEPS,
            )
    for name in MANIPULATION_FAMILIES.values():
        env_id = registered_id(name)
        if env_id not in gymnasium.registry:
            gymnasium.register(
                id=env_id,
                entry_point=f"palm_lightning.envs.manipulation:{name}Env",
                max_episode_steps=MANIPULATION_EPISODE_STEPS,
            )


register_envs()

__all__ = [
    "LATENT_MANIFOLD_ID",
    "LOCOMOTION_EPISODE_STEPS",
    "LOCOMOTION_FAMILIES",
    "MANIPULATION_EPISODE_STEPS",
    "MANIPULATION_FAMILIES",
    "LatentManifold",
    "from_uint8",
    "register_envs",
    "registered_id",
    "to_uint8",
]
