"""ST-DIM: the loss alone, the encoder's map, PALM-ST-DIM on the tiny generator, and ST-DIM on (synthetic)
consecutive Atari frames with the data module's next-frame pairs."""

from __future__ import annotations

import sys

import lightning as L
import pytest
import torch
from torch import nn

from palm_lightning.checkpoints import load_network
from palm_lightning.datamodules import LatentManifoldDataModule
from palm_lightning.losses.stdim import cell_infonce, cells, stdim_loss
from palm_lightning.models import PALMSTDIM, STDIMFrames
from palm_lightning.nn.encoders import DrQEncoder
from tests.atari_fixtures import SIZE, tiny_atari
from tests.cli_runner import REPO
from tests.palm_fixtures import tiny_data_kwargs, tiny_generator_file, tiny_palm_kwargs, trainer


# --- the loss -----------------------------------------------------------------------------------
def test_cell_infonce_picks_the_matching_sample_per_cell():
    targets = torch.nn.functional.normalize(torch.randn(5, 8, 16), dim=2) * 10  # 5 cells, batch of 8
    loss, accuracy = cell_infonce(targets, targets)
    assert accuracy == 1.0 and loss < 0.01
    loss, accuracy = cell_infonce(targets, targets.roll(1, dims=1))  # every positive is another sample's
    assert accuracy == 0.0 and loss > 10
    shared, _ = cell_infonce(targets[0], targets[:1].expand(5, -1, -1))  # one prediction for every cell
    assert shared < 0.01
    with pytest.raises(ValueError, match="do not match"):
        cell_infonce(torch.randn(8, 4), targets)


def test_cell_infonce_groups_keep_only_negatives_of_the_samples_own_group():
    torch.manual_seed(0)
    targets = torch.randn(3, 8, 16)
    games = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1])
    # Every prediction points at the same-index sample of the OTHER game: wrong among the whole batch, ...
    predictions = targets.roll(4, dims=1) * 10
    _, accuracy = cell_infonce(predictions, targets)
    assert accuracy == 0.0
    # ... unscored with groups, where only the own game's four samples compete (chance 1/4, not 1/8).
    grouped, _ = cell_infonce(predictions, targets, games)
    assert grouped < cell_infonce(predictions, targets)[0]
    one_group = cell_infonce(predictions, targets, torch.zeros(8, dtype=torch.long))
    torch.testing.assert_close(one_group[0], cell_infonce(predictions, targets)[0])  # one group = the batch
    alone, accuracy = cell_infonce(predictions, targets, torch.arange(8))  # no negatives left
    assert accuracy == 1.0 and alone == 0.0
    with pytest.raises(ValueError, match="one id per sample"):
        cell_infonce(predictions, targets, games[:4])


def test_cells_are_the_map_positions_in_row_major_order():
    feature_map = torch.arange(2 * 3 * 2 * 2, dtype=torch.float).view(2, 3, 2, 2)
    flat = cells(feature_map)
    assert flat.shape == (4, 2, 3)
    torch.testing.assert_close(flat[1], feature_map[:, :, 0, 1])
    torch.testing.assert_close(cells(feature_map, torch.tensor([3]))[0], feature_map[:, :, 1, 1])


def test_stdim_loss_falls_when_the_next_frame_predicts_the_cells():
    """On pairs whose local maps agree, training the two heads alone lowers both terms from chance."""
    torch.manual_seed(0)
    local = torch.randn(16, 16, 3, 3)
    global_next = local.flatten(1)  # the global vector sees every cell
    heads = nn.Linear(144, 16, bias=False), nn.Linear(16, 16, bias=False)
    optimizer = torch.optim.Adam([p for h in heads for p in h.parameters()], lr=0.05)
    first, _ = stdim_loss(global_next, local, local, *heads)
    for _ in range(100):
        loss, logs = stdim_loss(global_next, local, local, *heads)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss < 0.3 * first
    # chance is 1/16; one global prediction serves all 9 cells of a sample, so it cannot pick them all
    assert logs["local_local_acc"] > 0.9 and logs["global_local_acc"] > 0.2
    with pytest.raises(ValueError, match="local maps differ"):
        stdim_loss(global_next, local, local[:, :2], *heads)


def test_forward_with_map_is_forward_plus_the_intermediate_map():
    encoder = DrQEncoder((1, 16, 16), channels=8, num_layers=3, repr_dim=12)
    images = torch.rand(3, 1, 16, 16) * 2 - 1
    output, feature_map = encoder.forward_with_map(images, 2)
    torch.testing.assert_close(output, encoder(images))
    assert feature_map.shape == (3, 8, 5, 5) and (feature_map >= 0).all()  # after conv 2 and its ReLU
    with pytest.raises(ValueError, match=r"map_layers must be in \[1, 3\]"):
        encoder.forward_with_map(images, 4)
    with pytest.raises(ValueError, match=r"expects images of shape \(N, 1, 16, 16\)"):
        encoder.forward_with_map(torch.zeros(1, 1, 8, 8), 1)


# --- PALM-ST-DIM --------------------------------------------------------------------------------
def test_palm_stdim_trains_its_heads_builds_no_simsiam_heads_and_checkpoints(tmp_path):
    generator = tiny_generator_file(tmp_path)
    model = PALMSTDIM(**tiny_palm_kwargs(), cells_per_update=4)
    heads_before = [p.detach().clone() for p in model.stdim.parameters()]
    assert not hasattr(model, "projector") and not hasattr(model, "predictor")  # SimSiam's heads: unused, not built
    fit = trainer(tmp_path, 3)
    fit.fit(model, LatentManifoldDataModule(**tiny_data_kwargs(generator)))
    assert int(model.updates) == 3
    optimised = {id(p) for group in fit.optimizers[0].param_groups for p in group["params"]}
    assert all(id(p) in optimised for p in model.stdim.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(heads_before, model.stdim.parameters(), strict=True))
    for name in ("train/global_local", "train/local_local", "train/global_local_acc", "train/local_local_acc"):
        assert name in fit.callback_metrics
    features = torch.randn(5, 16)
    assert torch.equal(model.reward_features(features), features)  # APT in the encoder's own space

    fit.save_checkpoint(tmp_path / "stdim.ckpt")
    restored = PALMSTDIM.load_from_checkpoint(tmp_path / "stdim.ckpt")
    assert torch.equal(restored.stdim.global_to_local.weight, model.stdim.global_to_local.weight)
    assert restored.stdim.cells_per_update == 4 and restored.stdim.local_layers == 4
    assert isinstance(load_network(tmp_path / "stdim.ckpt", kind="encoder"), DrQEncoder)


def test_palm_stdim_rejects_bad_settings():
    with pytest.raises(ValueError, match=r"local_layers must be in \[1, 4\]"):
        PALMSTDIM(**tiny_palm_kwargs(), local_layers=5)
    with pytest.raises(ValueError, match="cells_per_update must be positive"):
        PALMSTDIM(**tiny_palm_kwargs(), cells_per_update=0)


# --- next-frame pairs and ST-DIM on real frames -------------------------------------------------
def test_serve_next_pairs_consecutive_frames_of_one_episode(tmp_path):
    dm = tiny_atari(tmp_path / "data", serve_ram=False)
    dm.serve_next = True
    train = dm.split_set("train")
    episodes = len(torch.unique(train.episode))
    assert len(train) == len(train.images) - episodes  # every frame but each episode's last
    for index in (0, len(train) // 2, len(train) - 1):
        image, _, next_image = train[index]
        i = int(train.pair_index[index])
        assert train.episode[i] == train.episode[i + 1] and train.step[i + 1] == train.step[i] + 1
        assert torch.equal(image, train.images[i]) and torch.equal(next_image, train.images[i + 1])
    assert len(dm.split_set("val")[0]) == 2  # validation stays (image, label)
    images, _, next_images = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert images.dtype == next_images.dtype == torch.float32 and next_images.min() >= -1.0
    with pytest.raises(ValueError, match="serve_ram and serve_next"):
        type(dm)(games=["Pong"], serve_ram=True, serve_next=True)


def test_stdim_frames_trains_on_pairs_and_says_when_it_gets_none(tmp_path):
    tiny = dict(image_shape=(1, SIZE, SIZE), encoder_channels=8, encoder_layers=2, repr_dim=16)
    dm = tiny_atari(tmp_path / "data", serve_ram=False)
    L.seed_everything(0)
    model = STDIMFrames(**tiny, lr=3e-4, knn_bank_size=50, knn_bank_shuffle=True)
    before = model.stdim.local_to_local.weight.detach().clone()
    with pytest.raises(ValueError, match="serve_next true"):
        trainer(tmp_path, 1).fit(model, datamodule=dm)
    dm = tiny_atari(tmp_path / "data2", serve_ram=False)
    dm.serve_next = True
    fit = trainer(tmp_path, 3, limit_val_batches=1, val_check_interval=3, check_val_every_n_epoch=None)
    fit.fit(model, datamodule=dm)
    assert int(model.updates) == 3 and not torch.equal(before, model.stdim.local_to_local.weight)
    assert "probe/knn_acc" in fit.callback_metrics and "train/local_local_acc" in fit.callback_metrics
    # Negatives of the sample's own game: the labels reach the loss (one game per sample: nothing to pick).
    same_game = STDIMFrames(**tiny, lr=3e-4, knn_bank_size=50, negatives="same_game")
    obs, next_obs = torch.randn(6, 1, SIZE, SIZE), torch.randn(6, 1, SIZE, SIZE)
    assert same_game.training_step((obs, torch.arange(6), next_obs), 0) == 0.0  # no negatives left
    whole_batch = STDIMFrames(**tiny, lr=3e-4, knn_bank_size=50)
    assert whole_batch.training_step((obs, torch.arange(6), next_obs), 0) > 0.0  # batch negatives ignore the labels
    logged = same_game.stdim(same_game.encoder, obs, next_obs, torch.arange(6))[1]
    assert logged["train/local_local_acc"] == 1.0 and logged["train/ssl_loss"] == 0.0
    with pytest.raises(ValueError, match="'batch' or 'same_game'"):
        STDIMFrames(**tiny, negatives="game")


def test_stdim_configs_parse(tmp_path, monkeypatch):
    from palm_lightning.cli import PalmCLI

    monkeypatch.setattr(sys, "argv", ["palm_lightning"])  # the CLI reads args=, not pytest's argv
    cli = PalmCLI(
        args=[
            *("--config", str(REPO / "configs/baselines/stdim_atari.yaml")),
            *("--trainer.logger.init_args.save_dir", str(tmp_path)),
        ],
        run=False,
    )
    assert type(cli.model) is STDIMFrames and cli.datamodule.serve_next and cli.model.stdim.cells_per_update == 64
    assert cli.model.encoder.config["image_shape"] == (1, 64, 64) and cli.trainer.max_steps == 3000
    cli = PalmCLI(
        args=[
            *("--config", str(REPO / "configs/palm_atari.yaml"), "--config", str(REPO / "configs/budget/atari.yaml")),
            *("--config", str(REPO / "configs/palm_variants/stdim.yaml")),
            *("--trainer.logger.init_args.save_dir", str(tmp_path)),
        ],
        run=False,
    )
    assert type(cli.model) is PALMSTDIM and cli.model.hparams.repr_lr == 3e-4 and cli.model.stdim.cells_per_update == 64
    assert cli.trainer.logger.name == "palm_stdim" and cli.trainer.max_steps == 3000
