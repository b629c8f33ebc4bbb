"""configs/palm_atari.yaml: it parses before its generator exists, its sizes follow the Atari
generator recipe (configs/generator/atari_vaegan.yaml), and PALM trains two updates on an untrained
generator of that recipe's shape, logging the kNN probe on real frames and the generated-vs-real grid."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import yaml

from palm_lightning.checkpoints import save_network
from palm_lightning.nn.stylegan import StyleGANGenerator
from tests.cli_runner import REPO, run_cli

CONFIG = REPO / "configs" / "palm_atari.yaml"
RECIPE = REPO / "configs" / "generator" / "atari_vaegan.yaml"


def recipe_generator(directory: Path) -> Path:
    """An untrained generator of the recipe's architecture (z 64, w 128, 6 games, 1×64×64)."""
    args = yaml.safe_load(RECIPE.read_text())["model"]["init_args"]
    keys = ("z_dim", "w_dim", "num_classes", "img_resolution", "img_channels", "channel_base", "channel_max")
    torch.manual_seed(0)
    generator = StyleGANGenerator(**{k: args[k] for k in keys}).eval()
    return save_network(generator, directory / "atari_vaegan.pt", kind="generator")


def test_the_config_parses_without_its_generator_file(tmp_path):
    assert not (tmp_path / "palm_lightning" / "weights" / "atari_vaegan.pt").exists()
    result = run_cli("fit", "--config", str(CONFIG), "--print_config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    printed = yaml.safe_load(result.stdout)
    model, data = printed["model"]["init_args"], printed["data"]["init_args"]
    assert printed["model"]["class_path"] == "palm_lightning.models.palm.PALM"
    assert data["generator"] == "palm_lightning/weights/atari_vaegan.pt"
    recipe = yaml.safe_load(RECIPE.read_text())
    generator, frames = recipe["model"]["init_args"], recipe["data"]["init_args"]
    # the sizes follow the generator: image, latent (z-space), classes = the probe's games
    assert model["image_shape"] == [generator["img_channels"], generator["img_resolution"], generator["img_resolution"]]
    assert data["latent_space"] == "z" and model["action_dim"] == generator["z_dim"]
    probe = data["probe_data"]
    assert probe["class_path"] == "palm_lightning.datamodules.atari.AtariFramesDataModule"
    assert probe["init_args"]["screen_size"] == generator["img_resolution"] == frames["screen_size"]
    assert len(probe["init_args"]["games"]) == generator["num_classes"]
    assert probe["init_args"]["frames_per_game"] == frames["frames_per_game"]  # the generator's cache file
    callbacks = [c["class_path"] for c in printed["trainer"]["callbacks"]]
    assert "palm_lightning.callbacks.GeneratedVsRealGrid" in callbacks


def test_palm_trains_on_a_generator_of_the_recipes_shape(tmp_path):
    pytest.importorskip("ale_py")
    pytest.importorskip("cv2")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    generator = recipe_generator(tmp_path)
    tiny = {
        "--data.init_args.generator": str(generator),
        "--data.init_args.probe_data.init_args.data_dir": str(tmp_path / "data"),
        "--data.init_args.probe_data.init_args.frames_per_game": "120",  # 6 games × 120 frames: ~1 s
        "--data.init_args.probe_data.init_args.max_episode_steps": "30",
        "--data.init_args.probe_data.init_args.min_episode_length": "0",
        "--data.init_args.probe_bank_size": "60",
        "--data.init_args.probe_query_size": "30",
        "--data.init_args.num_envs": "2",
        "--data.init_args.batch_size": "8",
        "--data.init_args.seed_frames": "16",
        "--data.init_args.updates_per_step": "1",
        "--model.init_args.agent.hidden_dim": "32",
        "--model.init_args.reward.init_args.k": "3",
        "--model.init_args.trajectory_every_n_updates": "0",
        "--trainer.max_steps": "2",
        "--trainer.val_check_interval": "2",
        "--trainer.logger.init_args.save_dir": str(tmp_path / "runs"),
        "--trainer.enable_progress_bar": "false",
    }
    args = [x for pair in tiny.items() for x in pair]
    result = run_cli("fit", "--config", str(CONFIG), *args, cwd=tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    events = EventAccumulator(str(tmp_path / "runs" / "palm_atari" / "version_0"))
    events.Reload()
    (image,) = events.Images("samples/generated_vs_real")
    assert (image.height, image.width) == (6 * 65 + 1, 17 * 65 + 1)  # 6 games; 8 generated, gap, 8 real
    assert all(0.0 <= e.value <= 1.0 for e in events.Scalars("probe/knn_acc"))
