"""PALM through the command line: the shipped config parses; DDP on CPU (gloo) trains per-rank
environments; a NaN-free resume with --ckpt_path."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.cli_runner import run_cli as run
from tests.palm_fixtures import tiny_generator_file

REPO = Path(__file__).resolve().parents[1]

TINY = [
    "--model.init_args.image_shape",
    "[1, 16, 16]",
    "--model.init_args.action_dim",
    "8",
    "--model.init_args.encoder_channels",
    "8",
    "--model.init_args.repr_dim",
    "16",
    "--model.init_args.projector_hidden",
    "32",
    "--model.init_args.projector_dim",
    "16",
    "--model.init_args.predictor_hidden",
    "8",
    "--model.init_args.agent.hidden_dim",
    "32",
    "--model.init_args.reward.init_args.k",
    "4",
    "--data.init_args.updates_per_step",
    "1",
    "--model.init_args.trajectory_every_n_updates",
    "0",
    "--data.init_args.num_envs",
    "4",
    "--data.init_args.episode_length",
    "6",
    "--data.init_args.batch_size",
    "16",
    "--data.init_args.buffer_capacity",
    "400",
    "--data.init_args.nstep",
    "2",
    "--data.init_args.seed_frames",
    "32",
    "--data.init_args.probe_data",
    "null",
    "--trainer.enable_progress_bar",
    "false",
]


def record(out: Path) -> list[str]:
    return ["--trainer.callbacks+=tests.palm_fixtures.RecordRankEnvironments", f"--trainer.callbacks.out_dir={out}"]


def test_ddp_two_cpu_processes_train(tmp_path):
    generator = tiny_generator_file(tmp_path)
    result = run(
        "fit",
        "--config",
        str(REPO / "configs/palm.yaml"),
        *TINY,
        "--data.init_args.generator",
        str(generator),
        "--trainer.max_steps",
        "3",
        "--trainer.accelerator",
        "cpu",
        "--trainer.devices",
        "2",
        "--trainer.strategy",
        "ddp_find_unused_parameters_true",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        *record(tmp_path / "ddp"),
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    ranks = [torch.load(tmp_path / "ddp" / f"rank{r}.pt") for r in (0, 1)]
    # each rank stepped its own environments: seeded seed + rank, different latents, same frame count
    assert [r["seed"] for r in ranks] == [0, 1]
    assert not torch.allclose(ranks[0]["latent"], ranks[1]["latent"])
    assert ranks[0]["env_steps"] == ranks[1]["env_steps"] > 0
    assert all(r["updates"] == 3 and r["finite"] for r in ranks)
    ckpt = tmp_path / "runs" / "palm" / "version_0" / "checkpoints" / "last.ckpt"
    assert ckpt.is_file()
    resumed = run(
        "fit",
        "--config",
        str(REPO / "configs/palm.yaml"),
        *TINY,
        "--data.init_args.generator",
        str(generator),
        "--trainer.max_steps",
        "5",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--ckpt_path",
        str(ckpt),
        *record(tmp_path / "resumed"),
        cwd=tmp_path,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    after = torch.load(tmp_path / "resumed" / "rank0.pt")
    # the resume continued the counters (3 → 5 updates, more frames) and trained without NaN
    assert after["updates"] == 5 and after["finite"] and after["env_steps"] > ranks[0]["env_steps"]


def test_bad_latent_size_in_the_config_is_named(tmp_path):
    generator = tiny_generator_file(tmp_path)
    result = run(
        "fit",
        "--config",
        str(REPO / "configs/palm.yaml"),
        *TINY,
        "--model.init_args.action_dim",
        "64",
        "--data.init_args.generator",
        str(generator),
        "--trainer.max_steps",
        "1",
        "--trainer.logger",
        "false",
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "action_dim is 64 but the environment's latent (action) size is 8" in result.stderr


@pytest.mark.parametrize("config", ["configs/palm.yaml", "configs/palm_gpu.yaml"])
def test_palm_configs_parse(config):
    result = run("fit", "--config", str(REPO / config), "--print_config", cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    assert "palm_lightning.models.palm.PALM" in result.stdout


def test_checkpointing_off_drops_the_configs_model_checkpoints_instead_of_failing(tmp_path, monkeypatch, capsys):
    from lightning.pytorch.callbacks import ModelCheckpoint

    from palm_lightning.cli import PalmCLI

    monkeypatch.chdir(tmp_path)
    config = str(REPO / "configs" / "palm.yaml")
    cli = PalmCLI(args=["--config", config, "--trainer.enable_checkpointing", "false"], run=False)
    assert not [c for c in cli.trainer.callbacks if isinstance(c, ModelCheckpoint)]
    assert "dropped the config's 1 ModelCheckpoint" in capsys.readouterr().err
    kept = PalmCLI(args=["--config", config], run=False)  # checkpointing on: the config's callback stays
    assert [c for c in kept.trainer.callbacks if isinstance(c, ModelCheckpoint)]
