"""Shared by the EAR tools: load a trained EAR, roll out explicit task embeddings, render.

``MUJOCO_GL`` must name a backend before MuJoCo renders (``egl`` headless, ``glfw`` with a
screen, ``osmesa`` in software); :func:`check_render_backend` says so instead of a GL trace.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from palm_lightning.envs.families import family_class, make_task_env
from palm_lightning.envs.multitask import MultiTaskVectorEnv, run_episodes
from palm_lightning.models.ear.ear import EAR


def load_ear(path: str | Path, family: str | None = None) -> tuple[EAR, dict[str, Any]]:
    """The model and its task information (family, task indices, names, split, env options)."""
    model = EAR.from_checkpoint(path, family=family)
    info = dict(model.task_info)
    if not info.get("family"):
        raise ValueError(f"{path} carries no task information (trained outside MultiTaskDataModule?)")
    family_cls = family_class(info["family"])
    probe = make_task_env(info["family"], 0, **info.get("env_kwargs", {}))
    obs_shape, action_shape = probe.observation_space.shape, probe.action_space.shape
    assert obs_shape is not None and action_shape is not None  # the families' spaces are Boxes
    obs_dim, action_dim = obs_shape[0], action_shape[0]
    probe.close()
    if (obs_dim, action_dim) != (model.hp.obs_dim, model.hp.action_dim):
        raise ValueError(
            f"{path} was built for observations {model.hp.obs_dim} / actions {model.hp.action_dim} but "
            f"{info['family']} has {obs_dim} / {action_dim}"
        )
    info["family_class"] = family_cls
    return model, info


def check_slot(info: dict[str, Any], slot: int) -> None:
    """A trained-task index (the model's one-hot index) must exist in the checkpoint."""
    names = info["task_names"]
    if not 0 <= slot < len(names):
        listing = ", ".join(f"{i}: {n}" for i, n in enumerate(names))
        raise ValueError(f"task {slot} is not a trained task of this checkpoint; its tasks are {{{listing}}}")


def rollout_embeddings(
    model: EAR,
    family: str,
    task: int,
    ltes: Tensor,
    split: str = "train",
    seed: int = 0,
    env_kwargs: dict[str, Any] | None = None,
) -> list[dict[str, float]]:
    """One deterministic episode per row of ``ltes`` ``(N, lte_dim)``, all in parallel, on the
    family's ``task`` (whose reward is reported as ``return``)."""
    env = MultiTaskVectorEnv(family, [task] * ltes.shape[0], split, seed=seed, env_kwargs=env_kwargs)
    try:
        return run_episodes(env, lambda obs: model.act_with_embedding(obs, ltes), seed=seed)
    finally:
        env.close()


def check_render_backend() -> None:
    """Fail early, with the fix, when MuJoCo has no rendering backend chosen."""
    if not os.environ.get("MUJOCO_GL"):
        raise RuntimeError(
            "rendering needs a MuJoCo GL backend: set MUJOCO_GL=egl (headless GPU/Mesa), MUJOCO_GL=osmesa "
            "(software) or MUJOCO_GL=glfw (with a display), e.g. `MUJOCO_GL=egl python -m palm_lightning.tools...`"
        )


@torch.no_grad()
def render_strip(
    model: EAR,
    family: str,
    task: int,
    lte: Tensor,
    frames: int = 8,
    every: int = 20,
    size: int = 160,
    env_kwargs: dict[str, Any] | None = None,
    seed: int = 0,
) -> np.ndarray:
    """A horizontal strip of ``frames`` rendered frames (one every ``every`` steps) of one
    episode driven by ``lte`` ``(lte_dim,)``: ``(size, frames·size, 3)`` uint8."""
    check_render_backend()
    # gymnasium's default free camera stays put and the runner leaves the frame within a second;
    # every locomotion model has a "track" camera that follows the body; Meta-World's families film
    # the table from above (the family's render_camera; pass camera_* to override).
    default = getattr(family_class(family), "render_camera", "track")
    camera = {} if any(k.startswith("camera_") for k in (env_kwargs or {})) else {"camera_name": default}
    env = make_task_env(family, task, render_mode="rgb_array", width=size, height=size, **camera, **(env_kwargs or {}))
    try:
        obs, _ = env.reset(seed=seed)
        images: list[np.ndarray] = []
        for step in range(frames * every):
            if step % every == 0:
                frame = env.render()
                assert isinstance(frame, np.ndarray)  # render_mode="rgb_array": one RGB array
                images.append(frame)
            action = model.act_with_embedding(torch.as_tensor(obs, dtype=torch.float32)[None], lte[None])[0]
            obs, _, terminated, truncated, _ = env.step(action.numpy())
            if terminated or truncated:
                break
        while len(images) < frames:
            images.append(np.zeros_like(images[0]))
        return np.concatenate(images, axis=1)
    finally:
        env.close()
