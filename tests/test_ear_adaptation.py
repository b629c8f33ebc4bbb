"""experiments/ear_adaptation.py end to end on tiny sizes (so the comparison driver cannot silently rot):
training through the CLI, each method's adaptation, the cached curves, the JSON and the figure."""

from __future__ import annotations

import importlib
import json
import shutil
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

# Tiny overlays, one per method: a handful of updates, tiny nets, last.ckpt only (scratch: a kept
# checkpoint every 2 updates, the curve's points).
TINY_SAC_DATA = """
data:
  init_args:
    warmup_steps_per_task: 10
    batch_size_per_task: 4
    buffer_capacity_per_task: 300
    save_buffer: false
"""
OVERLAYS = {
    "ear_cem": """
trainer:
  max_steps: 3
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {save_last: true, save_top_k: 0}
model:
  init_args: {agent: {hidden_dim: 16}, log_every_n_updates: 1}
"""
    + TINY_SAC_DATA,
    "pearl": """
trainer:
  max_steps: 3
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {save_last: true, save_top_k: 0}
model:
  init_args: {agent: {hidden_dim: 16}, encoder_hidden_dim: 16, log_every_n_updates: 1}
"""
    + TINY_SAC_DATA.replace("save_buffer: false", "save_buffer: false\n    context_batch_size: 4"),
    "maml_trpo": """
trainer:
  max_steps: 1
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {save_last: true, save_top_k: 0}
model:
  init_args: {hidden_dim: 8, agent: {max_path_length: 10}}
data:
  init_args: {meta_batch_size: 2, episodes_per_task: 2}
""",
    "sac_scratch": """
trainer:
  max_steps: 4
  callbacks:
    - class_path: lightning.pytorch.callbacks.ModelCheckpoint
      init_args: {every_n_train_steps: 2, save_top_k: -1, save_last: true}
model:
  init_args: {agent: {hidden_dim: 16}, log_every_n_updates: 1}
"""
    + TINY_SAC_DATA,
}
TINY_ADAPTATION = [
    "--eval-episodes=1",
    "--cem-elites=2",
    "--cem-perturbations=1",
    "--cem-epochs=2",
    "--cem-small-elites=1",
    "--cem-small-perturbations=1",
    "--trials=2",
    "--pearl-episodes=1",
    "--maml-steps=1",
    "--maml-episodes=2",
]


@pytest.fixture
def driver(monkeypatch):
    """The script as a module."""
    return importlib.import_module("experiments.ear_adaptation")


def test_the_driver_trains_adapts_and_writes_the_json_and_figure(driver, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.setenv("PYTHONWARNINGS", "ignore")
    overlay = tmp_path / "overlay"
    overlay.mkdir()
    for method, text in OVERLAYS.items():
        (overlay / f"{method}.yaml").write_text(text)
    out, doc, figure = tmp_path / "runs", tmp_path / "adaptation.json", tmp_path / "adaptation.png"
    methods = ["ear_cem", "pearl", "maml_trpo", "sac_scratch"]
    selection = ["--families", "halfcheetah_vel", "--methods", *methods, "--seeds", "0", "--targets", "1"]
    store = tmp_path / "store"
    common = [*selection, *TINY_ADAPTATION, "--overlay", str(overlay), "--out", str(out), "--store", str(store)]
    assert driver.main([*common, "--train", "--json", str(doc), "--figure", str(figure)]) == 0

    found = json.loads(doc.read_text())
    assert set(found) >= {"command", "rows"} and "--train" in found["command"]
    rows = ["ear_cem", "ear_cem_small", *methods[1:]]  # the EAR runs adapted twice: authors' and small CEM
    assert [row["name"] for row in found["rows"]] == [f"halfcheetah_vel/{m}" for m in rows]
    for row in found["rows"]:
        assert set(row) == {"name", "metrics"}
        assert {"return_final", "velocity_error_final", "env_steps_final"} <= set(row["metrics"])
        for metric in row["metrics"].values():
            assert set(metric) == {"mean", "std", "n", "values"} and metric["n"] == 1
    metrics = {row["name"].split("/")[1]: row["metrics"] for row in found["rows"]}
    assert "return_at_0" in metrics["pearl"] and "return_at_0" in metrics["maml_trpo"]  # before any step
    assert "return_at_0" not in metrics["ear_cem"] and "return_at_0" not in metrics["sac_scratch"]
    small, full = metrics["ear_cem_small"]["env_steps_final"], metrics["ear_cem"]["env_steps_final"]
    assert small["mean"] < full["mean"]  # 2 episodes per CEM epoch instead of 4 (the tiny sizes)
    for curve in found["curves"]:
        steps = [p["env_steps"] for p in curve["points"]]
        assert len(steps) == 2 and steps == sorted(steps) and steps[0] < steps[1], curve
    for method in methods:  # the cached per-run curves: one held-out target each, monotone steps
        key = "sac_scratch_t1" if method == "sac_scratch" else method
        cached = json.loads((out / "halfcheetah_vel" / f"{key}_s0" / "version_0" / "adaptation.json").read_text())
        assert [t["name"] for t in cached["targets"]] == ["v=2.67"]
        steps = [p["env_steps"] for p in cached["targets"][0]["curve"]]
        assert steps == sorted(steps) and len(set(steps)) == len(steps), (method, steps)
    (per_target,) = found["tables"]  # the last point of each method on each held-out target
    assert [row["name"] for row in per_target["rows"]] == [f"halfcheetah_vel/{m}/v=2.67" for m in rows]
    for row in per_target["rows"]:
        method = row["name"].split("/")[1]
        assert row["metrics"]["velocity_error_final"]["mean"] == metrics[method]["velocity_error_final"]["mean"]
    assert figure.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    table = capsys.readouterr().out
    assert "| ear_cem |" in table and "| sac_scratch |" in table and "≤ 20k steps" in table
    assert "| halfcheetah_vel | pearl | v=2.67 |" in table

    # a second call reads the trained runs and cached curves; other adaptation settings recompute
    assert driver.main([*common, "--json", str(doc)]) == 0
    assert "adapted in" not in capsys.readouterr().out
    assert driver.main([*common, "--methods", "maml_trpo", "--maml-steps=2", "--store", "none"]) == 0
    assert "maml_trpo seed 0: adapted in" in capsys.readouterr().out

    # the committed store outlives runs/: without the runs, the same table from the store alone
    stored = sorted(path.relative_to(store).as_posix() for path in store.rglob("*.json"))
    assert stored == [f"halfcheetah_vel/{key}_s0.json" for key in sorted([*rows[:-1], "sac_scratch_t1"])]
    before = json.loads(doc.read_text())["rows"]
    shutil.rmtree(out)
    assert driver.main([*common, "--json", str(doc)]) == 0
    assert "adapted in" not in capsys.readouterr().out
    assert json.loads(doc.read_text())["rows"] == before
    assert driver.main([*common, "--train"]) == 0  # stored runs are not trained again
    assert not out.exists()


def test_lanes_split_the_jobs_evenly_and_identically(driver):
    jobs = driver.all_jobs(list(driver.FAMILIES), list(driver.METHODS), [0, 1, 2], [0, 1, 2])
    assert len(jobs) == 2 * 3 * (3 + 3)  # per family and seed: EAR, PEARL, MAML, and one scratch run per target
    lanes = driver.split_lanes(jobs, 2)
    assert lanes == driver.split_lanes(list(jobs), 2)  # each lane process computes the same split
    assert sorted(lanes[0] + lanes[1], key=jobs.index) == jobs
    loads = [sum(driver.estimate_seconds(job) for job in lane) for lane in lanes]
    assert max(loads) < 8 * 3600 and abs(loads[0] - loads[1]) < 0.05 * sum(loads)
    for lane in lanes:  # seed by seed within a lane
        assert [job.seed for job in lane] == sorted(job.seed for job in lane)
    with pytest.raises(SystemExit):
        driver.main(["--lane", "3/2", "--plan"])


def test_workers_share_the_runs_and_wait_for_one_held_elsewhere(driver, tmp_path, monkeypatch):
    """A second worker skips the run another holds, trains the rest, then waits for that run."""
    import threading

    order: list[str] = []

    def finish(job, out):
        job.run(out).mkdir(parents=True, exist_ok=True)
        (job.run(out) / "trained.json").write_text("{}")

    def fake_train(job, out, overlay):  # like representation_table.train: a finished run is skipped
        if not (job.run(out) / "trained.json").is_file():
            order.append(job.key)
            finish(job, out)

    monkeypatch.setattr(driver, "train_job", fake_train)
    point = {"env_steps": 0.0, "return": 1.0, "velocity_error": 0.5}
    monkeypatch.setattr(driver, "adapted", lambda *args: [{"task": 0, "name": "t0", "curve": [point]}])
    jobs = driver.all_jobs(["hopper_vel"], ["ear_cem", "pearl", "maml_trpo"], [0], [0])
    with driver.claimed(jobs[0], tmp_path, wait=False) as first:
        assert first
        with driver.claimed(jobs[0], tmp_path, wait=False) as second:
            assert not second  # held by the other "worker"
        argv = ["--train", "--families", "hopper_vel", "--methods", "ear_cem", "pearl", "maml_trpo", "--store", "none"]
        worker = threading.Thread(target=driver.main, args=([*argv, "--seeds", "0", "--out", str(tmp_path)],))
        worker.start()
        for _ in range(200):
            if len(order) == 2:
                break
            worker.join(0.05)
        assert order == ["pearl", "maml_trpo"] and worker.is_alive()  # waiting for ear_cem
        finish(jobs[0], tmp_path)  # the other worker finishes it
    worker.join(10)
    assert not worker.is_alive() and order == ["pearl", "maml_trpo"]  # ear_cem was not trained again


def test_trials_are_averaged_point_by_point(driver):
    first = [{"env_steps": 0.0, "return": 1.0}, {"env_steps": 200.0, "return": 3.0}]
    second = [{"env_steps": 0.0, "return": 2.0}, {"env_steps": 180.0, "return": 5.0}]
    assert driver.average_curves([first, second]) == [
        {"env_steps": 0.0, "return": 1.5},
        {"env_steps": 190.0, "return": 4.0},
    ]
    with pytest.raises(RuntimeError, match="different lengths"):
        driver.average_curves([first, first[:1]])


def test_an_untrained_run_is_named(driver, tmp_path):
    with pytest.raises(SystemExit, match=r"pearl_s0/version_0 is not trained: run with --train"):
        driver.main(["--methods", "pearl", "--seeds", "0", "--out", str(tmp_path), "--store", "none"])


def test_configs_build_and_share_the_training_tasks(driver, tmp_path, monkeypatch):
    """Every config builds its model and data; EAR, PEARL and MAML-TRPO train on the same tasks (all 10
    of the family), SAC from scratch on a held-out one."""
    from palm_lightning.cli import PalmCLI

    monkeypatch.setattr(sys, "argv", ["palm_lightning"])
    for family in driver.FAMILIES:
        built = {}
        for method in driver.METHODS:
            config = REPO / "configs" / driver.Job(family, method, 0).config
            args = ["--config", str(config), "--trainer.logger.init_args.save_dir", str(tmp_path)]
            built[method] = PalmCLI(args=args, run=False)
        for method in ("ear_cem", "pearl", "maml_trpo"):
            assert built[method].datamodule.family == family, method
            assert built[method].datamodule.tasks == list(range(10)), method
        assert built["ear_cem"].model.hp.num_tasks == built["pearl"].model.hp.num_tasks == 10
        scratch = built["sac_scratch"].datamodule
        assert (scratch.family, scratch.split, scratch.tasks) == (family, "adapt", [0])


def test_stop_by_leaves_the_runs_that_would_end_too_late(driver, tmp_path, monkeypatch, capsys):
    """A worker with ``--stop-by`` trains what fits before it and names what it left."""
    import datetime

    trained: list[str] = []

    def fake_train(job, out, overlay):
        trained.append(job.key)
        job.run(out).mkdir(parents=True, exist_ok=True)
        (job.run(out) / "trained.json").write_text("{}")

    monkeypatch.setattr(driver, "train_job", fake_train)
    monkeypatch.setattr(driver, "adapted", lambda *args: [])
    jobs = driver.all_jobs(["hopper_vel"], ["ear_cem", "sac_scratch"], [0], [0])
    estimates = {job.key: driver.estimate_seconds(job) for job in jobs}
    assert 1.5 * estimates["sac_scratch_t0"] < 25 * 60 < 1.5 * estimates["ear_cem"]  # the clock below splits them
    stop_by = (datetime.datetime.now() + datetime.timedelta(minutes=26)).strftime("%H:%M")
    argv = ["--train", "--families", "hopper_vel", "--methods", "ear_cem", "sac_scratch", "--seeds", "0"]
    assert driver.main([*argv, "--targets", "0", "--out", str(tmp_path), "--store", "none", "--stop-by", stop_by]) == 0
    assert trained == ["sac_scratch_t0"]
    assert "1 runs would end too late and were left for a later call: hopper_vel/ear_cem_s0" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        driver.main(["--train", "--stop-by", "25:00"])
