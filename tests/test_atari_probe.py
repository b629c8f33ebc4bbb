"""AtariStateProbe and its Lightning-free core (entropy, weighted F1, per-variable heads), and the
AtariARI RAM table. The module tests run on synthetic cached frames: no emulator runs."""

from __future__ import annotations

import logging

import lightning as L
import numpy as np
import pytest
import torch
from lightning.pytorch.loggers import TensorBoardLogger

from palm_lightning.evaluation.atari_ram import CATEGORIES, RAM_ANNOTATIONS, game_annotations
from palm_lightning.evaluation.state_probe import (
    category_means,
    fit_state_heads,
    label_entropy,
    weighted_f1,
)
from tests.atari_fixtures import SIZE, tiny_atari


# --- the RAM table ------------------------------------------------------------------------------
def _atariari_category(name: str) -> str:
    """AtariARI's name rules (categorization.py), restated to check the table's categories."""
    if any(c in name for c in ("_x", "_y", "_z", "_column")):
        if any(s in name for s in ("ball", "missile")):
            return "small_object_localization"
        if any(a in name for a in ("agent", "player")):
            return "agent_localization"
        return "other_localization"
    if any(k in name for k in ("score", "clock", "lives", "lifes", "meter", "display")):
        return "score_clock_lives_display"
    assert any(k in name for k in ("count", "bit_map", "existence", "level", "room", "direction")), name
    return "misc"


def test_ram_table_follows_atariari():
    for game, table in RAM_ANNOTATIONS.items():
        indices = [index for index, _ in table.values()]
        assert all(0 <= i < 128 for i in indices) and len(set(indices)) == len(indices), game
        for name, (_, category) in table.items():
            assert category in CATEGORIES and category == _atariari_category(name), (game, name)
    assert game_annotations("pong")["player_y"] == (51, "agent_localization")
    assert game_annotations("ms_pacman")["num_lives"] == (123, "score_clock_lives_display")
    breakout = game_annotations("breakout")
    assert [breakout[f"block_bit_map_{i}"][0] for i in range(30)] == list(range(30))
    assert game_annotations("seaquest")["score_1"][0] == 58 and game_annotations("freeway")["enemy_car_x_9"][0] == 117
    with pytest.raises(KeyError, match="annotated games: boxing, breakout"):
        game_annotations("tetris")


# --- the Lightning-free core --------------------------------------------------------------------
def test_weighted_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 6, 300)
    predictions = np.where(rng.random(300) < 0.6, labels, rng.integers(0, 9, 300))
    ours = weighted_f1(torch.from_numpy(predictions), torch.from_numpy(labels))
    assert ours == pytest.approx(f1_score(labels, predictions, average="weighted"), abs=1e-9)
    assert weighted_f1(torch.tensor([3, 4]), torch.tensor([3, 4])) == 1.0


def test_label_entropy_is_in_nats():
    labels = torch.stack([torch.zeros(8), torch.arange(8) % 2, torch.arange(8)], 1).long()
    np.testing.assert_allclose(label_entropy(labels).numpy(), [0.0, np.log(2), np.log(8)], atol=1e-9)


def test_category_means_average_within_categories():
    means = category_means({"a": 1.0, "b": 0.5, "c": 0.0}, {"a": "agent", "b": "agent", "c": "misc"})
    assert means == {"agent": 0.75, "misc": 0.0}


def test_heads_learn_a_decodable_variable():
    generator = torch.Generator().manual_seed(0)
    values = torch.randint(0, 5, (400,), generator=generator)
    features = torch.nn.functional.one_hot(values, 5).float() + 0.05 * torch.randn(400, 5, generator=generator)
    labels = torch.stack([values * 3, torch.randint(0, 256, (400,), generator=generator)], 1)
    heads, epochs = fit_state_heads(features[:300], labels[:300], features[300:], labels[300:], lr=0.05, patience=3)
    predictions = heads.predict(features[300:])
    assert weighted_f1(predictions[:, 0], labels[300:, 0]) > 0.95
    assert epochs < 100  # the noise variable stops improving; the decodable one saturates


# --- the LightningModule ------------------------------------------------------------------------
@pytest.fixture
def probe_data(tmp_path):
    """Pong and Boxing, 16×16 synthetic frames in which only ``player_y`` is drawn."""
    return tiny_atari(tmp_path, batch_size=64, visible=("player_y",))


def test_probe_learns_a_visible_variable_and_drops_constant_ones(probe_data, tmp_path, caplog):
    from palm_lightning.models import AtariStateProbe

    L.seed_everything(0)
    probe = AtariStateProbe(encoder="pixels", image_shape=(1, SIZE, SIZE), lr=1e-2, max_epochs=60, patience=10)
    trainer = L.Trainer(
        logger=TensorBoardLogger(str(tmp_path), name="probe"),
        enable_progress_bar=False,
        enable_model_summary=False,
        accelerator="cpu",
    )
    with caplog.at_level(logging.INFO, logger="lightning.pytorch"):
        (metrics,) = trainer.test(probe, datamodule=probe_data, verbose=False)
    progress = [r.getMessage() for r in caplog.records if r.getMessage().startswith("AtariStateProbe: ")]
    assert [line.split(" variables")[0] for line in progress] == [
        "AtariStateProbe: pong (1/2): 1",
        "AtariStateProbe: boxing (2/2): 1",
    ]  # one line per game as its heads finish (the raw-pixel probe trains for an hour in silence otherwise)
    for game in ("pong", "boxing"):
        result = probe.results[game]
        assert list(result["f1"]) == ["player_y"]  # the only variable with entropy ≥ 0.6
        assert result["f1"]["player_y"] > 0.95
        assert set(result["dropped"]) == set(game_annotations(game)) - {"player_y"}
        assert all(e == 0.0 for e in result["dropped"].values())
        assert metrics[f"test/{game}/player_y_f1"] == pytest.approx(result["f1"]["player_y"])
        assert metrics[f"test/{game}/agent_localization_f1"] == pytest.approx(result["f1"]["player_y"])
    assert metrics["test/f1"] > 0.95
    assert list((tmp_path / "probe").rglob("events.out.tfevents.*"))


def test_standardized_probe_scales_each_game_by_its_train_features(probe_data):
    from palm_lightning.models import AtariStateProbe

    L.seed_everything(0)
    probe = AtariStateProbe(
        encoder="pixels", image_shape=(1, SIZE, SIZE), lr=1e-2, max_epochs=60, patience=10, standardize=True
    )
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    (metrics,) = trainer.test(probe, datamodule=probe_data, verbose=False)
    train = probe_data.split_set("train")
    for game in ("pong", "boxing"):
        game_probe = probe.probes[game]
        assert game_probe.standardizer is not None
        rows = train.labels == game_probe.label
        pixels = probe._features(train.images[rows], probe_data)
        torch.testing.assert_close(game_probe.standardizer.mean, pixels.mean(0))  # this game's frames alone
        torch.testing.assert_close(game_probe.standardizer.std, pixels.std(0).clamp_min(1e-6))
        assert probe.results[game]["f1"]["player_y"] > 0.95
    assert metrics["test/f1"] > 0.95


def test_probe_refuses_frames_of_another_shape(probe_data):
    from palm_lightning.models import AtariStateProbe

    probe = AtariStateProbe(encoder="pixels", image_shape=(1, 32, 32))
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    with pytest.raises(ValueError, match=r"\(1, 32, 32\).*\(1, 16, 16\).*screen_size 32"):
        trainer.test(probe, datamodule=probe_data, verbose=False)


def test_probe_needs_ram_batches(probe_data):
    from palm_lightning.models import AtariStateProbe

    probe_data.serve_ram = False
    trainer = L.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, accelerator="cpu")
    with pytest.raises(ValueError, match="serve_ram true"):
        trainer.test(AtariStateProbe(encoder="pixels", image_shape=(1, SIZE, SIZE)), datamodule=probe_data)
