"""EAR's MuJoCo locomotion task families: API, rewards recomputed from physics, termination, registry."""

from __future__ import annotations

import math
import pickle

import numpy as np
import pytest

pytest.importorskip("mujoco")

import gymnasium
from gymnasium.utils.env_checker import check_env

from palm_lightning.envs import LOCOMOTION_FAMILIES
from palm_lightning.envs.families import env_id, make_task_env
from palm_lightning.envs.locomotion import (
    FAMILIES,
    AntDirEnv,
    HalfCheetahRunJumpEnv,
    HalfCheetahVelEnv,
    HopperVelEnv,
    WalkerVelEnv,
)

# the paper's weights, written out independently of the classes: (ctrl weight, survive bonus)
VELOCITY_WEIGHTS = {"halfcheetah_vel": (0.1, 0.0), "hopper_vel": (1e-3, 1.05), "walker_vel": (1e-3, 1.0)}


@pytest.mark.filterwarnings("ignore:.*Box observation space:UserWarning")  # gymnasium's own ±inf
@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_check_env(family: str) -> None:
    env = make_task_env(family, task=1)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.spec.max_episode_steps == 200


def test_registry() -> None:
    assert set(FAMILIES) == set(LOCOMOTION_FAMILIES)
    for family, cls in FAMILIES.items():
        spec = gymnasium.spec(env_id(family))
        assert spec.max_episode_steps == 200
        assert gymnasium.make(spec.id).unwrapped.__class__ is cls
    assert env_id("halfcheetah_vel") == "palm_lightning/HalfCheetahVel-v0"
    with pytest.raises(ValueError, match=r"known:.*halfcheetah_vel"):
        env_id("cheetah")
    with pytest.raises(ValueError, match="hopper_vel"):
        make_task_env("hopper", 0)


def test_make_halfcheetah_vel_task_4_runs_at_5() -> None:
    env = gymnasium.make("palm_lightning/HalfCheetahVel-v0", task=4)
    _, info = env.reset(seed=0)
    assert env.unwrapped.target == 5.0 and info["target"] == 5.0 and info["task"] == 4
    assert HalfCheetahVelEnv.task_name(4) == "v=5.0"
    assert HalfCheetahVelEnv.task_targets("train") == [float(k + 1) for k in range(10)]


def _steps(env: gymnasium.Env, n: int, seed: int = 0):
    """(action, x_before, xy_before, info, reward, terminated) for n random steps, resetting on end."""
    env.reset(seed=seed)
    env.action_space.seed(seed)
    u = env.unwrapped
    for _ in range(n):
        action = env.action_space.sample()
        x_before = float(u.data.qpos[0])
        xy_before = u.data.body(1).xpos[:2].copy()
        _, reward, terminated, truncated, info = env.step(action)
        yield action, x_before, xy_before, info, reward, terminated
        if terminated or truncated:
            env.reset()


@pytest.mark.parametrize("family", sorted(VELOCITY_WEIGHTS))
def test_velocity_reward_recomputed(family: str) -> None:
    ctrl, survive = VELOCITY_WEIGHTS[family]
    env = make_task_env(family, task=3)
    u = env.unwrapped
    for action, x_before, _, info, reward, terminated in _steps(env, 8):
        v_x = (float(u.data.qpos[0]) - x_before) / u.dt
        assert info["x_velocity"] == pytest.approx(v_x)
        bonus = survive if not terminated else 0.0
        expected = -abs(v_x - u.target) - ctrl * float(np.sum(np.square(action))) + bonus
        assert reward == pytest.approx(expected, rel=1e-6, abs=1e-6)
        assert info["velocity_error"] == pytest.approx(abs(v_x - u.target))
        assert info["reward_forward"] == pytest.approx(-info["velocity_error"])


def test_ant_dir_reward_recomputed() -> None:
    env = make_task_env("ant_dir", task=6)  # 90°: +y
    u = env.unwrapped
    assert u.target == pytest.approx(math.pi / 2)
    for action, _, xy_before, info, reward, terminated in _steps(env, 12):
        v = (u.data.body("torso").xpos[:2] - xy_before) / u.dt
        np.testing.assert_allclose(info["xy_velocity"], v)
        assert info["x_velocity"] == pytest.approx(v[0])
        assert info["heading"] == pytest.approx(math.atan2(v[1], v[0]))
        assert info["velocity_along_target"] == pytest.approx(v[1], abs=1e-9)
        contact = 5e-4 * float(np.sum(np.square(np.clip(u.data.cfrc_ext, -1.0, 1.0))))
        expected = v[1] - 0.5 * float(np.sum(np.square(action))) - contact + (0.0 if terminated else 1.0)
        assert reward == pytest.approx(expected, rel=1e-6, abs=1e-6)
    assert u.behaviour_key == AntDirEnv.behaviour_key == "heading"
    assert env.observation_space.shape == (105,)  # gymnasium's default keeps the contact forces


@pytest.mark.parametrize("task", [2, 8])
def test_run_jump_reward_recomputed(task: int) -> None:
    env = make_task_env("halfcheetah_run_jump", task=task)
    u = env.unwrapped
    height = task >= 7
    assert u.task_kind == ("height" if height else "velocity")
    assert u.target == (5.0 if height else 3.0)
    assert HalfCheetahRunJumpEnv.behaviour_key_for(task) == ("z_height" if height else "x_velocity")
    for action, x_before, _, info, reward, terminated in _steps(env, 8):
        z = float(u.data.qpos[1])
        v_x = (float(u.data.qpos[0]) - x_before) / u.dt
        assert info["z_height"] == z and info["x_velocity"] == pytest.approx(v_x)
        task_term = 5.0 * z if height else -abs(v_x - 3.0)
        assert reward == pytest.approx(task_term - 0.1 * float(np.sum(np.square(action))), rel=1e-6, abs=1e-6)
        assert not terminated


def test_time_limit_truncates_at_200() -> None:
    env = gymnasium.make("palm_lightning/HalfCheetahVel-v0", task=0)
    env.reset(seed=0)
    for t in range(1, 201):
        _, _, terminated, truncated, _ = env.step(env.action_space.sample())
        assert not terminated
        assert truncated == (t == 200)


def test_walker_terminates_out_of_height_range() -> None:
    u = WalkerVelEnv(task=0)
    zero = np.zeros(u.action_space.shape, dtype=np.float32)
    u.reset(seed=0)
    assert not u.step(zero)[2]
    for z in (0.5, 2.5):
        u.reset(seed=0)
        qpos = u.data.qpos.copy()
        qpos[1] = z
        u.set_state(qpos, u.data.qvel.copy())
        _, _, terminated, _, info = u.step(zero)
        assert terminated and info["reward_survive"] == 0.0
    u.reset(seed=0)
    qpos = u.data.qpos.copy()
    qpos[2] = 1.3  # torso angle
    u.set_state(qpos, u.data.qvel.copy())
    assert u.step(zero)[2]


def test_set_task_and_custom_target() -> None:
    env = make_task_env("hopper_vel", task=0)
    u = env.unwrapped
    assert u.target == pytest.approx(0.2)
    u.set_task(9)
    _, info = env.reset(seed=0)
    assert u.target == 2.0 and info["target"] == 2.0 and info["task"] == 9
    u.set_task(1, split="adapt")
    assert u.target == HopperVelEnv.adapt_targets[1] and u.split == "adapt"
    assert pickle.loads(pickle.dumps(u)).target == u.target  # the current task survives copies
    u.set_task(target=0.7)
    assert u.target == 0.7 and u.task == -1
    _, _, _, _, info = env.step(env.action_space.sample())
    assert info["target"] == 0.7 and info["task"] == -1

    jump = HalfCheetahRunJumpEnv(task=0)
    assert jump.behaviour_key == "x_velocity"
    jump.set_task(9)
    assert (jump.target, jump.task_kind, jump.behaviour_key) == (10.0, "height", "z_height")
    jump.set_task(target=3.0, kind="height")
    assert (jump.target, jump.task_kind) == (3.0, "height")
    ant = AntDirEnv(target=math.pi)
    assert ant.target == math.pi and ant.task == -1


def test_bad_input_raises() -> None:
    with pytest.raises(ValueError, match=r"\[0, 9\].*got 10"):
        HalfCheetahVelEnv(task=10)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        make_task_env("walker_vel", task=-1)
    with pytest.raises(ValueError, match=r"\[0, 23\]"):
        AntDirEnv.task_name(24)
    with pytest.raises(ValueError, match=r"\[0, 2\].*adapt"):
        HopperVelEnv(task=3, split="adapt")
    with pytest.raises(ValueError, match=r"split must be one of \['train', 'adapt'\]"):
        HopperVelEnv(split="test")
    with pytest.raises(ValueError, match=r"convention must be one of \['ear', 'pearl'\]"):
        HopperVelEnv(convention="maml")
    with pytest.raises(ValueError, match="no 'adapt' tasks"):
        HalfCheetahRunJumpEnv(split="adapt")
    with pytest.raises(ValueError, match="needs kind"):
        HalfCheetahRunJumpEnv(target=2.0)
    with pytest.raises(ValueError, match="kind must be one of"):
        HalfCheetahRunJumpEnv(target=2.0, kind="direction")
    with pytest.raises(ValueError, match="radians"):
        AntDirEnv(target=90)
    with pytest.raises(ValueError, match="finite number"):
        HalfCheetahVelEnv(target="fast")
    with pytest.raises(ValueError, match="finite number"):
        HalfCheetahVelEnv(target=float("nan"))
    with pytest.raises(ValueError, match="custom target"):
        HalfCheetahVelEnv(task=1, kind="velocity")
    u = HalfCheetahVelEnv(task=2)
    with pytest.raises(ValueError, match=r"\[0, 9\]"):
        u.set_task(12)
    assert u.target == 3.0  # a rejected switch leaves the task alone


def test_adapt_targets_deterministic_and_in_range() -> None:
    documented = {
        HalfCheetahVelEnv: ((6.31, 2.67, 0.41), 9.9),
        HopperVelEnv: ((1.21, 0.51, 0.08), 1.9),
        WalkerVelEnv: ((1.21, 0.51, 0.08), 1.9),
        AntDirEnv: ((4.0021, 1.6951, 0.2574, 0.1038, 5.1099), 2 * math.pi),
    }
    for cls, (targets, high) in documented.items():
        assert cls.task_targets("adapt") == list(targets)
        assert cls.num_adapt_tasks == len(targets) and cls.num_train_tasks == len(cls.train_targets)
        assert all(0.0 <= t <= high for t in targets) and len(set(targets)) == len(targets)
        draws = np.random.default_rng(0).uniform(0.0, high, size=len(targets))
        np.testing.assert_allclose(targets, draws, atol=1e-4 if cls is AntDirEnv else 0.005)
    assert HalfCheetahRunJumpEnv.num_adapt_tasks == 0
    assert [AntDirEnv.task_name(k) for k in (0, 23)] == ["theta=0.0deg", "theta=345.0deg"]


def test_pearl_convention() -> None:
    action = np.full(6, 0.5, dtype=np.float32)
    ctrl = {}
    for convention in ("ear", "pearl"):
        u = HalfCheetahVelEnv(task=0, convention=convention)
        u.reset(seed=0)
        ctrl[convention] = u.step(action)[4]["reward_ctrl"]
    assert ctrl["ear"] == pytest.approx(-0.1 * 6 * 0.25) and ctrl["pearl"] == pytest.approx(-0.05 * 6 * 0.25)
    pearl = HalfCheetahVelEnv.task_targets("train", "pearl")
    assert len(pearl) == 10 and all(0.0 <= v < 3.0 for v in pearl)
    assert pearl[0] == pytest.approx(np.random.RandomState(1337).uniform(0.0, 3.0))
    assert HalfCheetahVelEnv(task=0, convention="pearl").target == pearl[0]
    hopper = HopperVelEnv(convention="pearl")
    hopper.reset(seed=0)
    assert hopper.step(np.ones(3, dtype=np.float32))[4]["reward_ctrl"] == pytest.approx(-0.05 * 3)
