"""The latent manifold as gymnasium environments, so any RL library can drive it.

- ``gymnasium.make("palm_lightning/LatentManifold-v0", **kwargs)`` → :class:`LatentManifoldEnv`,
  one environment with numpy observations ``uint8 (C, H, W)`` and actions ``float32`` in
  ``[-1, 1]^d``;
- ``gymnasium.make_vec("palm_lightning/LatentManifold-v0", num_envs=N)`` →
  :class:`LatentManifoldVectorEnv`, N environments decoded in one generator forward (gymnasium's
  next-step autoreset).

``kwargs`` are those of :class:`~palm_lightning.envs.latent_manifold.LatentManifold` (e.g.
``generator="my_gan.pt"``, ``episode_length=100``, ``latent_space="w"``, ``device="cuda"``).
Your own generator class plugs in as in a config file, by ``class_path`` / ``init_args``, with its
weights as a plain ``state_dict``::

    gymnasium.make(
        "palm_lightning/LatentManifold-v0",
        generator={"class_path": "my_pkg.MyGenerator", "init_args": {"latent_dim": 16}},
        generator_weights="my_generator.pt",
    )

PALM itself uses the batched torch interface directly (no numpy round trip).
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch
from gymnasium import spaces
from gymnasium.vector import AutoresetMode, VectorEnv

from palm_lightning.envs.latent_manifold import LatentManifold


def _spaces(env: LatentManifold) -> tuple[spaces.Box, spaces.Box]:
    observation = spaces.Box(0, 255, shape=env.obs_shape, dtype=np.uint8)
    action = spaces.Box(-1.0, 1.0, shape=(env.action_dim,), dtype=np.float32)
    return observation, action


def _rgb(images: np.ndarray) -> np.ndarray:
    """``(C, H, W)`` uint8 → ``(H, W, 3)`` for ``render``."""
    hwc = np.moveaxis(images, 0, -1)
    return np.repeat(hwc, 3, axis=-1) if hwc.shape[-1] == 1 else hwc[..., :3]


class LatentManifoldEnv(gymnasium.Env):
    """One latent-manifold environment (numpy in, numpy out). ``info["class"]`` is the episode's
    label, for analysis only."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 10}  # noqa: RUF012  gymnasium types metadata as an instance attribute: ClassVar would contradict it

    def __init__(self, render_mode: str | None = None, **kwargs: Any) -> None:
        kwargs["num_envs"] = 1
        self.manifold = LatentManifold(**kwargs)
        self.observation_space, self.action_space = _spaces(self.manifold)
        self.render_mode = render_mode
        self._last: np.ndarray | None = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        obs, info = self.manifold.reset(seed=seed)
        self._last = obs[0].cpu().numpy()
        return self._last, self._info(info)

    def step(self, action: np.ndarray):
        if self._last is None:
            raise RuntimeError("call reset() before step()")
        batch = torch.as_tensor(np.asarray(action, dtype=np.float32)).reshape(1, -1)
        obs, reward, terminated, truncated, info = self.manifold.step(batch)
        self._last = obs[0].cpu().numpy()
        return self._last, float(reward[0]), bool(terminated[0]), bool(truncated[0]), self._info(info)

    def render(self) -> np.ndarray | None:
        if self.render_mode != "rgb_array" or self._last is None:
            return None
        return _rgb(self._last)

    @staticmethod
    def _info(info: dict[str, torch.Tensor]) -> dict[str, int]:
        return {"class": int(info["class"][0]), "elapsed": int(info["elapsed"][0])}


class LatentManifoldVectorEnv(VectorEnv):
    """N latent-manifold environments behind gymnasium's ``VectorEnv`` API (next-step autoreset:
    the step after an episode ends resets that environment and ignores its action)."""

    metadata = {"render_modes": ["rgb_array"], "autoreset_mode": AutoresetMode.NEXT_STEP}  # noqa: RUF012  gymnasium types metadata as an instance attribute: ClassVar would contradict it

    def __init__(self, num_envs: int = 1, render_mode: str | None = None, **kwargs: Any) -> None:
        kwargs["num_envs"] = num_envs
        self.manifold = LatentManifold(**kwargs)
        self.num_envs = num_envs
        self.single_observation_space, self.single_action_space = _spaces(self.manifold)
        self.observation_space = gymnasium.vector.utils.batch_space(self.single_observation_space, num_envs)
        self.action_space = gymnasium.vector.utils.batch_space(self.single_action_space, num_envs)
        self.render_mode = render_mode
        self._needs_reset = torch.zeros(num_envs, dtype=torch.bool, device=self.manifold.device)
        self._obs: torch.Tensor | None = None

    def reset(self, *, seed: int | list[int] | None = None, options: dict[str, Any] | None = None):
        if isinstance(seed, list):
            seed = seed[0]
        if seed is not None:
            self._np_random, _ = gymnasium.utils.seeding.np_random(seed)
            self.action_space.seed(seed)
        obs, info = self.manifold.reset(seed=seed)
        self._needs_reset.zero_()
        self._obs = obs
        return obs.cpu().numpy(), self._info(info)

    def step(self, actions: np.ndarray):
        if self._obs is None:
            raise RuntimeError("call reset() before step()")
        batch = torch.as_tensor(np.asarray(actions, dtype=np.float32), device=self.manifold.device)
        resetting = self._needs_reset.clone()
        if resetting.any():
            # Environments that finished last step restart now; their action is ignored.
            batch = torch.where(resetting[:, None], torch.zeros_like(batch), batch)
        obs, reward, terminated, truncated, info = self.manifold.step(batch)
        if resetting.any():
            fresh, info = self.manifold.reset(mask=resetting)
            obs = torch.where(resetting[:, None, None, None], fresh, obs)
            reward = torch.where(resetting, torch.zeros_like(reward), reward)
            terminated = terminated & ~resetting
            truncated = truncated & ~resetting
        self._needs_reset = terminated | truncated
        self._obs = obs
        return (
            obs.cpu().numpy(),
            reward.cpu().numpy().astype(np.float64),
            terminated.cpu().numpy(),
            truncated.cpu().numpy(),
            self._info(info),
        )

    def render(self) -> tuple[np.ndarray, ...] | None:
        if self.render_mode != "rgb_array" or self._obs is None:
            return None
        return tuple(_rgb(o) for o in self._obs.cpu().numpy())

    @staticmethod
    def _info(info: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        return {k: v.cpu().numpy() for k, v in info.items()}
