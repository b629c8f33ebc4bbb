"""The EAR tools on a tiny trained checkpoint: interpolation/composition and CEM adaptation,
their outputs, and their errors for bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import lightning as L
import pytest
import torch

from palm_lightning.models import EAR, OHESAC
from palm_lightning.tools import cem_adapt, interpolate
from palm_lightning.tools.ear_rollouts import check_render_backend
from tests.test_ear import TINY_MODEL, tiny_data


def train(tmp_path: Path, cls, name: str, family: str = "halfcheetah_vel", **model_kwargs) -> Path:
    model = cls(**{**TINY_MODEL, **model_kwargs})
    dm = tiny_data(family=family, tasks=[0, 4] if family == "halfcheetah_vel" else [0, 1])
    trainer = L.Trainer(max_steps=5, limit_val_batches=0, logger=False, enable_progress_bar=False,
                        enable_model_summary=False, default_root_dir=tmp_path / name, enable_checkpointing=False)
    trainer.fit(model, dm)
    path = tmp_path / f"{name}.ckpt"
    trainer.save_checkpoint(path)
    return path


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    root = tmp_path_factory.mktemp("ear_ckpts")
    return {
        "ear": train(root, EAR, "ear"),
        "ohe": train(root, OHESAC, "ohe"),
        "hopper": train(root, EAR, "hopper", family="hopper_vel", obs_dim=11, action_dim=3),
    }


def test_interpolation_writes_a_table_json_and_plot(checkpoints, tmp_path, capsys):
    rc = interpolate.main(["--ckpt", str(checkpoints["ear"]), "--tasks", "1", "0", "--betas", "0", "0.5", "1",
                           "--episodes", "1", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "| β | velocity (m/s) | return |" in out and "monotonic in β" in out
    rows = json.loads((tmp_path / "interpolation.json").read_text())["rows"]
    assert [r["beta"] for r in rows] == [0, 0.5, 1]
    assert all("x_velocity" in r for r in rows)
    assert (tmp_path / "interpolation.png").is_file()
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_interpolation_endpoints_are_the_trained_embeddings(checkpoints):
    info, rows = interpolate.interpolate(str(checkpoints["ear"]), (0, 1), [1.0, 0.0], episodes=1)
    model = EAR.from_checkpoint(checkpoints["ear"])
    # β = 1 is task 0's embedding: the same episode as driving the decoder with it directly
    from palm_lightning.tools.ear_rollouts import rollout_embeddings

    direct = rollout_embeddings(model, "halfcheetah_vel", info["tasks"][0], model.task_embeddings()[:1])
    assert rows[0]["x_velocity"] == pytest.approx(direct[0]["x_velocity"], rel=1e-5)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks", "0", "1", "--betas", "1.5"], r"β must lie in \[0, 1\]; got \[1.5\]"),
        (["--tasks", "0", "7"], r"task 7 is not a trained task of this checkpoint; its tasks are \{0: v=1.0, 1: v=5.0\}"),
        (["--tasks", "0", "1", "--family", "ant_dir"], "was trained on 'halfcheetah_vel', not 'ant_dir'"),
    ],
)
def test_interpolation_bad_input(checkpoints, capsys, args, message):
    assert interpolate.main(["--ckpt", str(checkpoints["ear"]), *args]) == 2
    assert re.search(message, capsys.readouterr().err)


def test_tools_reject_other_checkpoints(checkpoints, tmp_path, capsys):
    assert interpolate.main(["--ckpt", str(checkpoints["ohe"]), "--tasks", "0", "1"]) == 2
    assert "is not an EAR checkpoint" in capsys.readouterr().err
    assert interpolate.main(["--ckpt", str(tmp_path / "missing.ckpt"), "--tasks", "0", "1"]) == 2
    assert "no checkpoint at" in capsys.readouterr().err
    garbage = tmp_path / "garbage.ckpt"
    garbage.write_bytes(b"not a checkpoint")
    assert cem_adapt.main(["--ckpt", str(garbage), "--task", "0"]) == 2
    assert "is not a readable checkpoint" in capsys.readouterr().err


def test_render_without_backend_gives_the_fix(monkeypatch):
    monkeypatch.delenv("MUJOCO_GL", raising=False)
    with pytest.raises(RuntimeError, match="set MUJOCO_GL=egl"):
        check_render_backend()


@pytest.mark.parametrize("family", ["halfcheetah_vel", "hopper_vel", "walker_vel", "ant_dir", "halfcheetah_run_jump"])
def test_filmstrips_follow_the_body_with_the_track_camera(monkeypatch, family):
    """gymnasium's free camera stays put (the cheetah left the frame after 20 steps); the strips
    use each model's body-tracking "track" camera unless the caller picks a camera."""
    import mujoco
    import numpy as np

    from palm_lightning.envs.locomotion import make_task_env
    from palm_lightning.tools import ear_rollouts

    env = make_task_env(family, 0)
    assert mujoco.mj_name2id(env.unwrapped.model, mujoco.mjtObj.mjOBJ_CAMERA, "track") >= 0
    env.close()
    seen: list[dict] = []

    class Stop(Exception):
        pass

    def fake_make(family, task, **kwargs):
        seen.append(kwargs)
        raise Stop

    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.setattr(ear_rollouts, "make_task_env", fake_make)
    lte = torch.zeros(3)
    for env_kwargs, camera in (({}, {"camera_name": "track"}), ({"camera_id": -1}, {"camera_id": -1})):
        with pytest.raises(Stop):
            ear_rollouts.render_strip(None, family, 0, lte, env_kwargs=env_kwargs)  # type: ignore[arg-type]
        assert {k: v for k, v in seen[-1].items() if k.startswith("camera_")} == camera
    assert np.all([kw["render_mode"] == "rgb_array" for kw in seen])


def test_cem_adapts_and_saves_the_embedding(checkpoints, tmp_path, capsys):
    rc = cem_adapt.main(["--ckpt", str(checkpoints["hopper"]), "--task", "1", "--elites", "2", "--perturbations", "2",
                         "--epochs", "2", "--final-episodes", "1", "--out", str(tmp_path)])
    assert rc == 0
    out = capsys.readouterr().out
    assert "epoch 1: best return" in out and "hopper_vel held-out v=0.51" in out
    saved = torch.load(tmp_path / "adapted_lte.pt")
    assert saved["lte"].shape == (3,) and saved["lte"].norm() == pytest.approx(1.0, abs=1e-5)
    history = json.loads((tmp_path / "cem.json").read_text())["history"]
    assert len(history) == 2
    assert 0 < history[0]["env_steps"] < history[1]["env_steps"]  # cumulative: 6 episodes per epoch


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "3"], r"task must be an integer in \[0, 2\]"),
        (["--task", "0", "--target", "2.0"], "give exactly one of --task"),
        ([], "give exactly one of --task"),
    ],
)
def test_cem_bad_input(checkpoints, capsys, args, message):
    assert cem_adapt.main(["--ckpt", str(checkpoints["ear"]), "--epochs", "1", "--elites", "1", "--perturbations", "0", *args]) == 2
    assert re.search(message, capsys.readouterr().err)
