"""Tiny synthetic Atari frame caches shared by the probe, baseline and table tests: no emulator runs.

Each annotated RAM byte named in ``visible`` is drawn into the frames (``player_y`` as a bright row,
``player_x`` as a bright column, eight values each); every other annotated byte is constant, so a probe's
entropy threshold must drop it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from palm_lightning.evaluation.atari_ram import game_annotations

SIZE = 16
VISIBLE = ("player_y", "player_x")
_RAM_SCALE = {"player_y": 7, "player_x": 11}  # RAM value = drawn position index × scale


def synthetic_collection(rom: str, seed: int, visible=VISIBLE, episodes: int = 10, length: int = 30):
    """A cached-frames ``Collection`` of ``episodes × length`` 16×16 frames of ``rom``."""
    from palm_lightning.datamodules.atari.frames import Collection

    rng = np.random.default_rng(seed)
    n = episodes * length
    values = {name: rng.integers(0, 8, n) for name in visible}
    frames = rng.integers(0, 40, (n, SIZE, SIZE)).astype(np.uint8)
    if "player_y" in values:
        frames[np.arange(n), 2 * values["player_y"], :] = 255
    if "player_x" in values:
        frames[np.arange(n), :, 2 * values["player_x"] + 1] = 160
    ram = np.zeros((n, 128), dtype=np.uint8)
    table = game_annotations(rom)
    for name, value in values.items():
        ram[:, table[name][0]] = value * _RAM_SCALE[name]
    episode = np.repeat(np.arange(episodes), length).astype(np.int32)
    step = np.tile(np.arange(length), episodes).astype(np.int32)
    return Collection(frames, ram, episode, step, {})


def tiny_atari(directory: Path, serve_ram: bool = True, batch_size: int = 32, visible=VISIBLE):
    """An AtariFramesDataModule (Pong, Boxing; 300 frames of 16×16 each) over synthetic caches."""
    pytest.importorskip("ale_py")  # the data module resolves game names through ale-py's ROM list
    from palm_lightning.datamodules.atari.frames import AtariFramesDataModule, save_collection

    dm = AtariFramesDataModule(
        data_dir=str(directory),
        games=["Pong", "Boxing"],
        frames_per_game=300,
        screen_size=SIZE,
        min_episode_length=0,
        serve_ram=serve_ram,
        batch_size=batch_size,
    )
    for i, rom in enumerate(dm.roms):  # cached files in place: setup() reads them, nothing is collected
        c = synthetic_collection(rom, seed=i, visible=visible)
        save_collection(dm.cache_path(rom), type(c)(c.frames, c.ram, c.episode, c.step, dm._expected_header(rom)))
    return dm
