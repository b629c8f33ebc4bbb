"""Atari frames collected offline with ale-py: the image data of PALM's Atari experiments and the
frames + RAM of the AtariARI state probe.

Each game is played by a random agent through gymnasium's own Atari stack —
``gymnasium.make("ALE/<Game>-v5", frameskip=1, ...)`` wrapped in
:class:`gymnasium.wrappers.AtariPreprocessing` (grayscale, ``screen_size``², 4-frame skip with
max-pooling of the last two frames, up to 30 no-ops after reset) — and every observation is stored
with the game's index (the class label), the 128-byte RAM at that moment, an episode id and the
step within the episode. A collection is deterministic for a seed and is cached in ``data_dir`` as
one compressed ``.npz`` per (game, resolution, seed, frames, policy, sticky-action probability),
with a JSON header; the frames are split into train/val/test **by episode**, never by frame, so
that no test frame has a near-duplicate neighbour from the same episode in the training split.

Batches are ``(images, labels)`` like the other image DataModules (``symmetric`` normalisation to
``[-1, 1]`` by default), so :class:`~palm_lightning.models.ConditionalStyleGAN` and
:class:`~palm_lightning.models.SimSiamImages` train on it unchanged; with ``serve_ram: true`` they
are ``(images, labels, ram)`` (what :class:`~palm_lightning.models.AtariStateProbe` reads).
"""

from __future__ import annotations

import json
import os
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, get_args

import numpy as np
import torch
from torch import Tensor

from palm_lightning.datamodules.images.base import ImageDataModule, Normalization, UInt8ImageDataset

DEFAULT_GAMES = ("Pong", "Breakout", "Boxing", "MsPacman", "Seaquest", "Freeway")
"""Our default selection: six Atari-100k games that AtariARI also annotates, mixing paddle, shooter,
maze and crossing games (PALM's own game list is not public)."""

INSTALL_HINT = 'pip install -c constraints.txt -e ".[atari]"'
CACHE_FORMAT = 1  # bump when the file layout changes: older files are then refused as stale
ARRAYS = ("frames", "ram", "episode", "step")
Policy = Literal["uniform", "uniform_no_noop"]
Split = Literal["train", "val", "test"]


class AtariDataError(RuntimeError):
    """A cached collection that cannot be used (unreadable, truncated, or made with other settings)."""


def _ale_py() -> Any:
    """Import ale-py, or say how to install it (it is an optional extra)."""
    try:
        import ale_py
    except ImportError as err:
        raise ModuleNotFoundError(
            f"AtariFramesDataModule needs ale-py (the Arcade Learning Environment and its ROMs): {INSTALL_HINT}"
        ) from err
    return ale_py


def available_rom_ids() -> list[str]:
    """The ALE ROM ids ale-py ships (``"pong"``, ``"ms_pacman"``, …)."""
    return sorted(_ale_py().roms.get_all_rom_ids())


def rom_id(game: str) -> str:
    """The ALE ROM id of a game given as a ROM id (``"ms_pacman"``) or a gymnasium name
    (``"MsPacman"``); unknown games raise a ``ValueError`` listing the available ids."""
    ids = available_rom_ids()
    wanted = game.replace("_", "").replace("-", "").lower()
    for rom in ids:
        if rom.replace("_", "") == wanted:
            return rom
    raise ValueError(f"unknown Atari game {game!r}; available ROM ids ({len(ids)}): {', '.join(ids)}")


def env_id(rom: str) -> str:
    """gymnasium's id of a ROM: ``"ms_pacman"`` → ``"ALE/MsPacman-v5"``."""
    return "ALE/" + "".join(part.capitalize() for part in rom.split("_")) + "-v5"


@dataclass(frozen=True)
class Collection:
    """One game's frames, as cached: ``frames (N, H, W)`` uint8, ``ram (N, 128)`` uint8, and the
    ``episode`` id and ``step`` (within the episode) of each frame, int32."""

    frames: np.ndarray
    ram: np.ndarray
    episode: np.ndarray
    step: np.ndarray
    header: dict[str, Any]


def make_env(
    rom: str, screen_size: int, repeat_action_probability: float, noop_max: int = 30, frame_skip: int = 4
) -> Any:
    """gymnasium's Atari env for ``rom`` behind its ``AtariPreprocessing`` wrapper (grayscale uint8
    ``(screen_size, screen_size)`` observations, one agent step = ``frame_skip`` emulator frames)."""
    ale_py = _ale_py()
    import gymnasium

    gymnasium.register_envs(ale_py)
    env = gymnasium.make(env_id(rom), frameskip=1, repeat_action_probability=repeat_action_probability)
    try:
        return gymnasium.wrappers.AtariPreprocessing(
            env,
            noop_max=noop_max,
            frame_skip=frame_skip,
            screen_size=screen_size,
            terminal_on_life_loss=False,
            grayscale_obs=True,
            scale_obs=False,
        )
    except gymnasium.error.DependencyNotInstalled as err:  # AtariPreprocessing resizes with OpenCV
        env.close()
        raise ModuleNotFoundError(f"gymnasium's AtariPreprocessing needs OpenCV: {INSTALL_HINT} ({err})") from err


def collect(
    rom: str,
    frames: int,
    screen_size: int = 64,
    seed: int = 0,
    policy: Policy = "uniform",
    repeat_action_probability: float = 0.0,
    max_episode_steps: int | None = None,
) -> Collection:
    """Play ``rom`` with a random agent for ``frames`` agent steps and record every observation.

    Deterministic for a given seed: the emulator is seeded through ``reset(seed=seed)`` (which also
    seeds the no-op starts and the sticky actions) and the actions come from
    ``numpy.random.default_rng(seed)``. Frame ``i`` is the observation the agent acted on, with the
    RAM read at the same moment; the observation after an episode's last step is not recorded (the
    next episode's first frame follows). ``max_episode_steps`` cuts episodes after that many agent
    steps (``None``: the game's own end, or v5's 108 000-frame limit).
    """
    if frames < 1:
        raise ValueError(f"frames must be positive, got {frames}")
    env = make_env(rom, screen_size, repeat_action_probability)
    rng = np.random.default_rng(seed)
    num_actions = int(env.action_space.n)
    low = 1 if policy == "uniform_no_noop" and num_actions > 1 else 0  # action 0 is NOOP in every minimal set
    out_frames = np.empty((frames, screen_size, screen_size), dtype=np.uint8)
    out_ram = np.empty((frames, 128), dtype=np.uint8)
    episode = np.empty(frames, dtype=np.int32)
    step = np.empty(frames, dtype=np.int32)
    ale = env.unwrapped.ale
    start = time.perf_counter()
    try:
        obs, _ = env.reset(seed=seed)
        ep = t = 0
        for i in range(frames):
            out_frames[i], out_ram[i], episode[i], step[i] = obs, ale.getRAM(), ep, t
            obs, _, terminated, truncated, _ = env.step(int(rng.integers(low, num_actions)))
            t += 1
            if terminated or truncated or (max_episode_steps is not None and t >= max_episode_steps):
                obs, _ = env.reset()
                ep, t = ep + 1, 0
    finally:
        env.close()
    seconds = time.perf_counter() - start
    header = {
        "format": CACHE_FORMAT,
        "game": rom,
        "env_id": env_id(rom),
        "frames": frames,
        "screen_size": screen_size,
        "seed": seed,
        "policy": policy,
        "repeat_action_probability": repeat_action_probability,
        "max_episode_steps": max_episode_steps,
        "wrapper": "AtariPreprocessing(grayscale, frame_skip=4, noop_max=30, terminal_on_life_loss=False)",
        "episodes": int(episode[-1]) + 1,
        "frames_per_second": round(frames / max(seconds, 1e-9), 1),
        "ale_py": str(getattr(_ale_py(), "__version__", "?")),
    }
    return Collection(out_frames, out_ram, episode, step, header)


def save_collection(path: Path, collection: Collection) -> None:
    """Write a compressed ``.npz`` (arrays + JSON header) under a temporary name, then rename it,
    so an interrupted write never leaves a half file under the real name."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f"{path.name}.{os.getpid()}.partial")  # ranks collecting at once do not collide
    header = np.frombuffer(json.dumps(collection.header).encode(), dtype=np.uint8)
    with open(partial, "wb") as f:
        np.savez_compressed(
            f,
            frames=collection.frames,
            ram=collection.ram,
            episode=collection.episode,
            step=collection.step,
            header=header,
        )
    partial.replace(path)


def load_collection(path: Path, expected: dict[str, Any] | None = None) -> Collection:
    """Read a cached collection; anything wrong with it is an :class:`AtariDataError` naming the file
    and the fix (``rebuild=True``). ``expected``: header values the file must have."""
    fix = "delete it or pass rebuild=True (--data.init_args.rebuild true) to collect it again"
    try:
        with np.load(path, allow_pickle=False) as data:
            header = json.loads(data["header"].tobytes().decode())
            arrays = {name: data[name] for name in ARRAYS}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile, UnicodeDecodeError) as err:
        raise AtariDataError(
            f"{path}: cached Atari frames are unreadable ({type(err).__name__}: {err}); {fix}"
        ) from err
    n = len(arrays["frames"])
    size = header.get("screen_size")
    problems = [f"{name} has {len(arrays[name])} rows, frames {n}" for name in ARRAYS[1:] if len(arrays[name]) != n]
    if arrays["frames"].dtype != np.uint8 or arrays["frames"].shape[1:] != (size, size):
        problems.append(f"frames are {arrays['frames'].dtype} {arrays['frames'].shape}, not uint8 (N, {size}, {size})")
    if arrays["ram"].dtype != np.uint8 or arrays["ram"].shape[1:] != (128,):
        problems.append(f"ram is {arrays['ram'].dtype} {arrays['ram'].shape}, not uint8 (N, 128)")
    for key, value in (expected or {}).items():
        if header.get(key) != value:
            problems.append(f"header {key}={header.get(key)!r}, expected {value!r}")
    if problems:
        raise AtariDataError(f"{path}: cached Atari frames do not match ({'; '.join(problems)}); {fix}")
    return Collection(arrays["frames"], arrays["ram"], arrays["episode"], arrays["step"], header)


def split_episodes(
    episode: np.ndarray, fractions: tuple[float, float, float], seed: int, min_episode_length: int = 0
) -> dict[str, np.ndarray]:
    """Frame indices of train/val/test, split by whole episodes (shuffled with ``seed``).

    Episodes of at most ``min_episode_length`` frames are dropped first (AtariARI: 64). Every split
    gets at least one episode; fewer than three usable episodes is a ``ValueError``.
    """
    ids, counts = np.unique(episode, return_counts=True)
    ids = ids[counts > min_episode_length]
    if len(ids) < 3:
        raise ValueError(
            f"{len(ids)} episode(s) longer than min_episode_length={min_episode_length}: train/val/test need at "
            "least 3; collect more frames_per_game, lower min_episode_length, or set max_episode_steps"
        )
    order = np.random.default_rng(seed).permutation(ids)
    n_train = max(1, round(fractions[0] * len(order)))
    n_val = max(1, round(fractions[1] * len(order)))
    n_train = min(n_train, len(order) - n_val - 1)  # leave at least one test episode
    parts = {"train": order[:n_train], "val": order[n_train : n_train + n_val], "test": order[n_train + n_val :]}
    return {name: np.flatnonzero(np.isin(episode, part)) for name, part in parts.items()}


class AtariFramesDataset(UInt8ImageDataset):
    """Frames ``(N, 1, H, W)`` uint8 with their game label, RAM, episode id (unique across games:
    ``game · 10⁶ + episode``) and step; items are ``(image, label)``, with ``serve_ram``
    ``(image, label, ram)``, and with ``serve_next`` ``(image, label, next_image)``: then the items
    are the frames whose next frame (same episode, next step) is in the set, and only those."""

    def __init__(
        self,
        images: Tensor,
        labels: Tensor,
        ram: Tensor,
        episode: Tensor,
        step: Tensor,
        serve_ram: bool = False,
        serve_next: bool = False,
    ) -> None:
        super().__init__(images, labels)
        if serve_ram and serve_next:
            raise ValueError("serve_ram and serve_next cannot both be set (items carry one extra tensor)")
        self.ram, self.episode, self.step, self.serve_ram, self.serve_next = ram, episode, step, serve_ram, serve_next
        successor = (episode[1:] == episode[:-1]) & (step[1:] == step[:-1] + 1)
        self.pair_index = torch.nonzero(successor).flatten()  # frames whose next frame follows them

    def __len__(self) -> int:
        return len(self.pair_index) if self.serve_next else super().__len__()

    def __getitem__(self, index: int) -> tuple[Tensor, ...]:  # type: ignore[override]
        if self.serve_next:
            i = int(self.pair_index[index])
            return self.images[i], self.labels[i], self.images[i + 1]
        if self.serve_ram:
            return self.images[index], self.labels[index], self.ram[index]
        return self.images[index], self.labels[index]


class AtariFramesDataModule(ImageDataModule):
    """Grayscale Atari frames of several games, labelled by game, with RAM for state probes.

    Which settings are whose:

    - gymnasium/ALE v5 and its ``AtariPreprocessing`` (DQN's standard): grayscale, 4-frame skip with
      max-pooling, up to 30 no-op starts; no frame stacking (single frames are what a generator
      produces and what AtariARI probes).
    - AtariARI (Anand et al. 2019): a random agent, RAM labels, split by episode 70/10/20,
      episodes of ≤ 64 frames dropped, test frames identical to a train/val frame removed. AtariARI
      ran ``*NoFrameskip-v4`` (no sticky actions) with DeepMind's wrappers at 160×210.
    - ours: ``screen_size`` 64 (84 is DQN's; 64 keeps a generator small), ``policy: uniform`` (every
      action of the minimal set, NOOP included — the usual "random agent" of Atari tables;
      ``uniform_no_noop`` is AtariARI's code, which never samples action 0),
      ``repeat_action_probability`` 0 (v5's default is 0.25; AtariARI and the Atari-100k literature
      use 0), whole game episodes (no end-of-life episodes), and the default games.

    The cache file of each game is ``<data_dir>/atari/<rom>_<size>px_seed<seed>_<frames>f_<policy>_sticky<p>.npz``
    (frames, RAM, episode and step arrays plus a JSON header). The class label of a frame is the
    position of its game in ``games`` (set when loading, so one file serves any game list).

    Args:
        games: gymnasium names (``"MsPacman"``) or ALE ROM ids (``"ms_pacman"``).
        frames_per_game: agent steps collected per game (AtariARI: 50 000).
        screen_size: side of the square frames (64 or 84).
        seed: seed of the collection and of the episode split.
        policy: ``uniform`` or ``uniform_no_noop`` (see above).
        repeat_action_probability: sticky-action probability of the emulator.
        max_episode_steps: cut episodes after this many agent steps (``None``: the game decides).
        split: train/val/test fractions of each game's episodes.
        min_episode_length: drop episodes with at most this many frames (AtariARI: 64).
        drop_test_duplicates: remove test frames identical to a train or val frame of the same game.
        serve_ram: batches are ``(images, labels, ram)`` instead of ``(images, labels)``.
        serve_next: training batches are ``(images, labels, next_images)``, consecutive frames of
            one episode (for temporal objectives: :class:`~palm_lightning.models.STDIMFrames`);
            validation and test batches stay ``(images, labels)``.
        rebuild: delete the cached files of these games and settings and collect them again.
        data_dir, normalization, batch_size, num_workers: as for
            :class:`~palm_lightning.datamodules.images.base.ImageDataModule`.
    """

    channels = 1

    def __init__(
        self,
        data_dir: str = "data",
        games: tuple[str, ...] | list[str] = DEFAULT_GAMES,
        frames_per_game: int = 50_000,
        screen_size: int = 64,
        seed: int = 0,
        policy: Policy = "uniform",
        repeat_action_probability: float = 0.0,
        max_episode_steps: int | None = None,
        split: tuple[float, float, float] = (0.7, 0.1, 0.2),
        min_episode_length: int = 64,
        drop_test_duplicates: bool = True,
        serve_ram: bool = False,
        serve_next: bool = False,
        rebuild: bool = False,
        normalization: Normalization = "symmetric",
        batch_size: int = 128,
        num_workers: int = 0,
    ) -> None:
        super().__init__(
            data_dir=data_dir,
            resolution=screen_size,
            normalization=normalization,
            batch_size=batch_size,
            num_workers=num_workers,
            seed=seed,
        )
        if not games:
            raise ValueError("games is empty")
        if policy not in get_args(Policy):  # a config can pass any string
            raise ValueError(f"policy must be 'uniform' or 'uniform_no_noop', got {policy!r}")
        fractions = [float(f) for f in split]  # a YAML list arrives as a list, of any length
        if len(fractions) != 3 or any(f < 0 for f in fractions) or abs(sum(fractions) - 1.0) > 1e-6:
            raise ValueError(f"split must be three non-negative fractions summing to 1, got {split}")
        self.roms = tuple(rom_id(g) for g in games)
        if len(set(self.roms)) != len(self.roms):
            raise ValueError(f"games repeats a game: {list(games)}")
        self.games = tuple(games)
        self.class_names = self.roms
        self.num_classes = len(self.roms)
        self.frames_per_game = frames_per_game
        self.screen_size = screen_size
        self.policy: Policy = policy
        self.repeat_action_probability = repeat_action_probability
        self.max_episode_steps = max_episode_steps
        self.split: tuple[float, float, float] = (fractions[0], fractions[1], fractions[2])
        self.min_episode_length = min_episode_length
        self.drop_test_duplicates = drop_test_duplicates
        if serve_ram and serve_next:
            raise ValueError("serve_ram and serve_next cannot both be set: choose RAM labels or next frames")
        self.serve_ram = serve_ram
        self.serve_next = serve_next
        self.rebuild = rebuild
        self._rebuilt: set[str] = set()
        self.train_set: AtariFramesDataset | None = None
        self.val_set: AtariFramesDataset | None = None
        self.test_set: AtariFramesDataset | None = None

    # --- the cache -------------------------------------------------------------------------------
    def cache_path(self, rom: str) -> Path:
        """The cache file of one game under the current settings."""
        p = f"{self.repeat_action_probability:g}".replace(".", "p")
        name = f"{rom}_{self.screen_size}px_seed{self.seed}_{self.frames_per_game}f_{self.policy}_sticky{p}"
        if self.max_episode_steps is not None:
            name += f"_max{self.max_episode_steps}"
        return self.data_dir / "atari" / f"{name}.npz"

    def _expected_header(self, rom: str) -> dict[str, Any]:
        return {
            "format": CACHE_FORMAT,
            "game": rom,
            "frames": self.frames_per_game,
            "screen_size": self.screen_size,
            "seed": self.seed,
            "policy": self.policy,
            "repeat_action_probability": self.repeat_action_probability,
            "max_episode_steps": self.max_episode_steps,
        }

    def prepare_data(self) -> None:
        """Collect and cache every game that has no cache file yet (all of them with ``rebuild``)."""
        for rom in self.roms:
            path = self.cache_path(rom)
            if self.rebuild and rom not in self._rebuilt:
                path.unlink(missing_ok=True)
                self._rebuilt.add(rom)  # once per data module: setup() after prepare_data() must not recollect
            if not path.exists():
                save_collection(path, self._collect(rom))

    def _collect(self, rom: str) -> Collection:
        return collect(
            rom,
            self.frames_per_game,
            self.screen_size,
            self.seed,
            self.policy,
            self.repeat_action_probability,
            self.max_episode_steps,
        )

    def load_game(self, rom: str) -> Collection:
        """One game's collection, from the cache (collected first if absent, never deleted here:
        under DDP only ``prepare_data`` on rank 0 applies ``rebuild``)."""
        path = self.cache_path(rom)
        if not path.exists():
            save_collection(path, self._collect(rom))
        return load_collection(path, self._expected_header(rom))

    # --- splits ----------------------------------------------------------------------------------
    def setup(self, stage: str | None = None) -> None:
        if self.train_set is not None:
            return
        if self.trainer is None:  # used on its own: Lightning has not called prepare_data (rebuild)
            self.prepare_data()
        parts: dict[str, list[tuple[np.ndarray, ...]]] = {"train": [], "val": [], "test": []}
        for label, rom in enumerate(self.roms):
            game = self.load_game(rom)
            index = split_episodes(game.episode, self.split, self.seed + label, self.min_episode_length)
            if self.drop_test_duplicates:
                index["test"] = _drop_duplicates(
                    game.frames, index["test"], np.concatenate([index["train"], index["val"]])
                )
            for name, idx in index.items():
                episode = game.episode[idx].astype(np.int64) + label * 1_000_000
                parts[name].append((game.frames[idx], np.full(len(idx), label), game.ram[idx], episode, game.step[idx]))
        self.train_set = self._dataset(parts["train"], serve_next=self.serve_next)
        self.val_set, self.test_set = self._dataset(parts["val"]), self._dataset(parts["test"])

    def _dataset(self, chunks: list[tuple[np.ndarray, ...]], serve_next: bool = False) -> AtariFramesDataset:
        frames, labels, ram, episode, step = (np.concatenate(column) for column in zip(*chunks, strict=True))
        return AtariFramesDataset(
            torch.from_numpy(frames).unsqueeze(1),
            torch.from_numpy(labels).long(),
            torch.from_numpy(ram),
            torch.from_numpy(episode),
            torch.from_numpy(step.astype(np.int64)),
            serve_ram=self.serve_ram,
            serve_next=serve_next,
        )

    def split_set(self, split: Split) -> AtariFramesDataset:
        """The dataset of one split (set up on first use)."""
        self.setup()
        dataset = {"train": self.train_set, "val": self.val_set, "test": self.test_set}[split]
        assert dataset is not None  # setup() made all three
        return dataset

    def on_after_batch_transfer(self, batch: Any, dataloader_idx: int) -> Any:
        images, *rest = batch  # next frames (uint8, 4-D) are images too; RAM (uint8, 2-D) is not
        return (self.normalize(images), *(self.normalize(x) if x.dim() == 4 else x for x in rest))

    def load_split(self, split: Literal["train", "test"]) -> tuple[Tensor, Tensor]:
        dataset = self.split_set(split)
        return dataset.images, dataset.labels


def _drop_duplicates(frames: np.ndarray, test: np.ndarray, others: np.ndarray) -> np.ndarray:
    """``test`` indices whose frame is not byte-identical to any frame at ``others`` (AtariARI's
    protocol: a static screen seen in training would make a test frame free)."""
    seen = {frames[i].tobytes() for i in others}
    return test[[frames[i].tobytes() not in seen for i in test]] if len(test) else test
