"""The replay buffer: n-step windows stay inside episodes, returns and discounts are exact."""

from __future__ import annotations

import math

import pytest
import torch

from palm_lightning.datamodules.streams.replay import ReplayBuffer


def fill(buffer: ReplayBuffer, episodes: list[int], env: int = 0, terminal_last: bool = False) -> None:
    """Write episodes of the given lengths into one environment; observation = running index,
    reward = index of the step (so sums are checkable)."""
    index = 0
    ids = torch.tensor([env])
    for length in episodes:
        buffer.add(torch.full((1, 1), index, dtype=torch.uint8), first=True, env_ids=ids)
        index += 1
        for t in range(length):
            done = torch.tensor([terminal_last and t == length - 1])
            buffer.add(
                torch.full((1, 1), index, dtype=torch.uint8),
                torch.full((1, 2), float(index)),
                torch.tensor([float(index)]),
                done,
                env_ids=ids,
            )
            index += 1


def test_nstep_windows_never_cross_episodes_and_sum_rewards():
    buffer = ReplayBuffer(capacity=200, num_envs=1, obs_shape=(1,), action_shape=2)
    fill(buffer, [5, 5, 5])
    gamma = 0.5
    batch = buffer.sample(500, nstep=3, gamma=gamma, frames=True)
    obs = batch["obs"][:, 0].long()
    frames = batch["frames"][:, :, 0].long()
    # Observations are consecutive indices inside one episode (episodes start at 0, 6, 12).
    assert torch.equal(frames, obs[:, None] + torch.arange(4)[None])
    assert ((obs // 6) == (frames[:, -1] // 6)).all(), "a window crossed an episode boundary"
    expected = (obs + 1) + gamma * (obs + 2) + gamma**2 * (obs + 3)
    torch.testing.assert_close(batch["reward"], expected.float())
    torch.testing.assert_close(batch["discount"], torch.full((500,), gamma**3))
    torch.testing.assert_close(batch["action"][:, 0], (obs + 1).float())
    torch.testing.assert_close(batch["step_discounts"][0], torch.tensor([1.0, gamma, gamma**2]))
    assert set(obs.tolist()) == {0, 1, 2, 6, 7, 8, 12, 13, 14}, "every valid start is sampled"


def test_termination_zeroes_the_bootstrap():
    buffer = ReplayBuffer(capacity=100, num_envs=1, obs_shape=(1,), action_shape=2)
    fill(buffer, [3, 3], terminal_last=True)
    batch = buffer.sample(200, nstep=1, gamma=0.9)
    last = batch["next_obs"][:, 0].long() % 4 == 3
    assert last.any() and (~last).any()
    assert (batch["discount"][last] == 0).all() and (batch["discount"][~last] == 0.9).all()


def test_fifo_capacity_and_per_env_writes():
    buffer = ReplayBuffer(capacity=20, num_envs=2, obs_shape=(1,), action_shape=2)
    assert buffer.size == 10
    fill(buffer, [30], env=0)
    assert buffer.count.tolist() == [10, 0] and len(buffer) == 10
    batch = buffer.sample(100, nstep=1)
    assert batch["obs"].long().min() >= 21, "only the newest 10 rows are kept"
    with pytest.raises(ValueError, match="too small"):
        ReplayBuffer(capacity=3, num_envs=2, obs_shape=(1,), action_shape=1)


def test_sampling_before_a_window_exists_is_a_clear_error():
    buffer = ReplayBuffer(capacity=20, num_envs=1, obs_shape=(1,), action_shape=2)
    fill(buffer, [1])
    with pytest.raises(RuntimeError, match="no 3-step window"):
        buffer.sample(4, nstep=3)


def test_state_dict_round_trip_and_shape_check():
    buffer = ReplayBuffer(capacity=40, num_envs=1, obs_shape=(1,), action_shape=2)
    fill(buffer, [4, 4])
    other = ReplayBuffer(capacity=40, num_envs=1, obs_shape=(1,), action_shape=2)
    other.load_state_dict(buffer.state_dict())
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = buffer.sample(8, nstep=2, generator=g1), other.sample(8, nstep=2, generator=g2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    small = ReplayBuffer(capacity=20, num_envs=1, obs_shape=(1,), action_shape=2)
    with pytest.raises(ValueError, match="capacity, num_envs or the observation shape changed"):
        small.load_state_dict(buffer.state_dict())


# --- wrap-around and n-step returns, with rewards that encode the time step ----------------------


def write_timeline(
    buffer: ReplayBuffer,
    env: int,
    episodes: list[int],
    offset: float = 0.0,
    terminal: set[int] | None = None,
    resets: bool = True,
) -> int:
    """Write episodes into one environment, one row per time step t = 0, 1, 2, …: a reset row
    (``first``) opens each episode, then one row per step. Row t has observation ``offset + t``
    and reward ``t``; rows whose t is in ``terminal`` are written as terminated. Returns the
    number of rows written."""
    ids = torch.tensor([env])
    t = 0
    for length in episodes:
        if resets or t == 0:
            buffer.add(torch.tensor([[offset + t]]), first=True, env_ids=ids)
            t += 1
        for _ in range(length):
            done = torch.tensor([t in (terminal or set())])
            buffer.add(
                torch.tensor([[offset + t]]), torch.tensor([[float(t)]]), torch.tensor([float(t)]), done, env_ids=ids
            )
            t += 1
    return t


def starts_by_env(batch: dict, offsets: dict[int, float]) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {e: set() for e in offsets}
    for e, o in zip(batch["env"].tolist(), batch["obs"][:, 0].tolist(), strict=True):
        out[e].add(round(o - offsets[e]))
    return out


def test_wrapped_ring_gives_contiguous_windows_inside_episodes_with_exact_returns():
    # 10 rows per environment; both rings are written past their capacity, so they have wrapped.
    buffer = ReplayBuffer(20, 2, (1,), 1, obs_dtype=torch.float32)  # capacity, envs, obs shape, action size
    assert buffer.size == 10
    # env 0: resets at t = 0, 6, 16, 21; 27 rows written, so t = 17 … 26 remain (one reset, t = 21).
    assert write_timeline(buffer, 0, [5, 9, 4, 5], offset=0.0) == 27
    # env 1: resets at t = 0, 4, 17; 24 rows written, so t = 14 … 23 remain (one reset, t = 17).
    assert write_timeline(buffer, 1, [3, 12, 6], offset=1000.0) == 24
    assert len(buffer) == 20
    offsets = {0: 0.0, 1: 1000.0}
    gamma, n = 0.5, 3
    batch = buffer.sample(600, nstep=n, gamma=gamma, frames=True, generator=torch.Generator().manual_seed(0))
    # Valid starts, worked out by hand: the start and its 3 successors are still held, and none of
    # the 3 successors is a reset. env 0: 17 (…18, 19, 20), 21, 22, 23; 18–20 would reach the reset
    # at 21. env 1: 17 (the reset row itself may start a window), 18, 19, 20; 14–16 reach it.
    # The windows from t = 17 cross the end of the ring (t = 19 sits in the last row, t = 20 in the first).
    assert starts_by_env(batch, offsets) == {0: {17, 21, 22, 23}, 1: {17, 18, 19, 20}}
    # frames are consecutive time steps of one environment, even across the ring's end
    for e, frames in zip(batch["env"].tolist(), batch["frames"][:, :, 0], strict=True):
        t = (frames - offsets[e]).round().long()
        assert torch.equal(t, t[0] + torch.arange(n + 1)), f"non-contiguous window {t.tolist()} in env {e}"
    # reward = r(t0+1) + γ r(t0+2) + γ² r(t0+3) with r(t) = t and γ = 1/2, by hand:
    expected = {
        (0, 17): 18 + 9.5 + 5.0,
        (0, 21): 22 + 11.5 + 6.0,
        (0, 22): 23 + 12.0 + 6.25,
        (0, 23): 24 + 12.5 + 6.5,
        (1, 17): 18 + 9.5 + 5.0,
        (1, 18): 19 + 10.0 + 5.25,
        (1, 19): 20 + 10.5 + 5.5,
        (1, 20): 21 + 11.0 + 5.75,
    }
    for e, obs, reward, discount, action, next_obs in zip(
        batch["env"].tolist(),
        batch["obs"][:, 0].tolist(),
        batch["reward"].tolist(),
        batch["discount"].tolist(),
        batch["action"][:, 0].tolist(),
        batch["next_obs"][:, 0].tolist(),
        strict=True,
    ):
        t0 = round(obs - offsets[e])
        assert reward == pytest.approx(expected[(e, t0)]), (e, t0)
        assert discount == pytest.approx(0.125)  # γ³, nothing terminated
        assert action == t0 + 1  # the action written with the step after the start
        assert next_obs - offsets[e] == t0 + 3


def test_nstep_return_bootstraps_truncation_and_cuts_at_termination():
    buffer = ReplayBuffer(40, 1, (1,), 1, obs_dtype=torch.float32)
    # resets at t = 0, 5, 9; the episode [0, 4] ends by truncation (row 4 not terminated),
    # [5, 8] by termination at t = 8; [9, 13] is still running.
    write_timeline(buffer, 0, [4, 3, 4], terminal={8})
    gamma = 0.9
    batch = buffer.sample(500, nstep=2, gamma=gamma, generator=torch.Generator().manual_seed(1))
    by_start = {}
    for obs, reward, discount, steps in zip(
        batch["obs"][:, 0].tolist(),
        batch["reward"].tolist(),
        batch["discount"].tolist(),
        batch["step_discounts"].tolist(),
        strict=True,
    ):
        by_start[int(obs)] = (reward, discount, steps)
    assert set(by_start) == {0, 1, 2, 5, 6, 9, 10, 11}
    # (t0 → r(t0+1) + 0.9·r(t0+2), discount) by hand
    expected = {
        0: (1 + 1.8, 0.81),
        1: (2 + 2.7, 0.81),
        2: (3 + 3.6, 0.81),  # ends on the truncated step: still bootstraps with γ²
        5: (6 + 6.3, 0.81),
        6: (7 + 7.2, 0.0),  # ends on the terminal step: no bootstrap
        9: (10 + 9.9, 0.81),
        10: (11 + 10.8, 0.81),
        11: (12 + 11.7, 0.81),
    }
    for t0, (reward, discount, steps) in by_start.items():
        assert reward == pytest.approx(expected[t0][0]), t0
        assert discount == pytest.approx(expected[t0][1]), t0
        assert steps == pytest.approx([1.0, 0.9]), t0


def test_rewards_after_a_terminal_step_inside_a_window_are_cut():
    # A terminal step followed by more steps of the same episode (no reset row in between):
    # the documented return Σ_k γ^k Π_{m<k} d[j+1+m] r[j+1+k] drops everything after it.
    buffer = ReplayBuffer(40, 1, (1,), 1, obs_dtype=torch.float32)
    write_timeline(buffer, 0, [6], terminal={2})
    batch = buffer.sample(300, nstep=3, gamma=0.9, generator=torch.Generator().manual_seed(2))
    rows = {
        int(o): (r, d, s)
        for o, r, d, s in zip(
            batch["obs"][:, 0].tolist(),
            batch["reward"].tolist(),
            batch["discount"].tolist(),
            batch["step_discounts"].tolist(),
            strict=True,
        )
    }
    assert set(rows) == {0, 1, 2, 3}
    # t0 = 0: r1 + 0.9 r2, then the terminal at t = 2 stops the sum: 1 + 1.8
    assert rows[0][0] == pytest.approx(2.8) and rows[0][1] == 0.0 and rows[0][2] == pytest.approx([1.0, 0.9, 0.0])
    # t0 = 1: the terminal is the first step: only r2 = 2 counts
    assert rows[1][0] == pytest.approx(2.0) and rows[1][1] == 0.0 and rows[1][2] == pytest.approx([1.0, 0.0, 0.0])
    # t0 = 2 and 3: windows after the terminal step are ordinary: 3 + 3.6 + 4.05 and 4 + 4.5 + 4.86
    assert rows[2][0] == pytest.approx(10.65) and rows[2][1] == pytest.approx(0.729)
    assert rows[3][0] == pytest.approx(13.36) and rows[3][2] == pytest.approx([1.0, 0.9, 0.81])


@pytest.mark.parametrize(
    "obs_shape, dtype, word",
    [
        ((4, 6, 6), torch.uint8, torch.int64),  # an image stack: rows move as 8-byte words
        ((1, 3, 6), torch.uint8, torch.int16),
        ((3, 5, 5), torch.uint8, None),  # 75 bytes: plain elements
        ((6,), torch.float32, torch.int64),
    ],
)
def test_image_rows_written_and_read_as_words_are_the_observations(obs_shape, dtype, word):
    torch.manual_seed(0)
    buffer = ReplayBuffer(24, 3, obs_shape, (), obs_dtype=dtype, action_dtype=torch.long)
    assert buffer._word == word

    def draw(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, *obs_shape)).to(dtype)

    written: dict[tuple[int, int], torch.Tensor] = {}  # (row, env) -> observation
    for step in range(20):  # wraps around the 8 rows of every environment
        obs = draw(3)
        rows = buffer.ptr.clone()
        if step % 5 == 4:  # a reset of environment 1 only, from a view starting inside a bigger tensor
            big = draw(3).flatten()
            obs = big[1 : 1 + math.prod(obs_shape)].view(1, *obs_shape)  # not on a word boundary
            buffer.add(obs, first=True, env_ids=torch.tensor([1]))
            written[(int(rows[1]), 1)] = obs[0].clone()
            continue
        buffer.add(obs, torch.zeros(3, dtype=torch.long), torch.zeros(3), torch.zeros(3, dtype=torch.bool))
        for e in range(3):
            written[(int(rows[e]), e)] = obs[e]
    for (row, env), obs in written.items():
        assert torch.equal(buffer.obs[row, env], obs)
    rows, envs = torch.tensor([[0, 1], [5, 7]]), torch.tensor([[0, 2], [1, 1]])
    assert torch.equal(buffer.obs_at(rows, envs), buffer.obs[rows, envs])
    batch = buffer.sample(16, nstep=2, frames=True)
    assert batch["frames"].shape == (16, 3, *obs_shape) and batch["frames"].dtype == dtype
    assert torch.equal(batch["frames"][:, 0], batch["obs"]) and torch.equal(batch["frames"][:, -1], batch["next_obs"])
