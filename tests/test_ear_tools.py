"""The EAR tools on a tiny trained checkpoint: interpolation/composition and CEM adaptation,
their outputs, and their errors for bad input."""

from __future__ import annotations

import functools
import itertools
import json
import math
import re
from pathlib import Path

import lightning as L
import numpy as np
import pytest
import torch

from palm_lightning.models import EAR, OHESAC
from palm_lightning.tools import cem_adapt, interpolate
from palm_lightning.tools.ear_rollouts import check_render_backend
from tests.test_ear import TINY_MODEL, tiny_data


def train(tmp_path: Path, cls, name: str, family: str = "halfcheetah_vel", **model_kwargs) -> Path:
    model = cls(**{**TINY_MODEL, **model_kwargs})
    dm = tiny_data(family=family, tasks=[0, 4] if family == "halfcheetah_vel" else [0, 1])
    trainer = L.Trainer(
        max_steps=5,
        limit_val_batches=0,
        logger=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        default_root_dir=tmp_path / name,
        enable_checkpointing=False,
    )
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
    rc = interpolate.main(
        [
            "--ckpt",
            str(checkpoints["ear"]),
            "--tasks",
            "1",
            "0",
            "--betas",
            "0",
            "0.5",
            "1",
            "--episodes",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "| β | velocity (m/s) | return |" in out and "monotonic in β" in out
    rows = json.loads((tmp_path / "interpolation.json").read_text())["rows"]
    assert [r["beta"] for r in rows] == [0, 0.5, 1]
    assert all("x_velocity" in r for r in rows)
    assert (tmp_path / "interpolation.png").is_file()
    assert list(tmp_path.glob("events.out.tfevents.*"))


def test_interpolation_endpoints_are_the_trained_embeddings(checkpoints, monkeypatch):
    import torch.nn.functional as F

    model = EAR.from_checkpoint(checkpoints["ear"])
    trained = model.task_embeddings()
    zi, zj = trained[1], trained[0]  # --tasks 1 0: β = 1 is task 1, β = 0 is task 0

    def angle(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        return torch.arccos((F.normalize(a, dim=-1) * F.normalize(b, dim=-1)).sum(-1).clamp(-1, 1))

    assert angle(zi, zj) > 0.05, "the two trained embeddings must differ for this test to mean anything"
    seen = []

    def fake_rollouts(model, family, task, ltes, split="train", seed=0, env_kwargs=None):
        seen.append((task, ltes.clone()))
        return [{"return": float(k), "length": 200, "x_velocity": float(k)} for k in range(ltes.shape[0])]

    monkeypatch.setattr(interpolate, "rollout_embeddings", fake_rollouts)
    betas = [0.0, 0.25, 0.5, 0.75, 1.0]
    info, rows = interpolate.interpolate(str(checkpoints["ear"]), (1, 0), betas, episodes=2)
    assert len(seen) == 1
    task, ltes = seen[0]
    assert task == info["tasks"][1] and ltes.shape == (10, 3)
    assert torch.equal(ltes[0::2], ltes[1::2])  # the 2 episodes of a β share its embedding
    per_beta = ltes[0::2]
    # the endpoints are the trained embeddings themselves (unit vectors: normalising changes nothing)
    torch.testing.assert_close(per_beta[0], zj, rtol=0, atol=1e-6)
    torch.testing.assert_close(per_beta[-1], zi, rtol=0, atol=1e-6)
    # in between: unit vectors on the arc from zj to zi, moving monotonically towards zi
    torch.testing.assert_close(per_beta.norm(dim=1), torch.ones(5))
    torch.testing.assert_close(angle(per_beta, zi) + angle(per_beta, zj), angle(zi, zj).expand(5), atol=1e-4, rtol=0)
    to_j = angle(per_beta, zj)
    assert (to_j[1:] > to_j[:-1]).all() and 0 < to_j[2] < angle(zi, zj)
    # each row averages the episodes of its own β (fake velocities 0, 1, …, 9 → 0.5, 2.5, …)
    assert [r["x_velocity"] for r in rows] == [0.5, 2.5, 4.5, 6.5, 8.5]
    assert [r["beta"] for r in rows] == betas


@pytest.mark.parametrize(
    "args, message",
    [
        (["--tasks", "0", "1", "--betas", "1.5"], r"β must lie in \[0, 1\]; got \[1.5\]"),
        (
            ["--tasks", "0", "7"],
            r"task 7 is not a trained task of this checkpoint; its tasks are \{0: v=1.0, 1: v=5.0\}",
        ),
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


GL_PROBE = (
    "import gymnasium as gym\n"
    "env = gym.make('HalfCheetah-v5', render_mode='rgb_array', width=8, height=8)\n"
    "env.reset(seed=0)\n"
    "assert env.render().shape == (8, 8, 3)\n"
)


@functools.cache
def working_gl_backend() -> str | None:
    """The first MuJoCo GL backend that renders here (probed in a subprocess: PyOpenGL fixes its
    platform once per process). ``MUJOCO_GL`` from the environment first, then egl, osmesa."""
    import os
    import subprocess
    import sys

    platform = os.environ.get("PYOPENGL_PLATFORM")
    candidates = (
        [platform] if platform else list(dict.fromkeys(filter(None, [os.environ.get("MUJOCO_GL"), "egl", "osmesa"])))
    )
    for backend in candidates:
        env = {**os.environ, "MUJOCO_GL": backend, "PYOPENGL_PLATFORM": backend}
        try:
            probe = subprocess.run(
                [sys.executable, "-c", GL_PROBE], check=False, env=env, capture_output=True, timeout=60
            )
        except subprocess.TimeoutExpired:
            continue
        if probe.returncode == 0:
            return backend
    return None


class GaitPolicy:
    """Stands in for an EAR: an open-loop sine gait that runs the half-cheetah forwards (about
    2 m/s) and zero torques for the other bodies. Only ``act_with_embedding`` is used."""

    PHASES = torch.tensor([1.86, 2.79, 0.89, 2.55, 3.57, 3.33])

    def __init__(self, action_dim: int, gait: bool) -> None:
        self.action_dim, self.gait, self.t = action_dim, gait, 0

    def act_with_embedding(self, obs: torch.Tensor, lte: torch.Tensor) -> torch.Tensor:
        action = torch.sin(1.0665 * self.t + self.PHASES) if self.gait else torch.zeros(self.action_dim)
        self.t += 1
        return action[None]


def body_pixels(frame) -> np.ndarray:
    """Mask of the bodies' tan colour (rgba 0.8 0.6 0.4 in every family's model), which the floor
    (checker of grey-green and black) and the sky (grey or blue) never have."""
    rgb = frame.astype(np.int32)
    return (rgb[..., 0] - rgb[..., 2] > 50) & (rgb[..., 0] > 100)


@pytest.mark.parametrize("family", ["halfcheetah_vel", "hopper_vel", "walker_vel", "ant_dir", "halfcheetah_run_jump"])
def test_filmstrips_follow_the_body_with_the_track_camera(monkeypatch, family):
    """Rendered for real: with the default "track" camera the body stays at the centre of every
    frame; the running cheetah leaves gymnasium's free camera within two frames."""
    import mujoco

    from palm_lightning.envs.families import make_task_env
    from palm_lightning.tools.ear_rollouts import render_strip

    env = make_task_env(family, 0)
    action_dim = env.action_space.shape[0]
    assert mujoco.mj_name2id(env.unwrapped.model, mujoco.mjtObj.mjOBJ_CAMERA, "track") >= 0
    env.close()
    backend = working_gl_backend()
    if backend is None:
        pytest.skip("no MuJoCo GL backend renders here (tried MUJOCO_GL=egl and osmesa)")
    monkeypatch.setenv("MUJOCO_GL", backend)
    cheetah = family.startswith("halfcheetah")
    size, frames = 96, 8
    every = 25 if cheetah else 10  # the cheetah runs ~10 m in 200 steps; the others stand for 80
    lte = torch.zeros(3)

    def strip(**env_kwargs):
        image = render_strip(
            GaitPolicy(action_dim, cheetah),
            family,
            0,
            lte,
            frames=frames,
            every=every,
            size=size,
            env_kwargs=env_kwargs,
        )
        assert image.shape == (size, frames * size, 3) and image.dtype == np.uint8
        return [image[:, k * size : (k + 1) * size] for k in range(frames)]

    for k, frame in enumerate(strip()):  # default: the track camera
        mask = body_pixels(frame)
        assert mask.sum() >= 5, f"frame {k}: the body is out of the track camera's view"
        columns = mask.nonzero()[1]
        assert abs(columns.mean() - size / 2) < size / 8, f"frame {k}: the body is off-centre ({columns.mean():.1f})"
    if cheetah:
        free = strip(camera_id=-1)  # a caller's camera_* choice wins: gymnasium's free camera
        assert body_pixels(free[0]).sum() >= 5  # the cheetah starts in view …
        assert all(body_pixels(frame).sum() == 0 for frame in free[frames // 2 :]), (
            "the cheetah never left the free camera's view"
        )


def test_cem_adapts_and_saves_the_embedding(checkpoints, tmp_path, capsys):
    rc = cem_adapt.main(
        [
            "--ckpt",
            str(checkpoints["hopper"]),
            "--task",
            "1",
            "--elites",
            "2",
            "--perturbations",
            "2",
            "--epochs",
            "2",
            "--final-episodes",
            "1",
            "--eval-episodes",
            "1",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 0
    out = capsys.readouterr().out
    assert "epoch 1: best return" in out and "hopper_vel held-out v=0.51" in out
    assert "best so far on fresh episodes: return" in out
    saved = torch.load(tmp_path / "adapted_lte.pt")
    assert saved["lte"].shape == (3,) and saved["lte"].norm() == pytest.approx(1.0, abs=1e-5)
    history = json.loads((tmp_path / "cem.json").read_text())["history"]
    assert len(history) == 2
    assert 0 < history[0]["env_steps"] < history[1]["env_steps"]  # cumulative: 6 episodes per epoch
    assert all({"eval_return", "eval_velocity_error"} <= set(record) for record in history)


@pytest.mark.parametrize(
    "args, message",
    [
        (["--task", "3"], r"task must be an integer in \[0, 2\]"),
        (["--task", "0", "--target", "2.0"], "give exactly one of --task"),
        ([], "give exactly one of --task"),
    ],
)
def test_cem_bad_input(checkpoints, capsys, args, message):
    assert (
        cem_adapt.main(
            ["--ckpt", str(checkpoints["ear"]), "--epochs", "1", "--elites", "1", "--perturbations", "0", *args]
        )
        == 2
    )
    assert re.search(message, capsys.readouterr().err)


def test_cem_beats_random_embeddings_on_a_known_scorer(monkeypatch):
    """CEM on a stand-in problem: the "return" of an embedding is its cosine with a hidden unit
    vector, so random unit vectors score 0 on average and the optimum scores 1."""
    import torch.nn.functional as F

    from palm_lightning.envs.locomotion import FAMILIES

    optimum = F.normalize(torch.tensor([0.3, -0.8, 0.5]), dim=0)

    class FakeEAR:
        lte_dim = 3

        def task_embeddings(self):
            return torch.eye(3)[:2]

    info = {
        "family": "halfcheetah_vel",
        "family_class": FAMILIES["halfcheetah_vel"],
        "env_kwargs": {},
        "task_names": ["v=1.0", "v=5.0"],
    }
    monkeypatch.setattr(cem_adapt, "load_ear", lambda ckpt, family=None: (FakeEAR(), info))
    batches = []

    def score(model, family, task, ltes, split="train", seed=0, env_kwargs=None):
        torch.testing.assert_close(ltes.norm(dim=1), torch.ones(len(ltes)))  # candidates stay on the sphere
        batches.append(ltes.clone())
        return [{"return": float(v), "length": 1} for v in ltes @ optimum]

    monkeypatch.setattr(cem_adapt, "rollout_embeddings", score)
    result = cem_adapt.cem_search(
        "fake.ckpt", task=0, elites=6, perturbations=15, noise=0.5, epochs=10, final_episodes=3, seed=0
    )
    assert len(batches) == 11 and all(b.shape == (6 + 6 * 15, 3) for b in batches[:10])  # 10 epochs + final
    random_mean = (
        F.normalize(torch.randn(4096, 3, generator=torch.Generator().manual_seed(1)), dim=1) @ optimum
    ).mean()
    assert abs(random_mean) < 0.05
    best = result["lte"]
    cosine = float(best @ optimum)
    assert cosine > 0.995, f"CEM's best is {math.degrees(math.acos(min(cosine, 1.0))):.1f}° from the optimum"
    assert cosine > float(random_mean) + 0.9
    assert result["evaluation"]["return_mean"] == pytest.approx(cosine, abs=1e-6)  # the best, re-evaluated
    torch.testing.assert_close(batches[-1], best.repeat(3, 1))
    history = [h["best_return"] for h in result["history"]]
    assert all(b >= a for a, b in itertools.pairwise(history)), "elites survive: the best never gets worse"
    assert history[-1] > history[0]
    assert result["history"][-1]["elite_mean_return"] > result["history"][0]["elite_mean_return"] + 0.05
