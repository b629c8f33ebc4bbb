"""The plotting helper under ``scripts/`` (the README's comparison figures come from it)."""

from __future__ import annotations

import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def write_run(directory: Path, values: dict[str, list[float]]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(directory))
    for tag, series in values.items():
        for step, value in enumerate(series):
            writer.add_scalar(tag, value, step * 10)
    writer.close()


def test_compare_runs_reads_each_run_and_writes_one_png(tmp_path, monkeypatch):
    compare_runs = importlib.import_module("palm_lightning.tools.compare_runs")
    write_run(tmp_path / "a", {"eval/error": [2.0, 1.0, 0.5], "only_a": [1.0]})
    write_run(tmp_path / "b", {"eval/error": [2.0, 1.5]})
    assert compare_runs.load_scalars(str(tmp_path / "a"), ["eval/error", "missing"]) == {
        "eval/error": ([0, 10, 20], [2.0, 1.0, 0.5])
    }
    groups = compare_runs.group_runs([f"A={tmp_path / 'a'}", f"B={tmp_path / 'b'}"])
    data = compare_runs.load_groups(groups, ["eval/error", "only_a"])
    out = compare_runs.plot(data, ["eval/error", "only_a"], str(tmp_path / "fig.png"))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_runs_treats_a_repeated_label_as_seeds(tmp_path, monkeypatch):
    compare_runs = importlib.import_module("palm_lightning.tools.compare_runs")
    write_run(tmp_path / "s0", {"err": [3.0, 2.0, 1.0, 0.0]})
    write_run(tmp_path / "s1", {"err": [3.0, 2.0, 2.0, 2.0]})
    write_run(tmp_path / "other", {"err": [5.0]})
    groups = compare_runs.group_runs([f"EAR={tmp_path / 's0'}", f"OHE={tmp_path / 'other'}", f"EAR={tmp_path / 's1'}"])
    assert groups == {"EAR": [str(tmp_path / "s0"), str(tmp_path / "s1")], "OHE": [str(tmp_path / "other")]}
    data = compare_runs.load_groups(groups, ["err"])
    steps, mean, std = compare_runs.mean_over_seeds([run["err"] for run in data["EAR"]])
    assert (
        steps.tolist() == [0, 10, 20, 30] and mean.tolist() == [3.0, 2.0, 1.5, 1.0] and std.tolist() == [0, 0, 0.5, 1.0]
    )
    rows = compare_runs.summary(data, ["err"], last=2)
    # final: 0 and 2 -> 1.00 ± 1.00; last two: 0.5 and 2.0 -> 1.25 ± 0.75
    assert rows[2] == "| err | EAR | 2 | 1.00 ± 1.00 | 1.25 ± 0.75 |"
    assert rows[3] == "| err | OHE | 1 | 5.00 ± 0.00 | 5.00 ± 0.00 |"
    assert compare_runs.plot(data, ["err"], str(tmp_path / "seeds.png")).is_file()
    with pytest.raises(ValueError, match="label=run_dir"):
        compare_runs.group_runs(["no-label"])


def test_compare_runs_names_a_missing_run_directory(tmp_path, monkeypatch):
    compare_runs = importlib.import_module("palm_lightning.tools.compare_runs")
    with pytest.raises(FileNotFoundError, match="version_N"):
        compare_runs.load_scalars(str(tmp_path / "nope"), ["x"])


def test_fidelity_variants_each_revert_what_they_name(tmp_path, monkeypatch):
    """Every variant of experiments/fidelity.py parses on top of configs/palm.yaml and changes exactly
    the settings of its fix; revert_all restores the old configuration of every fix."""
    import shlex
    import sys

    from palm_lightning.cli import PalmCLI

    fidelity = importlib.import_module("experiments.fidelity")
    monkeypatch.setattr(sys, "argv", ["palm_lightning"])

    def settings(overrides: str) -> dict:
        cli = PalmCLI(
            args=[
                "--config",
                str(REPO / "configs/palm.yaml"),
                *shlex.split(overrides),
                "--trainer.logger.init_args.save_dir",
                str(tmp_path),
            ],
            run=False,
        )
        hp, agent, reward = cli.model.hparams, cli.model.hp.agent, cli.model.reward
        return {
            "straight_through": agent.straight_through,
            "updates_per_step": cli.datamodule.updates_per_step,
            "stddev_schedule": agent.stddev_schedule,
            "weight_init": hp.weight_init,
            "sequential_updates": agent.sequential_updates,
            "knn_rms": reward.knn_rms,
            "knn_clip": reward.knn_clip,
            "source": reward.source,
            "reward_window": hp.reward_window,
            "freeze_reward_batchnorm": hp.freeze_reward_batchnorm,
            "policy": hp.policy,
        }

    new = settings("")
    assert new == {
        "straight_through": True,
        "updates_per_step": 8,
        "stddev_schedule": "0.2",
        "weight_init": "orthogonal",
        "sequential_updates": True,
        "knn_rms": False,
        "knn_clip": 0.0,
        "source": "obs",
        "reward_window": "first",
        "freeze_reward_batchnorm": True,
        "policy": "apt",
    }
    changed_by = {
        "revert_straight_through": {"straight_through"},
        "revert_replay_ratio": {"updates_per_step"},
        "revert_noise": {"stddev_schedule"},
        "revert_weight_init": {"weight_init"},
        "revert_sequential": {"sequential_updates"},
        "revert_reward_batchnorm": {"freeze_reward_batchnorm"},
        "revert_apt_settings": {"knn_rms", "knn_clip", "source", "reward_window"},
        "random_policy": {"policy"},
    }
    for name, keys in changed_by.items():
        got = settings(fidelity.VARIANTS[name][1])
        assert {k for k in new if got[k] != new[k]} == keys, name
    old = settings(fidelity.VARIANTS["revert_all"][1])
    assert {k for k in new if old[k] != new[k]} == set().union(*changed_by.values()) - {"policy"}


def test_long_budget_rows_parse_with_the_budget_overlay_last_and_runs_resume(tmp_path, monkeypatch):
    import subprocess

    from tests.cli_runner import run_cli

    table = importlib.import_module("experiments.long_budget_table")
    assert {"supervised", "random_encoder", "pixels", "simsiam_real", "palm_apt", "palm_random_policy"} <= set(
        table.ROW_BY_KEY
    )
    trained = [row for row in table.ROWS if row.configs]
    # the budget comes after each row's training config (it wins over the row's max_steps); only the
    # budget folder's own overlays (simsiam_real's SGD recipe) may follow it
    for row in trained:
        assert all(c.startswith("budget/") for c in row.configs[row.configs.index("budget/long.yaml") :]), row.key
    for row in (r for r in trained if r.key in ("supervised", "simsiam_real", "palm_apt_old_generator")):
        args = [a for c in row.configs for a in ("--config", str(REPO / "configs" / c))]
        result = run_cli("fit", *args, "--print_config", cwd=tmp_path)
        assert result.returncode == 0, (row.key, result.stderr[-500:])
        assert "max_steps: 10000" in result.stdout, row.key
        assert result.stdout.count("save_last: true") == 1, row.key  # one last.ckpt writer, no last-v1.ckpt
        if row.key == "simsiam_real":
            assert "optimizer: sgd" in result.stdout and "lr_schedule: cosine" in result.stdout
        if row.key == "palm_apt_old_generator":
            assert "generator: fmnist_stylegan" in result.stdout
    # an interrupted run (last.ckpt, no trained.json) resumes from its checkpoint
    representation_table = importlib.import_module("experiments.representation_table")
    checkpoints = tmp_path / "palm_apt_s0" / "version_0" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "last.ckpt").write_bytes(b"")
    commands = []
    monkeypatch.setattr(subprocess, "run", lambda command, **kwargs: commands.append(command))
    representation_table.train(table.ROW_BY_KEY["palm_apt"], 0, tmp_path, str(tmp_path))
    assert commands[0][-2:] == ["--ckpt_path", str(checkpoints / "last.ckpt")]


def test_policy_frames_visits_whole_episodes_and_saturated_actions_drift_the_latent(monkeypatch):
    import torch

    from palm_lightning.envs import LatentManifold
    from tests.palm_fixtures import tiny_generator

    policy_frames = importlib.import_module("palm_lightning.tools.policy_frames")
    env = LatentManifold(tiny_generator(), num_envs=3, episode_length=5, ema=0.5, seed=0)
    dim = env.latent_dim
    random = policy_frames.visit(env, lambda obs: torch.rand(obs.shape[0], dim) * 2 - 1, episodes=2)
    assert random["frames"].shape[0] == random["labels"].shape[0] == 3 * 5 * 2
    assert random["actions"].shape == (30, dim) and random["changes"].shape == (30,)
    saturated = policy_frames.visit(env, lambda obs: torch.ones(obs.shape[0], dim), episodes=2)
    # a fixed action moves the latent's mean off the prior's 0 (what the script measures on APT)
    assert saturated["latents"].mean(0).norm() > 3 * random["latents"].mean(0).norm()


def test_policy_frames_needs_a_classifier_for_other_data(monkeypatch, capsys):
    policy_frames = importlib.import_module("palm_lightning.tools.policy_frames")
    monkeypatch.setattr("sys.argv", ["policy_frames.py", "x.ckpt", "--data", "configs/classifier/atari.yaml"])
    with pytest.raises(SystemExit) as exit_info:
        policy_frames.main()
    assert exit_info.value.code == 2
    assert "needs --classifier" in capsys.readouterr().err


def test_feature_spread_reads_zero_for_features_that_ignore_the_frame(monkeypatch):
    import torch

    feature_spread = importlib.import_module("palm_lightning.tools.feature_spread")
    images = torch.rand(20, 1, 8, 8) * 2 - 1
    size, std = feature_spread.spread(lambda x: torch.full((len(x), 4), -0.5), images)
    assert size == pytest.approx(0.5) and std == 0.0
    size, std = feature_spread.spread(lambda x: x.flatten(1), images)
    assert std > 0.3  # uniform pixels in [-1, 1]: std ≈ 0.58


def test_feature_spread_effective_rank_counts_directions_of_variation_and_standardizing_cannot_add_one(monkeypatch):
    import torch

    feature_spread = importlib.import_module("palm_lightning.tools.feature_spread")
    torch.manual_seed(0)
    assert feature_spread.effective_rank(torch.ones(50, 8)) == 0.0
    one_direction = torch.randn(50, 1) * torch.tensor([[1.0, 0.01, -3.0, 2.0]])
    assert feature_spread.effective_rank(one_direction) == pytest.approx(1.0)
    # Standardizing equalises the scales but the features still move along a single direction.
    raw, standardized = feature_spread.within_game_ranks(
        lambda x: x.flatten(1)[:, :1] * torch.ones(1, 4), torch.randn(50, 1, 2, 2)
    )
    assert raw == pytest.approx(1.0) and standardized == pytest.approx(1.0)
    isotropic = feature_spread.effective_rank(torch.randn(4000, 4))
    assert 3.8 < isotropic <= 4.0
    _, standardized = feature_spread.within_game_ranks(
        lambda x: x.flatten(1) * torch.tensor([100.0, 1, 1, 0.01]), torch.randn(4000, 1, 2, 2)
    )
    assert standardized > 3.8  # four independent dimensions of very different scales: four directions


def test_encoder_drift_reads_no_change_for_an_identical_encoder_and_cka_ignores_rotations(monkeypatch):
    import torch
    from torch import nn

    drift = importlib.import_module("palm_lightning.tools.encoder_drift")
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    moved = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 4))
    moved.load_state_dict(net.state_dict())
    with torch.no_grad():
        moved[2].weight.mul_(1.5)
    changes = drift.weight_changes(moved, net)
    assert set(changes) == {"0.weight", "2.weight"}  # biases are left out
    assert changes["0.weight"] == 0.0 and changes["2.weight"] == pytest.approx(0.5)

    x = torch.randn(200, 5)
    rotation, _ = torch.linalg.qr(torch.randn(5, 5))
    assert drift.linear_cka(x, 3.0 * x @ rotation) == pytest.approx(1.0, abs=1e-5)
    assert drift.linear_cka(x, torch.randn(200, 5)) < 0.2
    assert drift.same_dimension_correlation(x, 2.0 * x + 1.0) == pytest.approx(1.0, abs=1e-5)
    assert drift.same_dimension_correlation(x, x @ rotation) < 0.9  # rotated: same information, other axes


def test_gpu_smoke_rates_the_training_tag_not_the_warm_up(tmp_path, monkeypatch):
    from torch.utils.tensorboard import SummaryWriter

    smoke = importlib.import_module("experiments.gpu_smoke")
    writer = SummaryWriter(str(tmp_path / "run" / "version_0"))
    writer.add_scalar("hp_metric", -1.0, 0, walltime=1000.0)  # logged at start, before a long warm-up
    for step in range(100, 1100, 100):  # 1 000 updates in 10 s after the warm-up
        writer.add_scalar("train/loss", 1.0 / step, step, walltime=2000.0 + step / 100)
    writer.add_scalar("val/acc", 0.5, 1200, walltime=2020.0)
    writer.close()
    steps, rate, last = smoke.read_scalars(tmp_path / "run")
    assert steps == 1200
    assert rate == pytest.approx(100.0)  # (1000 - 100) updates / 9 s; the warm-up would give ~1
    assert last["val/acc"] == pytest.approx(0.5)
    assert smoke.read_scalars(tmp_path / "empty") == (None, None, {})


def test_gpu_smoke_commands_parse_with_their_overrides(tmp_path, monkeypatch):
    from tests.cli_runner import run_cli

    smoke = importlib.import_module("experiments.gpu_smoke")
    (palm,) = [check for check in smoke.checks("/carried/fashion-mnist") if check.name == "palm_gpu"]
    argv = smoke.command(palm, tmp_path / "runs", 75, ["--trainer.accelerator=cpu"])
    result = run_cli(*argv[3:], "--print_config", cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert "max_time: 00:00:01:15" in result.stdout
    assert "system_dir: /carried/fashion-mnist" in result.stdout
