"""The command line as a user runs it: ``python -m palm_lightning <subcommand> --config ...``."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli_runner import run_cli

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    "config",
    [
        "configs/generator/fmnist.yaml",
        "configs/classifier/fmnist.yaml",
        "configs/classifier/atari.yaml",
        "configs/palm.yaml",
    ],
)
def test_print_config_resolves(config: str) -> None:
    result = run_cli("fit", "--config", str(REPO / config), "--print_config", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "class_path: palm_lightning." in result.stdout


def test_generator_fit_and_resume(fmnist_root: Path, tmp_path: Path) -> None:
    common = [
        "--config",
        str(REPO / "configs/generator/fmnist.yaml"),
        "--data.init_args.data_dir",
        str(fmnist_root),
        "--data.init_args.batch_size",
        "8",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--trainer.enable_progress_bar",
        "false",
        "--model.init_args.sample_every_n_iterations",
        "2",
    ]
    result = run_cli("fit", *common, "--trainer.max_steps", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    last = tmp_path / "runs/generator_fmnist/version_0/checkpoints/last.ckpt"
    assert last.is_file()
    assert (tmp_path / "runs/generator_fmnist/version_0/config.yaml").is_file()
    resumed = run_cli("fit", *common, "--trainer.max_steps", "6", "--ckpt_path", str(last), cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    import torch

    state = torch.load(tmp_path / "runs/generator_fmnist/version_1/checkpoints/last.ckpt", weights_only=True)
    assert state["global_step"] == 6 and int(state["state_dict"]["iterations"]) == 3


def test_periodic_checkpoints_of_a_manual_optimization_module_do_not_warn(fmnist_root: Path, tmp_path: Path, recwarn):
    """Lightning's advice to save pre-update weights does not apply to our GAN/RL modules: not shown."""
    from palm_lightning.cli import MANUAL_OPTIMIZATION_CHECKPOINT_WARNING, main

    every_two = tmp_path / "every_two.yaml"
    every_two.write_text(
        "trainer:\n  callbacks:\n    - class_path: lightning.pytorch.callbacks.ModelCheckpoint\n"
        "      init_args: {every_n_train_steps: 2, save_last: true}\n"
    )
    config = ["--config", str(REPO / "configs/generator/fmnist.yaml"), "--config", str(every_two)]
    data = ["--data.init_args.data_dir", str(fmnist_root), "--data.init_args.batch_size", "8"]
    out = ["--trainer.logger.init_args.save_dir", str(tmp_path / "runs"), "--trainer.enable_progress_bar", "false"]
    main(["fit", *config, *data, *out, "--trainer.max_steps", "4"])
    assert (tmp_path / "runs/generator_fmnist/version_0/checkpoints/last.ckpt").is_file()
    assert not [w for w in recwarn if MANUAL_OPTIMIZATION_CHECKPOINT_WARNING in str(w.message)]


def test_classifier_fit_then_test(fmnist_root: Path, tmp_path: Path) -> None:
    common = [
        "--config",
        str(REPO / "configs/classifier/fmnist.yaml"),
        "--data.init_args.data_dir",
        str(fmnist_root),
        "--data.init_args.val_size",
        "20",
        "--data.init_args.batch_size",
        "32",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        "--trainer.enable_progress_bar",
        "false",
    ]
    result = run_cli("fit", *common, "--trainer.max_epochs", "1", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    ckpt = tmp_path / "runs/classifier_fmnist/version_0/checkpoints/last.ckpt"
    tested = run_cli("test", *common, "--ckpt_path", str(ckpt), cwd=tmp_path)
    assert tested.returncode == 0, tested.stderr[-3000:]
    assert "test/acc" in tested.stdout


def test_unknown_key_is_refused() -> None:
    result = run_cli(
        "fit", "--config", str(REPO / "configs/generator/fmnist.yaml"), "--model.init_args.not_a_key", "3", cwd=REPO
    )
    assert result.returncode != 0
    assert "not_a_key" in result.stderr


def test_wrong_type_is_refused() -> None:
    result = run_cli(
        "fit", "--config", str(REPO / "configs/generator/fmnist.yaml"), "--model.init_args.lr", "fast", cwd=REPO
    )
    assert result.returncode != 0
    assert "lr" in result.stderr


def test_missing_dataset_is_one_clear_error(tmp_path: Path) -> None:
    result = run_cli(
        "fit",
        "--config",
        str(REPO / "configs/classifier/fmnist.yaml"),
        "--data.init_args.data_dir",
        str(tmp_path / "empty"),
        "--data.init_args.system_dir",
        str(tmp_path / "nowhere"),
        "--data.init_args.download",
        "false",
        "--trainer.logger.init_args.save_dir",
        str(tmp_path / "runs"),
        cwd=tmp_path,
    )
    assert result.returncode != 0
    assert "Fashion-MNIST not found" in result.stderr and "apt-get install -y dataset-fashion-mnist" in result.stderr
