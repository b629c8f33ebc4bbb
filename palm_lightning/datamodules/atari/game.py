"""One real ALE game as an experience stream: the Atari-100k protocol for RL fine-tuning.

Each environment is ``gymnasium.make("ALE/<Game>-v5", frameskip=1, repeat_action_probability=…)``
behind gymnasium's :class:`~gymnasium.wrappers.AtariPreprocessing` (grayscale, ``screen_size``²,
4-frame skip with max-pooling, up to ``noop_max`` no-ops after reset; the same stack as
:class:`~palm_lightning.datamodules.AtariFramesDataModule`) and
:class:`~gymnasium.wrappers.FrameStackObservation` (the last ``frame_stack`` frames as channels:
observations ``(frame_stack, screen_size, screen_size)`` uint8). The action set is the game's
minimal one (v5's default).

Atari-100k as Dopamine runs it (``labs/atari_100k/configs/DrQ_eps.gin``): no sticky actions,
``terminal_on_life_loss`` (a lost life ends the *learning* episode: its transition does not
bootstrap, but the game goes on — no emulator reset, the next row of the replay starts a new
window), at most 27 000 agent steps (108 000 frames, v5's limit) per game, rewards clipped to
``[−1, 1]`` for learning (Dopamine's DQN agent clips them). The game scores of finished games
(unclipped, summed over lives) are what :meth:`AtariGameDataModule.pop_episode_returns` hands the
module for logging and the human-normalised score.

100k *agent steps* = 400k frames: ``env_steps`` of the stream counts agent steps.
"""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np
import torch
from torch import Tensor

from palm_lightning.datamodules.atari.frames import env_id, make_env, rom_id
from palm_lightning.datamodules.streams.experience import ExperienceDataModule

ATARI_100K_SCORES: dict[str, tuple[float, float]] = {
    "Alien": (227.8, 7127.7),
    "Amidar": (5.8, 1719.5),
    "Assault": (222.4, 742.0),
    "Asterix": (210.0, 8503.3),
    "BankHeist": (14.2, 753.1),
    "BattleZone": (2360.0, 37187.5),
    "Boxing": (0.1, 12.1),
    "Breakout": (1.7, 30.5),
    "ChopperCommand": (811.0, 7387.8),
    "CrazyClimber": (10780.5, 35829.4),
    "DemonAttack": (152.1, 1971.0),
    "Freeway": (0.0, 29.6),
    "Frostbite": (65.2, 4334.7),
    "Gopher": (257.6, 2412.5),
    "Hero": (1027.0, 30826.4),
    "Jamesbond": (29.0, 302.8),
    "Kangaroo": (52.0, 3035.0),
    "Krull": (1598.0, 2665.5),
    "KungFuMaster": (258.5, 22736.3),
    "MsPacman": (307.3, 6951.6),
    "Pong": (-20.7, 14.6),
    "PrivateEye": (24.9, 69571.3),
    "Qbert": (163.9, 13455.0),
    "RoadRunner": (11.5, 7845.0),
    "Seaquest": (68.4, 42054.7),
    "UpNDown": (533.4, 11693.2),
}
"""(random, human) game scores of the 26 Atari-100k games, as the Atari-100k papers normalise
(Kaiser et al. 2020; van Hasselt et al. 2019; Agarwal et al. 2021): the random and human scores
of Wang et al. (2016, dueling networks) / Mnih et al. (2015), as tabulated in Dopamine's
``labs/atari_100k/normalization_utils.py``."""


def human_normalized_score(game: str, score: float) -> float:
    """``(score − random) / (human − random)`` for an Atari-100k game (gymnasium's name, e.g.
    ``"MsPacman"``, or ALE's ROM id, ``"ms_pacman"``)."""
    name = env_id(rom_id(game))[len("ALE/") : -len("-v5")]
    if name not in ATARI_100K_SCORES:
        raise ValueError(f"{game!r} is not one of the 26 Atari-100k games: {', '.join(ATARI_100K_SCORES)}")
    random, human = ATARI_100K_SCORES[name]
    return (score - random) / (human - random)


class AtariGames:
    """``num_envs`` copies of one game, stepped one after the other on the CPU (the experience
    stream's batched-environment interface: tensors in, tensors out).

    ``reset(mask)`` resets the masked environments — a real emulator reset after a game over or a
    truncation, and only a new learning episode (same game, same frames) after a lost life.
    """

    def __init__(
        self,
        game: str,
        num_envs: int,
        seed: int,
        screen_size: int = 84,
        frame_stack: int = 4,
        noop_max: int = 30,
        repeat_action_probability: float = 0.0,
        terminal_on_life_loss: bool = True,
        clip_rewards: bool = True,
        max_episode_steps: int | None = None,
    ) -> None:
        rom = rom_id(game)
        self.game = env_id(rom)[len("ALE/") : -len("-v5")]
        self.num_envs = num_envs
        self.obs_shape = (frame_stack, screen_size, screen_size)
        self.terminal_on_life_loss = terminal_on_life_loss
        self.clip_rewards = clip_rewards
        self.max_episode_steps = max_episode_steps
        self.envs = [
            gymnasium.wrappers.FrameStackObservation(
                make_env(rom, screen_size, repeat_action_probability, noop_max=noop_max), frame_stack
            )
            for _ in range(num_envs)
        ]
        self.action_space = self.envs[0].action_space
        self.seed = seed
        self._seeded = False
        self._obs = np.zeros((num_envs, *self.obs_shape), dtype=np.uint8)
        self._lives = [0] * num_envs
        self._game_over = [True] * num_envs
        self._steps = [0] * num_envs
        self._score = [0.0] * num_envs
        self.finished_scores: list[float] = []

    def _real_reset(self, i: int) -> None:
        seed = self.seed * 1000 + i if not self._seeded else None
        obs, _ = self.envs[i].reset(seed=seed)
        self._obs[i] = obs
        self._lives[i] = int(self.envs[i].unwrapped.ale.lives())  # type: ignore[attr-defined]
        self._game_over[i], self._steps[i], self._score[i] = False, 0, 0.0

    def reset(self, mask: Tensor | None = None, seed: int | None = None) -> tuple[Tensor, dict]:
        ids = range(self.num_envs) if mask is None else mask.nonzero().flatten().tolist()
        for i in ids:
            if mask is None or self._game_over[i]:
                self._real_reset(i)
        self._seeded = True
        return torch.from_numpy(self._obs.copy()), {}

    def step(self, action: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor, dict]:
        reward = np.zeros(self.num_envs, dtype=np.float32)
        terminated = np.zeros(self.num_envs, dtype=bool)
        truncated = np.zeros(self.num_envs, dtype=bool)
        for i, a in enumerate(action.flatten().tolist()):
            obs, r, term, trunc, _ = self.envs[i].step(int(a))
            self._obs[i] = obs
            self._score[i] += float(r)
            self._steps[i] += 1
            lives = int(self.envs[i].unwrapped.ale.lives())  # type: ignore[attr-defined]
            trunc = bool(trunc) or (self.max_episode_steps is not None and self._steps[i] >= self.max_episode_steps)
            life_lost = self.terminal_on_life_loss and lives < self._lives[i]
            self._lives[i] = lives
            reward[i] = max(-1.0, min(1.0, float(r))) if self.clip_rewards else float(r)
            terminated[i] = bool(term) or life_lost
            truncated[i] = trunc and not terminated[i]
            if term or trunc:
                self._game_over[i] = True
                self.finished_scores.append(self._score[i])
        return (
            torch.from_numpy(self._obs.copy()),
            torch.from_numpy(reward),
            torch.from_numpy(terminated),
            torch.from_numpy(truncated),
            {},
        )

    def state_dict(self) -> dict[str, Any]:
        """Counters only: the emulators are not checkpointed (a resume starts new games)."""
        return {"finished_scores": list(self.finished_scores)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.finished_scores = list(state.get("finished_scores", []))
        self._game_over = [True] * self.num_envs

    def close(self) -> None:
        for env in self.envs:
            env.close()


class AtariGameDataModule(ExperienceDataModule):
    """The experience stream over one ALE game (see the module docstring).

    Args:
        game: the game, gymnasium's name (``"Pong"``) or ALE's ROM id (``"ms_pacman"``).
        screen_size: frame side in pixels (Atari-100k: 84; it must match the encoder's).
        frame_stack: frames stacked as channels (Atari-100k: 4; 1 for a one-frame encoder).
        noop_max: random no-ops after a reset (gymnasium's default 30; our choice, not checked
            against Dopamine's Atari-100k runner).
        repeat_action_probability: sticky actions (Atari-100k: 0).
        terminal_on_life_loss: a lost life ends the learning episode (Atari-100k: yes).
        clip_rewards: learn from rewards clipped to ``[−1, 1]`` (DQN family: yes).
        max_episode_steps: cut games after that many agent steps (``None``: v5's 27 000).
        **kwargs: the stream's (:class:`ExperienceDataModule`): DrQ(ε)'s are ``num_envs=1``,
            ``batch_size=32``, ``nstep=10``, ``discount=0.99``, ``seed_frames=1600`` (the min
            replay history), one update per step, ``buffer_capacity`` ≥ the run's steps.
    """

    def __init__(
        self,
        game: str = "Pong",
        screen_size: int = 84,
        frame_stack: int = 4,
        noop_max: int = 30,
        repeat_action_probability: float = 0.0,
        terminal_on_life_loss: bool = True,
        clip_rewards: bool = True,
        max_episode_steps: int | None = None,
        num_envs: int = 1,
        batch_size: int = 32,
        buffer_capacity: int = 100_000,
        nstep: int = 10,
        discount: float = 0.99,
        seed_frames: int = 1600,
        steps_per_batch: int = 1,
        updates_per_step: int = 1,
        save_buffer: bool = False,
        seed: int = 0,
    ) -> None:
        super().__init__(
            num_envs=num_envs,
            batch_size=batch_size,
            buffer_capacity=buffer_capacity,
            nstep=nstep,
            discount=discount,
            seed_frames=seed_frames,
            steps_per_batch=steps_per_batch,
            updates_per_step=updates_per_step,
            save_buffer=save_buffer,
            seed=seed,
        )
        self.game = game
        self.screen_size = screen_size
        self.frame_stack = frame_stack
        self.noop_max = noop_max
        self.repeat_action_probability = repeat_action_probability
        self.terminal_on_life_loss = terminal_on_life_loss
        self.clip_rewards = clip_rewards
        self.max_episode_steps = max_episode_steps

    @property
    def obs_shape(self) -> tuple[int, int, int]:
        return (self.frame_stack, self.screen_size, self.screen_size)

    def make_env(self, num_envs: int, seed: int, device: torch.device) -> AtariGames:
        return self.make_games(num_envs, seed)

    def make_games(
        self, num_envs: int, seed: int, evaluation: bool = False, max_episode_steps: int | None = None
    ) -> AtariGames:
        """The game ``num_envs`` times; ``evaluation``: whole games, unclipped rewards;
        ``max_episode_steps`` (if given) cuts games sooner than the DataModule's own limit."""
        limits = [s for s in (self.max_episode_steps, max_episode_steps) if s is not None]
        return AtariGames(
            self.game,
            num_envs,
            seed,
            self.screen_size,
            self.frame_stack,
            self.noop_max,
            self.repeat_action_probability,
            terminal_on_life_loss=self.terminal_on_life_loss and not evaluation,
            clip_rewards=self.clip_rewards and not evaluation,
            max_episode_steps=min(limits) if limits else None,
        )

    def _restore(self, state: dict[str, Any]) -> None:
        # The emulators are not in the checkpoint: drop the saved observation so the stream starts
        # new games (and a new replay window) instead of stepping emulators that were never reset.
        super()._restore({k: v for k, v in state.items() if k != "obs"})

    def pop_episode_returns(self) -> list[float]:
        """Game scores of the games finished since the last call (unclipped, over all lives)."""
        if self.env is None:
            return []
        scores = list(self.env.finished_scores)
        self.env.finished_scores.clear()
        return scores
