"""AtariFramesDataModule: offline collection with ale-py, the cache, the episode split, bad input."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

pytest.importorskip("ale_py")
pytest.importorskip("cv2")  # gymnasium's AtariPreprocessing resizes with OpenCV

from palm_lightning.datamodules.atari import frames as atari
from palm_lightning.datamodules.atari.frames import AtariDataError, AtariFramesDataModule

TINY = dict(games=["Pong", "Breakout"], frames_per_game=200, max_episode_steps=40, min_episode_length=0)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory):
    """One tiny collection (2 games × 200 frames), cached once for the module."""
    root = tmp_path_factory.mktemp("atari")
    AtariFramesDataModule(data_dir=str(root), **TINY).prepare_data()
    return root


def test_collection_is_deterministic_for_a_seed():
    a, b = atari.collect("pong", 120, screen_size=64, seed=3), atari.collect("pong", 120, screen_size=64, seed=3)
    for name in ("frames", "ram", "episode", "step"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
    other = atari.collect("pong", 120, screen_size=64, seed=4)
    assert not np.array_equal(a.ram, other.ram)
    assert a.frames.shape == (120, 64, 64) and a.frames.dtype == np.uint8
    assert a.ram.shape == (120, 128) and a.ram.dtype == np.uint8


def test_episode_ids_and_steps_follow_the_episodes():
    c = atari.collect("breakout", 100, screen_size=84, seed=0, max_episode_steps=30)
    assert c.frames.shape == (100, 84, 84)
    np.testing.assert_array_equal(c.episode, np.arange(100) // 30)
    np.testing.assert_array_equal(c.step, np.arange(100) % 30)


def test_splits_share_no_episode_and_serve_image_batches(data_dir):
    dm = AtariFramesDataModule(data_dir=str(data_dir), batch_size=16, **TINY)
    dm.setup("fit")
    sets = [dm.split_set(s) for s in ("train", "val", "test")]
    episodes = [set(s.episode.tolist()) for s in sets]
    assert all(episodes) and not (episodes[0] & episodes[1] or episodes[0] & episodes[2] or episodes[1] & episodes[2])
    for s in sets:
        assert set(s.labels.tolist()) == {0, 1}  # every split holds both games
        assert s.ram.shape == (len(s), 128) and s.ram.dtype == torch.uint8
    assert len(sets[0]) % 40 == 0 and len(sets[1]) % 40 == 0  # whole 40-step episodes, never single frames
    assert dm.image_shape == (1, 64, 64) and dm.num_classes == 2 and dm.class_names == ("pong", "breakout")
    images, labels = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert images.shape == (16, 1, 64, 64) and images.dtype == torch.float32
    assert float(images.min()) >= -1.0 and float(images.max()) <= 1.0 and labels.dtype == torch.long


def test_serve_ram_batches_carry_the_ram(data_dir):
    dm = AtariFramesDataModule(data_dir=str(data_dir), batch_size=8, serve_ram=True, **TINY)
    dm.setup("test")
    images, labels, ram = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    assert images.shape == (8, 1, 64, 64) and ram.shape == (8, 128) and ram.dtype == torch.uint8
    test = dm.split_set("test")
    assert torch.equal(ram, test.ram[:8]) and torch.equal(labels, test.labels[:8])


def test_test_frames_identical_to_training_frames_are_dropped(data_dir):
    kept = AtariFramesDataModule(data_dir=str(data_dir), drop_test_duplicates=False, **TINY)
    dropped = AtariFramesDataModule(data_dir=str(data_dir), **TINY)
    assert len(dropped.split_set("test")) <= len(kept.split_set("test"))
    train = {bytes(x.numpy().tobytes()) for s in ("train", "val") for x in dropped.split_set(s).images}
    assert not any(x.numpy().tobytes() in train for x in dropped.split_set("test").images)


def test_cache_round_trip_does_not_collect_again(data_dir, monkeypatch):
    first = AtariFramesDataModule(data_dir=str(data_dir), **TINY)
    path = first.cache_path("pong")
    assert path.is_file() and path.suffix == ".npz" and "64px_seed0_200f" in path.name
    first.setup()

    def refuse(*args, **kwargs):
        raise AssertionError("collected although the cache exists")

    monkeypatch.setattr(atari, "collect", refuse)
    second = AtariFramesDataModule(data_dir=str(data_dir), **TINY)
    second.setup()
    for name in ("train", "val", "test"):
        a, b = first.split_set(name), second.split_set(name)
        assert torch.equal(a.images, b.images) and torch.equal(a.ram, b.ram) and torch.equal(a.episode, b.episode)
    header = atari.load_collection(path).header
    assert header["game"] == "pong" and header["frames"] == 200 and header["screen_size"] == 64


def test_corrupt_cache_names_the_file_and_rebuild_recollects(tmp_path):
    settings = dict(TINY, games=["Pong"], frames_per_game=120)
    dm = AtariFramesDataModule(data_dir=str(tmp_path), **settings)
    path = dm.cache_path("pong")
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a zip file")
    with pytest.raises(AtariDataError, match=r"pong_64px.*\.npz.*rebuild=True"):
        dm.setup()
    rebuilt = AtariFramesDataModule(data_dir=str(tmp_path), rebuild=True, **settings)
    rebuilt.setup()
    assert len(atari.load_collection(path).frames) == 120


def test_cache_from_other_settings_is_refused(tmp_path):
    dm = AtariFramesDataModule(data_dir=str(tmp_path), **dict(TINY, games=["Pong"], frames_per_game=120))
    collection = atari.collect("pong", 60, screen_size=64, seed=0)
    atari.save_collection(dm.cache_path("pong"), collection)  # a 60-frame file under the 120-frame name
    with pytest.raises(AtariDataError, match="frames=60, expected 120"):
        dm.setup()


def test_unknown_game_lists_the_rom_ids(tmp_path):
    with pytest.raises(ValueError, match=r"unknown Atari game 'Pongg'.*breakout.*ms_pacman.*pong"):
        AtariFramesDataModule(data_dir=str(tmp_path), games=["Pongg"])
    assert atari.rom_id("MsPacman") == atari.rom_id("ms_pacman") == "ms_pacman"
    assert atari.env_id("ms_pacman") == "ALE/MsPacman-v5"


def test_missing_ale_py_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "ale_py", None)  # import ale_py now raises ImportError
    with pytest.raises(ModuleNotFoundError, match=r'pip install -c constraints.txt -e "\.\[atari\]"'):
        AtariFramesDataModule(data_dir=str(tmp_path), games=["Pong"])


def test_too_few_episodes_is_explained(tmp_path):
    dm = AtariFramesDataModule(data_dir=str(tmp_path), games=["Pong"], frames_per_game=100)
    with pytest.raises(ValueError, match="at least 3"):
        dm.setup()


def test_generator_and_simsiam_train_on_atari_frames(data_dir):
    """The image consumers take the frames unchanged: one step each of ConditionalStyleGAN and SimSiamImages."""
    import lightning as L

    from palm_lightning.models import ConditionalStyleGAN, SimSiamImages

    dm = AtariFramesDataModule(data_dir=str(data_dir), batch_size=4, **TINY)
    quiet = dict(fast_dev_run=1, logger=False, enable_progress_bar=False, enable_model_summary=False)
    L.Trainer(**quiet).fit(ConditionalStyleGAN(num_classes=2, img_resolution=64, img_channels=1), datamodule=dm)
    L.Trainer(**quiet).fit(SimSiamImages(image_shape=(1, 64, 64), knn_bank_size=16), datamodule=dm)
