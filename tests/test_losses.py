"""Objectives as plain functions: SimSiam, APT's particle reward, DDPG pieces, schedules."""

from __future__ import annotations

import math

import pytest
import torch

from palm_lightning.losses import RunningMean, actor_loss, negative_cosine, particle_reward, simsiam_loss, soft_update
from palm_lightning.losses.ddpg import critic_loss, td_target
from palm_lightning.nn.actor_critic import Critic
from palm_lightning.schedules import parse_schedule, schedule


def test_simsiam_bounds_and_stop_gradient():
    x = torch.randn(16, 8)
    assert simsiam_loss(x, x, x, x).item() == pytest.approx(-1.0, abs=1e-6)
    assert simsiam_loss(x, x, -x, -x).item() == pytest.approx(1.0, abs=1e-6)
    p, z = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    negative_cosine(p, z).backward()
    assert p.grad is not None and z.grad is None


def test_simsiam_loss_decreases_under_sgd():
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 8)
    a, b = torch.randn(64, 8), torch.randn(64, 8)
    opt = torch.optim.SGD(net.parameters(), lr=0.5)
    first = None
    for _ in range(50):
        loss = simsiam_loss(net(a), net(b), a @ torch.eye(8), b @ torch.eye(8))
        first = loss.item() if first is None else first
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < first - 0.2


def test_particle_reward_matches_brute_force():
    torch.manual_seed(0)
    h = torch.randn(20, 5)
    k, clip = 4, 0.01
    reward, distances = particle_reward(h, k=k, knn_avg=True, normalizer=None, knn_clip=clip)
    for i in range(20):
        d = sorted(float((h[i] - h[j]).norm()) for j in range(20))[:k]
        assert d[0] == pytest.approx(0.0, abs=1e-5), "the particle itself is among its k neighbours"
        assert reward[i].item() == pytest.approx(math.log(1 + sum(max(x - clip, 0) for x in d) / k), rel=1e-4)
    kth, _ = particle_reward(h, k=k, knn_avg=False, normalizer=None, knn_clip=0.0)
    torch.testing.assert_close(kth, torch.log1p(distances[:, -1]))


def test_particle_reward_normalises_by_the_running_mean():
    h = torch.randn(32, 4)
    normalizer = RunningMean()
    reward, distances = particle_reward(h * 10, k=3, normalizer=normalizer, knn_clip=0.0)
    reference, _ = particle_reward(h, k=3, normalizer=None, knn_clip=0.0)
    assert normalizer.mean.item() == pytest.approx(distances.mean().item(), rel=1e-5)
    scale = distances.mean() / 10
    torch.testing.assert_close(reward, torch.log1p((distances / 10 / scale).mean(1)))
    assert reference.shape == reward.shape


def test_running_mean_is_the_mean_of_everything_seen():
    rm = RunningMean()
    values = torch.rand(100)
    for chunk in values.split(7):
        rm.update(chunk)
    assert rm.mean.item() == pytest.approx(values.mean().item(), rel=1e-5)


def test_actor_loss_sends_no_gradient_into_the_critic():
    critic = Critic(6, 2, feature_dim=4, hidden_dim=8)
    features = torch.randn(5, 6)
    action = torch.randn(5, 2, requires_grad=True)
    actor_loss(critic, features, action).backward()
    assert action.grad is not None and action.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())


def test_td_target_and_critic_loss():
    r, d = torch.tensor([1.0, 2.0]), torch.tensor([0.9, 0.0])
    target = td_target(r, d, torch.tensor([3.0, 5.0]), torch.tensor([4.0, 1.0]))
    torch.testing.assert_close(target, torch.tensor([1.0 + 0.9 * 3.0, 2.0]))
    assert critic_loss(target, target, target).item() == 0.0


def test_soft_update_moves_towards_the_online_weights():
    online, target = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = target.weight.detach().clone()
    soft_update(target, online, 0.25)
    torch.testing.assert_close(target.weight, 0.75 * before + 0.25 * online.weight.detach())


def test_schedules():
    assert schedule("0.2", 10) == 0.2
    assert schedule("linear(1.0,0.1,100)", 50) == pytest.approx(0.55)
    assert schedule("linear(1.0,0.1,100)", 1000) == pytest.approx(0.1)
    assert schedule("step_linear(1.0,0.5,10,0.0,10)", 15) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown schedule"):
        parse_schedule("cosine(1,0)")
