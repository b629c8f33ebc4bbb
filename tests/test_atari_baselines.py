"""The two baselines of the AtariARI table that train on real frames: the supervised upper bound
(AtariStateSupervised) and SimSiam on Atari frames (configs/baselines/simsiam_atari.yaml). The module
tests run on tiny synthetic cached frames (no emulator runs); the config tests parse the shipped YAML."""

from __future__ import annotations

import inspect
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch
import yaml

from palm_lightning.evaluation.atari_ram import game_annotations
from tests.atari_fixtures import SIZE, VISIBLE, tiny_atari
from tests.cli_runner import REPO, run_cli
from tests.palm_fixtures import trainer

TINY = dict(image_shape=(1, SIZE, SIZE), encoder_channels=8, encoder_layers=2, repr_dim=16)


# --- the supervised upper bound -----------------------------------------------------------------
def _train_batch_loss(model, dm) -> float:
    """The model's loss on every training frame (one batch, no gradient)."""
    train = dm.split_set("train")
    with torch.no_grad():
        loss, _ = model.state_loss(dm.normalize(train.images), train.labels, train.ram)
    return float(loss)


def test_supervised_learns_the_visible_variables_and_drops_constant_ones(tmp_path):
    from palm_lightning.models import AtariStateSupervised

    dm = tiny_atari(tmp_path / "data")
    L.seed_everything(0)
    model = AtariStateSupervised(**TINY, lr=3e-3, lr_schedule="constant")
    fit = trainer(tmp_path, 80, limit_val_batches=1.0, val_check_interval=40, check_val_every_n_epoch=None)
    fit.validate(model, datamodule=dm, verbose=False)  # sets the heads up: the loss before training
    before = _train_batch_loss(model, dm)
    assert before == pytest.approx(np.log(256), rel=0.1)  # 256-way heads, untrained
    fit.fit(model, datamodule=dm)
    after = _train_batch_loss(model, dm)
    visible = {rom: tuple(n for n in game_annotations(rom) if n in VISIBLE) for rom in ("pong", "boxing")}
    assert {rom: game.variables for rom, game in model.layout.items()} == visible  # in the table's order
    assert model.layout["boxing"].ram_index == (32, 34)  # AtariARI's player_x, player_y bytes of Boxing
    assert set(model.heads) == {"pong", "boxing"}
    assert after < 0.5 * before
    assert fit.callback_metrics["val/acc"] > 0.3  # chance is 1/8 per variable


def test_supervised_exports_an_encoder_the_probes_load(tmp_path):
    from palm_lightning.models import AtariStateProbe, AtariStateSupervised
    from palm_lightning.models.evaluation.frozen_encoder import build_encoder
    from palm_lightning.nn.encoders import DrQEncoder

    dm = tiny_atari(tmp_path / "data")
    L.seed_everything(0)
    model = AtariStateSupervised(**TINY)
    checkpoint = L.pytorch.callbacks.ModelCheckpoint(dirpath=tmp_path / "checkpoints", save_last=True)
    trainer(tmp_path, 3, enable_checkpointing=True, callbacks=[checkpoint], limit_val_batches=0).fit(
        model, datamodule=dm
    )
    last = tmp_path / "checkpoints" / "last.ckpt"
    encoder = build_encoder(str(last))
    assert isinstance(encoder, DrQEncoder) and encoder.out_dim == 16 and encoder.image_shape == (1, SIZE, SIZE)
    images = dm.normalize(dm.split_set("test").images[:5])
    model.eval()
    with torch.no_grad():
        features = encoder(images)
        assert features.shape == (5, 16)
        torch.testing.assert_close(features, model(images))  # the trained weights, not a fresh draw
    # the whole module reloads without data: the heads are rebuilt from the checkpoint's layout
    reloaded = AtariStateSupervised.load_from_checkpoint(last)
    assert reloaded.layout == model.layout
    torch.testing.assert_close(reloaded.heads["pong"].weight, model.heads["pong"].weight)
    # and the state probe reads the encoder, frozen, with its own heads
    probe = AtariStateProbe(encoder=str(last), max_epochs=2, patience=1)
    trainer(tmp_path, 1).test(probe, datamodule=dm, verbose=False)
    assert set(probe.results["pong"]["f1"]) == set(VISIBLE)


def test_supervised_needs_ram_batches_and_matching_frames(tmp_path):
    from palm_lightning.models import AtariStateSupervised

    dm = tiny_atari(tmp_path / "data", serve_ram=False)
    with pytest.raises(ValueError, match="serve_ram true"):
        trainer(tmp_path, 1).fit(AtariStateSupervised(**TINY), datamodule=dm)
    dm = tiny_atari(tmp_path / "data")
    with pytest.raises(ValueError, match=r"screen_size 32"):
        trainer(tmp_path, 1).fit(AtariStateSupervised(**{**TINY, "image_shape": (1, 32, 32)}), datamodule=dm)


# --- SimSiam on Atari frames --------------------------------------------------------------------
@pytest.mark.parametrize("shuffle, games", [(False, {0}), (True, {0, 1})])
def test_simsiam_bank_covers_every_game_when_shuffled(tmp_path, shuffle, games):
    """The Atari training split is stored game by game: its first frames are all of game 0."""
    from palm_lightning.models import SimSiamImages

    dm = tiny_atari(tmp_path / "data", serve_ram=False)
    model = SimSiamImages(**TINY, knn_bank_size=100, knn_bank_shuffle=shuffle, flip_p=0.0, crop_scale=(0.7, 1.0))
    fit = trainer(tmp_path, 2, limit_val_batches=2, val_check_interval=2, check_val_every_n_epoch=None)
    fit.fit(model, datamodule=dm)
    assert 0.0 <= fit.callback_metrics["probe/knn_acc"] <= 1.0
    features, labels = model.probe_bank()
    assert features.shape == (100, 16)
    assert set(labels.tolist()) == games


# --- the configs --------------------------------------------------------------------------------
BASELINES = REPO / "configs" / "baselines"


def _printed(config: Path, cwd: Path) -> dict:
    result = run_cli("fit", "--config", str(config), "--print_config", cwd=cwd)
    assert result.returncode == 0, result.stderr[-2000:]
    return yaml.safe_load(result.stdout)


@pytest.mark.parametrize(
    "name, model_class",
    [("supervised_atari", "atari.AtariStateSupervised"), ("simsiam_atari", "baselines.SimSiamImages")],
)
def test_atari_baseline_configs_parse_with_palm_ataris_encoder(tmp_path, name, model_class):
    from palm_lightning.datamodules.atari.frames import DEFAULT_GAMES
    from palm_lightning.models import PALM

    printed = _printed(BASELINES / f"{name}.yaml", tmp_path)
    model, data = printed["model"]["init_args"], printed["data"]
    assert printed["model"]["class_path"] == f"palm_lightning.models.{model_class}"
    assert data["class_path"] == "palm_lightning.datamodules.atari.AtariFramesDataModule"
    assert tuple(data["init_args"]["games"]) == DEFAULT_GAMES and data["init_args"]["screen_size"] == 64
    assert data["init_args"]["frames_per_game"] == 50_000  # the cached frames of the other Atari configs
    assert printed["trainer"]["logger"]["init_args"]["name"] == name
    (checkpoint,) = printed["trainer"]["callbacks"]
    assert checkpoint["init_args"]["save_last"] is True
    # the encoder of configs/palm_atari.yaml: its overrides, else PALM's defaults
    palm = yaml.safe_load((REPO / "configs" / "palm_atari.yaml").read_text())["model"]["init_args"]
    defaults = {k: p.default for k, p in inspect.signature(PALM).parameters.items()}
    expected = {k: palm.get(k, defaults[k]) for k in ("image_shape", "encoder_channels", "encoder_layers", "repr_dim")}
    assert model["image_shape"] == list(expected.pop("image_shape")) == [1, 64, 64]
    assert {k: model[k] for k in expected} == expected
    if name == "supervised_atari":
        probe = yaml.safe_load((REPO / "configs" / "eval" / "atari_probe.yaml").read_text())
        assert data["init_args"]["serve_ram"] is True
        assert model["weight_init"] == palm.get("weight_init", defaults["weight_init"])
        assert model["entropy_threshold"] == probe["model"]["init_args"]["entropy_threshold"]
    else:
        sgd = yaml.safe_load((REPO / "configs" / "budget" / "simsiam_sgd.yaml").read_text())["model"]["init_args"]
        assert {k: model[k] for k in sgd} == sgd  # SimSiam's own optimiser recipe
        assert model["flip_p"] == 0.0 and model["crop_scale"][0] > 0.2  # Atari-suited views
        assert model["knn_bank_shuffle"] is True  # the train split is stored game by game
