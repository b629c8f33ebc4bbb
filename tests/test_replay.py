"""The replay buffer: n-step windows stay inside episodes, returns and discounts are exact."""

from __future__ import annotations

import pytest
import torch

from palm_lightning.datamodules.replay import ReplayBuffer


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
                torch.full((1, 1), index, dtype=torch.uint8), torch.full((1, 2), float(index)),
                torch.tensor([float(index)]), done, env_ids=ids,
            )
            index += 1


def test_nstep_windows_never_cross_episodes_and_sum_rewards():
    buffer = ReplayBuffer(capacity=200, num_envs=1, obs_shape=(1,), action_dim=2)
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
    buffer = ReplayBuffer(capacity=100, num_envs=1, obs_shape=(1,), action_dim=2)
    fill(buffer, [3, 3], terminal_last=True)
    batch = buffer.sample(200, nstep=1, gamma=0.9)
    last = batch["next_obs"][:, 0].long() % 4 == 3
    assert last.any() and (~last).any()
    assert (batch["discount"][last] == 0).all() and (batch["discount"][~last] == 0.9).all()


def test_fifo_capacity_and_per_env_writes():
    buffer = ReplayBuffer(capacity=20, num_envs=2, obs_shape=(1,), action_dim=2)
    assert buffer.size == 10
    fill(buffer, [30], env=0)
    assert buffer.count.tolist() == [10, 0] and len(buffer) == 10
    batch = buffer.sample(100, nstep=1)
    assert batch["obs"].long().min() >= 21, "only the newest 10 rows are kept"
    with pytest.raises(ValueError, match="too small"):
        ReplayBuffer(capacity=3, num_envs=2, obs_shape=(1,), action_dim=1)


def test_sampling_before_a_window_exists_is_a_clear_error():
    buffer = ReplayBuffer(capacity=20, num_envs=1, obs_shape=(1,), action_dim=2)
    fill(buffer, [1])
    with pytest.raises(RuntimeError, match="no 3-step window"):
        buffer.sample(4, nstep=3)


def test_state_dict_round_trip_and_shape_check():
    buffer = ReplayBuffer(capacity=40, num_envs=1, obs_shape=(1,), action_dim=2)
    fill(buffer, [4, 4])
    other = ReplayBuffer(capacity=40, num_envs=1, obs_shape=(1,), action_dim=2)
    other.load_state_dict(buffer.state_dict())
    g1, g2 = torch.Generator().manual_seed(0), torch.Generator().manual_seed(0)
    a, b = buffer.sample(8, nstep=2, generator=g1), other.sample(8, nstep=2, generator=g2)
    assert all(torch.equal(a[k], b[k]) for k in a)
    small = ReplayBuffer(capacity=20, num_envs=1, obs_shape=(1,), action_dim=2)
    with pytest.raises(ValueError, match="capacity, num_envs or the observation shape changed"):
        small.load_state_dict(buffer.state_dict())
