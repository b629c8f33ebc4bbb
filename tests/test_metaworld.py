"""Meta-World manipulation families (palm_lightning.envs.manipulation): fixed goals, task switching,
Meta-World's own observations/rewards/success, MT10's skills, success in the stream's logs, the
configs, the EAR tools on a Meta-World checkpoint, and the manipulation driver on tiny sizes.

Meta-World is optional (``pip install --no-deps metaworld==3.1.1``; the README's test command
installs it): without it these tests skip, except the one that checks the error a user then gets.
"""

from __future__ import annotations

import importlib
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from palm_lightning.envs.families import make_task_env
from palm_lightning.envs.manipulation import (
    INSTALL_LINE,
    MT10_SKILLS,
    MetaWorldMT10Env,
    MetaWorldPushEnv,
    MetaWorldReachEnv,
    metaworld_available,
)
from tests.cli_runner import REPO, run_cli


def metaworld_importable() -> bool:
    """Installed and importable (an install that cannot import, e.g. on another mujoco, skips too)."""
    if not metaworld_available():
        return False
    try:
        importlib.import_module("metaworld")
    except ImportError:
        return False
    return True


HAVE_METAWORLD = metaworld_importable()
needs_metaworld = pytest.mark.skipif(
    not HAVE_METAWORLD, reason=f"Meta-World is not installed or does not import (optional): {INSTALL_LINE}"
)
CONFIGS = sorted((REPO / "configs" / "ear" / "metaworld").glob("*.yaml"))
CPU_CONFIGS = [p for p in CONFIGS if "cpu" in p.stem]
TINY = [  # a few updates, tiny nets, 10-step episodes: enough to pass every stage of a run
    "--trainer.max_steps=4",
    "--trainer.val_check_interval=4",
    "--trainer.num_sanity_val_steps=0",
    "--trainer.enable_progress_bar=false",
    "--model.init_args.agent.hidden_dim=16",
    "--model.init_args.log_every_n_updates=2",
    "--data.init_args.warmup_steps_per_task=20",
    "--data.init_args.batch_size_per_task=4",
    "--data.init_args.buffer_capacity_per_task=300",
    "--data.init_args.env_kwargs={max_episode_steps: 10}",
]


def test_without_metaworld_the_package_imports_and_the_families_say_how_to_install(tmp_path):
    """Import, config-level use and the error, in a fresh interpreter where ``metaworld`` cannot import."""
    script = """
import sys
sys.modules["metaworld"] = None  # what an environment without the package looks like to import
from palm_lightning.datamodules import MultiTaskDataModule
from palm_lightning.envs.families import make_task_env
from palm_lightning.envs.manipulation import MetaWorldMissingError
print(MultiTaskDataModule("metaworld_reach").task_names[:2], MultiTaskDataModule("metaworld_mt10").task_names[0])
try:
    make_task_env("metaworld_reach", 0)
except MetaWorldMissingError as error:
    print("ERROR", error)
"""
    result = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"},
        timeout=120,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "['goal0', 'goal1'] reach-v3" in result.stdout
    assert "ERROR the Meta-World task families need the metaworld package" in result.stdout
    assert "pip install --no-deps metaworld==3.1.1" in result.stdout


# --- the goal family ------------------------------------------------------------------------------


def raw_env(env_name: str, task):
    """A raw Meta-World environment with ``task`` set."""
    import metaworld

    raw = metaworld.ALL_V3_ENVIRONMENTS[env_name]()
    raw.set_task(task)
    return raw


@needs_metaworld
def test_goal_family_goals_are_fixed_distinct_and_metaworlds_own():
    train, adapt = MetaWorldReachEnv.goals("train"), MetaWorldReachEnv.goals("adapt")
    assert train.shape == (10, 3) and adapt.shape == (5, 3)
    everything = np.concatenate([train, adapt])
    distances = np.linalg.norm(everything[:, None] - everything[None], axis=-1)
    assert distances[~np.eye(15, dtype=bool)].min() > 1e-3  # 15 different goals, held-out ones apart
    # Meta-World's ML1 sampler with seed 0, drawn afresh: held-out goal 2 is its test variant 2's goal
    import metaworld

    raw = raw_env("reach-v3", metaworld.ML1("reach-v3", seed=0).test_tasks[2])
    raw.reset()
    np.testing.assert_allclose(raw._target_pos, adapt[2])
    low, high = raw.goal_space.low, raw.goal_space.high
    assert ((everything >= low) & (everything <= high)).all()
    assert MetaWorldReachEnv.task_name(3) == "goal3" and MetaWorldReachEnv.task_name(1, "adapt") == "heldout1"
    with pytest.raises(ValueError, match=r"task must be an integer in \[0, 4\] for split='adapt', got 5"):
        make_task_env("metaworld_reach", 5, split="adapt")


@needs_metaworld
def test_task_switching_changes_the_goal_and_the_goal_is_hidden():
    env = make_task_env("metaworld_reach", 0)
    assert env.spec.max_episode_steps == 500
    goals = {"train": MetaWorldReachEnv.goals("train"), "adapt": MetaWorldReachEnv.goals("adapt")}
    first = None
    for task, split in ((0, "train"), (7, "train"), (1, "adapt")):
        env.unwrapped.set_task(task, split)
        obs, info = env.reset(seed=0)
        assert info["task"] == task and (obs[-3:] == 0).all()  # ML1's convention: the goal is not observed
        first = obs if first is None else first
        np.testing.assert_array_equal(obs, first)  # the object starts in one place: nothing tells tasks apart
        _, _, _, _, info = env.step(np.zeros(4, dtype=np.float32))
        np.testing.assert_allclose(info["goal"], goals[split][task])
        hand = np.array([info["hand_x"], info["hand_y"], info["hand_z"]])
        assert info["hand_to_goal"] == pytest.approx(float(np.linalg.norm(hand - goals[split][task])))
    shown = make_task_env("metaworld_reach", 4, goal_observable=True)
    obs, _ = shown.reset(seed=0)
    np.testing.assert_allclose(obs[-3:], goals["train"][4])
    with pytest.raises(ValueError, match="takes no custom target"):
        MetaWorldReachEnv.describe(1.0, "goal")


@needs_metaworld
@pytest.mark.parametrize(
    "env_name, family, cls, index",
    [("reach-v3", "metaworld_reach", MetaWorldReachEnv, 2), ("push-v3", "metaworld_push", MetaWorldPushEnv, 1)],
)
def test_steps_are_metaworlds_own(env_name, family, cls, index):
    """Observation, reward, success and truncation equal a raw Meta-World env on the same variant."""
    ours = make_task_env(family, index)
    raw = raw_env(env_name, cls.metaworld_tasks("train")[index])  # Meta-World's own Task objects
    raw.seed(0)
    obs, _ = ours.reset(seed=0)
    raw_obs, _ = raw.reset()
    np.testing.assert_array_equal(obs, raw_obs)
    rng = np.random.default_rng(0)
    for _ in range(5):
        action = rng.uniform(-1, 1, 4).astype(np.float32)
        obs, reward, terminated, truncated, info = ours.step(action)
        raw_obs, raw_reward, raw_terminated, raw_truncated, raw_info = raw.step(action)
        np.testing.assert_array_equal(obs, raw_obs)
        assert reward == raw_reward and (terminated, truncated) == (raw_terminated, raw_truncated)
        assert info["success"] == float(raw_info["success"])
        assert info["obj_to_target"] == raw_info["obj_to_target"]
    np.testing.assert_allclose(info["goal"], cls.goals("train")[index])


@needs_metaworld
def test_mt10_has_ten_distinct_skills_with_the_goal_shown():
    assert len(set(MT10_SKILLS)) == 10 == MetaWorldMT10Env.num_train_tasks
    assert [MetaWorldMT10Env.task_name(k) for k in range(10)] == list(MT10_SKILLS)
    env = make_task_env("metaworld_mt10", 0)
    for k in (0, 3, 9):
        env.unwrapped.set_task(k)
        obs, _ = env.reset(seed=0)
        assert env.unwrapped.env_name == MT10_SKILLS[k]
        np.testing.assert_allclose(obs[-3:], env.unwrapped.raw._target_pos)  # MT10 shows the goal
    with pytest.raises(ValueError, match="no 'adapt' tasks"):
        make_task_env("metaworld_mt10", 0, split="adapt")
    from palm_lightning.datamodules import MultiTaskDataModule

    with pytest.raises(ValueError, match="metaworld_mt10 has no 'adapt' tasks"):
        MultiTaskDataModule("metaworld_mt10", split="adapt")


# --- batched environments and the stream --------------------------------------------------------------


def scripted_reach(env, goals: np.ndarray):
    """Move the fingertips (4.5 cm below the hand body, obs[:3]) straight to the goal."""

    def act(obs: torch.Tensor) -> torch.Tensor:
        target = torch.as_tensor(goals, dtype=torch.float32) + torch.tensor([0.0, 0.0, 0.045])
        move = (50 * (target - obs[:, :3])).clamp(-1, 1)
        return torch.cat([move, torch.ones(len(obs), 1)], dim=1)

    return act


@needs_metaworld
def test_vector_env_reports_success_and_the_hands_final_position():
    from palm_lightning.envs.multitask import MultiTaskVectorEnv, run_episodes

    goals = MetaWorldReachEnv.goals("train")[[0, 5]]
    env = MultiTaskVectorEnv("metaworld_reach", [0, 5], env_kwargs={"max_episode_steps": 60})
    reached, still = run_episodes(env, scripted_reach(env, goals)), run_episodes(env, lambda o: torch.zeros(2, 4))
    for summary, goal in zip(reached, goals, strict=True):
        assert summary["success"] == 1.0 and summary["length"] == 60
        hand = np.array([summary[f"final_hand_{axis}"] for axis in "xyz"])
        assert summary["final_hand_to_goal"] == pytest.approx(float(np.linalg.norm(hand - goal)), abs=1e-6)
        assert summary["final_hand_to_goal"] < 0.08  # within 5 cm of the fingertips, hand body 4.5 cm above
    assert [s["success"] for s in still] == [0.0, 0.0]


@needs_metaworld
def test_vector_env_state_dict_resumes_the_same_trajectory():
    from palm_lightning.envs.multitask import MultiTaskVectorEnv

    a = MultiTaskVectorEnv("metaworld_reach", [0, 1], seed=0)
    a.reset()
    actions = [torch.rand(2, 4) * 2 - 1 for _ in range(8)]
    for action in actions[:4]:
        a.step(action)
    b = MultiTaskVectorEnv("metaworld_reach", [0, 1], seed=99)
    b.load_state_dict(a.state_dict())
    for action in actions[4:]:
        obs_a, reward_a, *_ = a.step(action)
        obs_b, reward_b, *_ = b.step(action)
    torch.testing.assert_close(obs_a, obs_b)
    torch.testing.assert_close(reward_a, reward_b)


# --- configs ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("config", [str(p.relative_to(REPO)) for p in CONFIGS])
def test_metaworld_configs_parse_and_fit_their_family(config):
    import yaml

    from palm_lightning.datamodules import MultiTaskDataModule

    result = run_cli("fit", "--config", str(REPO / config), "--print_config", cwd=REPO)
    assert result.returncode == 0, result.stderr[-2000:]
    cfg = yaml.safe_load(result.stdout)
    data, model = cfg["data"]["init_args"], cfg["model"]["init_args"]
    dm = MultiTaskDataModule(**{k: v for k, v in data.items() if k in ("family", "tasks", "split")})
    assert dm.family.startswith("metaworld_")
    assert (model["obs_dim"], model["action_dim"], model["num_tasks"]) == (39, 4, dm.num_tasks)
    assert ("not run (needs a GPU)" in (REPO / config).read_text()) == ("cpu" not in Path(config).stem)


@pytest.fixture(scope="module")
def reach_run(tmp_path_factory) -> Path:
    """EAR on metaworld_reach_cpu through the CLI, tiny: the run folder (logs and last.ckpt)."""
    if not HAVE_METAWORLD:
        pytest.skip(f"Meta-World is not installed or does not import (optional): {INSTALL_LINE}")
    out = tmp_path_factory.mktemp("reach_run")
    result = run_cli(
        "fit",
        "--config",
        str(REPO / "configs/ear/metaworld/reach_cpu.yaml"),
        *TINY,
        "--trainer.logger.init_args.save_dir",
        str(out),
        cwd=out,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    (run,) = (out / "ear_metaworld_reach_cpu").glob("version_*")
    return run


@needs_metaworld
def test_reach_cpu_trains_through_the_cli_and_logs_success_per_task(reach_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(reach_run))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"eval_success/goal0", "eval_success/goal9", "eval/success_mean", "eval/final_hand_to_goal_mean"} <= tags
    assert {"train_success/goal0", "train_success/mean", "train_return/goal3"} <= tags  # 10-step warm-up episodes
    assert events.Scalars("eval_success/goal0")[-1].value in (0.0, 1.0)
    assert (reach_run / "checkpoints" / "last.ckpt").is_file()


@needs_metaworld
@pytest.mark.parametrize("config", [p.name for p in CPU_CONFIGS if p.name != "reach_cpu.yaml"])
def test_cpu_configs_train_a_few_steps(config, tmp_path):
    """In-process (the subprocess run is reach_cpu's, above): baselines, SAC from scratch, MT10."""
    from palm_lightning.cli import main

    main(
        [
            "fit",
            "--config",
            str(REPO / "configs/ear/metaworld" / config),
            *TINY,
            "--trainer.logger.init_args.save_dir",
            str(tmp_path),
        ]
    )
    assert list(tmp_path.glob("*/version_0/checkpoints/last.ckpt"))


# --- the EAR tools on a Meta-World checkpoint --------------------------------------------------------


def test_segment_position():
    from palm_lightning.tools.interpolate import segment_position

    start, end = np.zeros(3), np.array([2.0, 0.0, 0.0])
    assert segment_position(np.array([1.0, 0.5, 0.0]), start, end) == pytest.approx((0.5, 0.5))
    assert segment_position(np.array([3.0, 0.0, 0.0]), start, end) == pytest.approx((1.0, 1.5))
    with pytest.raises(ValueError, match="ends coincide"):
        segment_position(start, start, start)


@needs_metaworld
def test_interpolate_reports_the_hand_against_the_two_goals(reach_run, tmp_path, capsys):
    from palm_lightning.tools import interpolate

    ckpt = reach_run / "checkpoints" / "last.ckpt"
    rc = interpolate.main(["--ckpt", str(ckpt), "--tasks", "1", "0", "--betas", "0", "0.5", "1", "--episodes", "1"])
    assert rc == 0, capsys.readouterr().err
    assert "hand to goal segment (m)" in capsys.readouterr().out
    doc = json.loads((reach_run / "interpolation_1_0" / "interpolation.json").read_text())
    goals = MetaWorldReachEnv.goals("train")
    assert doc["goals"] == {"goal1": goals[1].tolist(), "goal0": goals[0].tolist()}
    for row in doc["rows"]:
        hand = np.array([row["final_hand_x"], row["final_hand_y"], row["final_hand_z"]])
        distance, position = interpolate.segment_position(hand, goals[0], goals[1])
        assert (row["goal_segment_distance"], row["goal_segment_position"]) == pytest.approx((distance, position))
        assert row["success"] in (0.0, 1.0)


@needs_metaworld
def test_cem_adapt_scores_a_held_out_goal_by_success_and_distance(reach_run, tmp_path, capsys):
    from palm_lightning.tools import cem_adapt

    args = ["--ckpt", str(reach_run / "checkpoints" / "last.ckpt"), "--out", str(tmp_path)]
    tiny = ["--elites", "2", "--perturbations", "1", "--epochs", "2", "--final-episodes", "1", "--eval-episodes", "1"]
    assert cem_adapt.main([*args, "--task", "4", *tiny]) == 0
    doc = json.loads((tmp_path / "cem.json").read_text())
    assert doc["task"] == "heldout4" and doc["family"] == "metaworld_reach"
    assert set(doc["evaluation"]) >= {"success", "final_hand_to_goal", "return_mean"}
    assert doc["evaluation"]["success"] in (0.0, 1.0)
    assert 0 < doc["evaluation"]["final_hand_to_goal"] < 1
    assert all({"eval_success", "eval_final_hand_to_goal", "best_success"} <= set(r) for r in doc["history"])
    assert doc["history"][-1]["env_steps"] == 2 * 4 * 10  # 2 epochs × 4 candidates × 10-step episodes
    capsys.readouterr()
    assert cem_adapt.main([*args, "--target", "0.5", *tiny]) == 2
    assert "takes no custom target" in capsys.readouterr().err


# --- the driver ----------------------------------------------------------------------------------------


OVERLAY = """
trainer:
  max_steps: 4
  val_check_interval: 4
  num_sanity_val_steps: 0
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {CHECKPOINTS}
model:
  init_args: {agent: {hidden_dim: 16}, log_every_n_updates: 2}
data:
  init_args:
    warmup_steps_per_task: 10
    batch_size_per_task: 4
    buffer_capacity_per_task: 300
    env_kwargs: {max_episode_steps: 10}
"""


def train_in_process(row, seed, out, data_dir, name=None, overrides=(), seed_data=True):
    """experiments.representation_table.train's command, run by the CLI in this process (saves ~5 s of
    interpreter start-up per run)."""
    from experiments.representation_table import CONFIGS
    from palm_lightning.cli import main

    run = out / name / "version_0"
    if not (run / "trained.json").is_file():
        args = ["fit"]
        for config in row.configs:
            args += ["--config", str(CONFIGS / config)]
        args += [*overrides, "--seed_everything", str(seed), "--data.init_args.seed", str(seed)]
        args += ["--trainer.logger.init_args.save_dir", str(out), "--trainer.logger.init_args.name", name]
        args += ["--trainer.logger.init_args.version", "0", "--trainer.enable_progress_bar", "false"]
        main(args)
        (run / "trained.json").write_text("{}")
    return run / "checkpoints" / "last.ckpt"


@needs_metaworld
def test_manipulation_driver_smoke(tmp_path, monkeypatch, capsys):
    """experiments/ear_manipulation.py end to end on tiny sizes (overlays: 4 updates, 10-step episodes,
    a CEM of 2 epochs × 4 candidates; one seed, one pair, one held-out goal): well under 20 s."""
    driver = importlib.import_module("experiments.ear_manipulation")
    monkeypatch.setattr(driver, "train", train_in_process)
    overlays = tmp_path / "overlays"
    overlays.mkdir()
    for method in ("ear", "ohe_sac", "mhmt_sac"):
        (overlays / f"{method}.yaml").write_text(OVERLAY.replace("{CHECKPOINTS}", "{save_last: true, save_top_k: 0}"))
    scratch = "{every_n_train_steps: 2, save_top_k: -1, save_last: true}"
    (overlays / "sac_scratch.yaml").write_text(OVERLAY.replace("{CHECKPOINTS}", scratch))
    results = tmp_path / "results"
    argv = ["--seeds", "0", "--targets", "1", "--pairs", "2,3", "--train", "--overlay", str(overlays)]
    argv += ["--out", str(tmp_path / "runs"), "--results", str(results)]
    argv += ["--cem-elites", "2", "--cem-perturbations", "1", "--cem-epochs", "2"]
    assert driver.main(argv) == 0
    doc = json.loads((results / "ear_manipulation.json").read_text())
    assert doc["command"].startswith("python -m experiments.ear_manipulation --seeds 0")
    rows = {row["name"]: row["metrics"] for row in doc["rows"]}
    assert set(rows) == {
        "ear/trained_goals",
        "ohe_sac/trained_goals",
        "mhmt_sac/trained_goals",
        "ear/interpolation",
        "ear_cem/heldout",
        "sac_scratch/heldout",
    }
    for metrics in rows.values():
        for stats in metrics.values():
            assert math.isfinite(stats["mean"]) and stats["std"] == 0.0 and stats["n"] == 1
    assert rows["ear_cem/heldout"]["env_steps_final"]["mean"] == 2 * 4 * 10
    assert rows["sac_scratch/heldout"]["env_steps_final"]["mean"] > 0
    assert 0.0 <= rows["ear/trained_goals"]["success"]["mean"] <= 1.0
    page = (results / "ear_manipulation.md").read_text()
    assert page.startswith("# EAR on Meta-World reach") and len(page.splitlines()) <= 100
    assert "| EAR + CEM |" in page and "| SAC from scratch |" in page and "```bash" in page
    # a second call measures nothing again: everything is cached per run
    capsys.readouterr()
    assert driver.main([a for a in argv if a != "--train"]) == 0
    assert "measured in" not in capsys.readouterr().out
    cached = json.loads((tmp_path / "runs" / "ear_s0" / "version_0" / "manipulation.json").read_text())
    assert {"trained_goals", "interpolation", "cem_t1"} <= set(cached)
