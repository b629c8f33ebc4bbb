"""Objectives as plain functions: SimSiam, APT's particle reward, DDPG pieces, schedules."""

from __future__ import annotations

import inspect
import math

import pytest
import torch

from palm_lightning.agents.ddpg import DDPGAgent, DDPGConfig
from palm_lightning.losses import (
    RunningMean,
    actor_loss,
    critic_loss,
    negative_cosine,
    particle_reward,
    simsiam_loss,
    td_target,
)
from palm_lightning.losses.apt import knn_distances
from palm_lightning.nn.actor_critic import Critic, truncated_normal_sample
from palm_lightning.nn.blocks import polyak_update
from palm_lightning.nn.sac import TwinQ
from palm_lightning.rewards import APT
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
    # Particles on a line at 0, 2, 6, then at 0, 1, 3; k = 2 (the particle itself and its nearest).
    # kNN distances, by hand: first batch {0, 2}, {0, 2}, {0, 4} (mean 4/3 over 6 values),
    # second batch {0, 1}, {0, 1}, {0, 2} (mean 2/3). Running mean after both: (6·4/3 + 6·2/3)/12 = 1.
    normalizer = RunningMean()
    first, _ = particle_reward(torch.tensor([[0.0], [2.0], [6.0]]), k=2, normalizer=normalizer, knn_clip=0.0)
    # after the first batch the running mean is that batch's 4/3: r = log(1 + mean(D)/(4/3))
    expected_first = [math.log(1 + 0.75), math.log(1 + 0.75), math.log(1 + 1.5)]
    assert first.tolist() == pytest.approx(expected_first, rel=1e-6)
    second, _ = particle_reward(torch.tensor([[0.0], [1.0], [3.0]]), k=2, normalizer=normalizer, knn_clip=0.0)
    assert normalizer.mean.item() == pytest.approx(1.0, rel=1e-6)
    # divided by the running mean 1 (not by the batch's own 2/3, which would give log 1.75, log 2.5)
    assert second.tolist() == pytest.approx([math.log(1.5), math.log(1.5), math.log(2.0)], rel=1e-6)


def test_normalised_particle_reward_is_invariant_to_the_scale_of_the_representation():
    torch.manual_seed(0)
    batches = [torch.randn(32, 4) for _ in range(3)]
    plain, scaled = RunningMean(), RunningMean()
    for h in batches:
        reward, _ = particle_reward(h, k=3, normalizer=plain, knn_clip=0.0)
        reward_scaled, _ = particle_reward(h * 25.0, k=3, normalizer=scaled, knn_clip=0.0)
        # the running mean has absorbed the factor 25, so the normalised reward is unchanged
        torch.testing.assert_close(reward_scaled, reward, rtol=1e-3, atol=1e-3)  # cdist round-off
    # without the normaliser the same scaling changes the reward (the check above is not vacuous)
    raw, _ = particle_reward(batches[-1], k=3, normalizer=None, knn_clip=0.0)
    raw_scaled, _ = particle_reward(batches[-1] * 25.0, k=3, normalizer=None, knn_clip=0.0)
    assert (raw_scaled - raw).min() > 1.0


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
    actor_loss(critic(features, action, detached=True)).backward()
    assert action.grad is not None and action.grad.abs().sum() > 0
    assert all(p.grad is None for p in critic.parameters())


def test_td_target_and_critic_loss():
    r, d = torch.tensor([1.0, 2.0]), torch.tensor([0.9, 0.0])
    target = td_target(r, d, torch.tensor([[3.0, 5.0], [4.0, 1.0]]))  # (critics, batch): min over critics
    torch.testing.assert_close(target, torch.tensor([1.0 + 0.9 * 3.0, 2.0]))
    assert critic_loss(torch.stack([target, target]), target).item() == 0.0
    assert critic_loss(torch.stack([target + 1, target - 2]), target).item() == pytest.approx(1.0 + 4.0)


def test_polyak_update_moves_towards_the_online_weights():
    online, target = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    before = target.weight.detach().clone()
    polyak_update(target, online, 0.25)
    torch.testing.assert_close(target.weight, 0.75 * before + 0.25 * online.weight.detach())
    with pytest.raises(ValueError, match="not the same network"):
        polyak_update(target, torch.nn.Linear(2, 3, bias=False), 0.1)


def test_truncated_normal_clips_noise_clamps_actions_and_passes_gradients_straight_through():
    torch.manual_seed(0)
    mean = torch.full((2000, 3), 0.9, requires_grad=True)
    action = truncated_normal_sample(mean, std=1.0, clip=0.3)
    assert action.max() <= 1.0 and action.min() >= 0.6 - 1e-6  # noise within ±0.3, then clamped to 1
    assert (action == 1.0).float().mean() > 0.3  # a good share hits the bound...
    action.sum().backward()
    torch.testing.assert_close(mean.grad, torch.ones_like(mean))  # ... and still passes its gradient
    mean.grad = None
    plain = truncated_normal_sample(mean, std=1.0, clip=0.3, straight_through=False)
    plain.sum().backward()
    clipped = plain == 1.0
    assert (mean.grad[clipped] == 0).all() and (mean.grad[~clipped] == 1).all()  # the old, gradient-blocking clamp
    spread = truncated_normal_sample(torch.zeros(20000, 1), std=0.2, clip=None)
    assert spread.std().item() == pytest.approx(0.2, rel=0.05)  # exploration std as scheduled


def test_schedules():
    assert schedule("0.2", 10) == 0.2
    assert schedule("linear(1.0,0.1,100)", 50) == pytest.approx(0.55)
    assert schedule("linear(1.0,0.1,100)", 1000) == pytest.approx(0.1)
    assert schedule("step_linear(1.0,0.5,10,0.0,10)", 15) == pytest.approx(0.25)
    with pytest.raises(ValueError, match="unknown schedule"):
        parse_schedule("cosine(1,0)")


def _singular_values_of_each_q_head(agent: DDPGAgent) -> list[torch.Tensor]:
    first = agent.critic.q.first
    return [torch.linalg.svdvals(block.detach().double()) for block in first.weight.chunk(agent.critic.q.members)]


@pytest.mark.parametrize("hidden_dim", [1024, 16], ids=["tall (DrQ-v2 sizes)", "wide"])
def test_orthogonal_init_makes_each_q_heads_first_layer_orthogonal(hidden_dim: int) -> None:
    """DrQ-v2 initialises Q1 and Q2 as separate networks; the twin heads' fused first layer must
    not be one orthogonal matrix split in two (each half then has singular values 0.58–0.81)."""
    torch.manual_seed(0)
    agent = DDPGAgent(50, 6, DDPGConfig(hidden_dim=hidden_dim), weight_init="orthogonal", grad_clip=None)
    values = _singular_values_of_each_q_head(agent)
    assert len(values) == 2 and all(v.numel() == min(hidden_dim, 50 + 6) for v in values)
    for v in values:  # W·Wᵀ = I (wide) or Wᵀ·W = I (tall): every singular value is 1
        torch.testing.assert_close(v, torch.ones_like(v), atol=1e-5, rtol=0)
    assert (agent.critic.q.first.bias == 0).all()
    target = agent.critic_target.q.first.weight
    torch.testing.assert_close(target, agent.critic.q.first.weight)  # the target starts as a copy


def test_default_init_of_the_fused_first_layer_is_that_of_separate_layers() -> None:
    """PyTorch's default init depends on the fan-in alone, so the fused layer (SAC and EAR keep
    it) draws each head's weights from the same range separate ``Linear`` layers would."""
    torch.manual_seed(0)
    first = TwinQ(10, 2, hidden_dim=64).first
    bound = 1 / math.sqrt(12)  # kaiming_uniform(a=√5) on fan-in 12
    for block in first.weight.detach().chunk(2):
        assert block.abs().max() <= bound and block.abs().max() > 0.9 * bound


def _urlb_pbe_reward(rep: torch.Tensor, knn_k: int, knn_avg: bool, knn_clip: float) -> torch.Tensor:
    """URLB's ``utils.PBE.__call__`` with ``knn_rms`` off (its pixel APT), in float64."""
    source = target = rep.double()
    b1, b2 = source.size(0), target.size(0)
    sim_matrix = torch.norm(source[:, None, :].view(b1, 1, -1) - target[None, :, :].view(1, b2, -1), dim=-1, p=2)
    reward, _ = sim_matrix.topk(knn_k, dim=1, largest=False, sorted=True)
    if not knn_avg:
        reward = reward[:, -1].reshape(-1, 1)
        reward = torch.maximum(reward - knn_clip, torch.zeros_like(reward)) if knn_clip >= 0.0 else reward
    else:
        reward = reward.reshape(-1, 1)
        reward = torch.maximum(reward - knn_clip, torch.zeros_like(reward)) if knn_clip >= 0.0 else reward
        reward = reward.reshape((b1, knn_k)).mean(dim=1, keepdim=True)
    return torch.log(reward + 1.0).squeeze(1)


@pytest.mark.parametrize("offset", [0.0, 5.0], ids=["centred", "offset"])
def test_knn_distances_are_exact_where_cdist_cancels(offset: float) -> None:
    """``torch.cdist``'s matrix-multiply path (used above 25 rows) puts a particle 0.01–0.09 from
    itself at dimension 256; APT's distances must be URLB's ``‖h_i − h_j‖``, self-distance 0."""
    torch.manual_seed(0)
    h = torch.randn(512, 256) + offset
    assert torch.cdist(h, h).diagonal().max() > 1e-3  # the cancellation this guards against
    distances = knn_distances(h, h, 12)
    assert (distances[:, 0] == 0).all()
    reference = torch.norm(h.double()[:, None] - h.double()[None], dim=-1).topk(12, dim=1, largest=False).values
    torch.testing.assert_close(distances.double(), reference, atol=1e-5, rtol=1e-6)


@pytest.mark.parametrize("knn_avg", [True, False])
@pytest.mark.parametrize("knn_clip", [0.0, 1e-4, 0.5])
def test_particle_reward_matches_urlb(knn_avg: bool, knn_clip: float) -> None:
    """The reward is URLB's particle-based entropy to float error, on a batch large enough for
    cdist's fast path, with near-duplicate particles (where that path is least accurate)."""
    torch.manual_seed(1)
    h = torch.randn(300, 256)
    h[150:] = h[:150] + 1e-3 * torch.randn(150, 256)  # every particle has a near twin
    reward, _ = particle_reward(h, k=12, knn_avg=knn_avg, normalizer=None, knn_clip=knn_clip)
    expected = _urlb_pbe_reward(h, 12, knn_avg, knn_clip)
    torch.testing.assert_close(reward.double(), expected, atol=1e-6, rtol=1e-6)


def test_particle_reward_defaults_to_apts_clip() -> None:
    """The function and the reward module had different ``knn_clip`` defaults (1e-4 vs 0.0):
    a caller relying on the function's default silently got URLB's state-based clip."""
    default = inspect.signature(particle_reward).parameters["knn_clip"].default
    assert default == inspect.signature(APT).parameters["knn_clip"].default == 0.0
