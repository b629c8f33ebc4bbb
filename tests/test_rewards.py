"""Exploration rewards (APT, ICM, RND, a user's own) alone and inside PALM, chosen by class_path."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch

from palm_lightning.datamodules import LatentManifoldDataModule
from palm_lightning.losses.apt import particle_reward
from palm_lightning.models import PALM
from palm_lightning.rewards import APT, ICM, RND, ExplorationReward, RewardStep
from palm_lightning.rewards.rnd import RunningMoments
from tests.cli_runner import run_cli
from tests.palm_fixtures import tiny_data_kwargs, tiny_generator_file, tiny_palm_kwargs, trainer

REPO = Path(__file__).resolve().parents[1]


def toy_step(n: int = 64, dim: int = 6, actions: int = 2, seed: int = 0) -> RewardStep:
    g = torch.Generator().manual_seed(seed)
    obs, action = torch.randn(n, dim, generator=g), torch.rand(n, actions, generator=g) * 2 - 1
    next_obs = obs + torch.cat([action, torch.zeros(n, dim - actions)], 1)  # the action moves the first coordinates
    return RewardStep(obs, action, next_obs)


def test_apt_rewards_the_chosen_particles():
    step = toy_step()
    expected_obs, _ = particle_reward(step.obs, k=4, normalizer=None, knn_clip=0.0)
    expected_next, _ = particle_reward(step.next_obs, k=4, normalizer=None, knn_clip=0.0)
    torch.testing.assert_close(APT(k=4)(step), expected_obs)
    torch.testing.assert_close(APT(k=4, source="next_obs")(step), expected_next)
    isolated = RewardStep(
        torch.cat([torch.zeros(20, 2), torch.full((1, 2), 50.0)]), torch.zeros(21, 1), torch.zeros(21, 2)
    )
    reward = APT(k=3)(isolated)
    assert reward[-1] > 10 * reward[:-1].max()  # the lone particle is the novel one
    assert APT().loss(step) is None  # nothing to train


def test_icm_learns_the_dynamics_and_rewards_what_it_cannot_predict():
    torch.manual_seed(0)
    icm = ICM(feature_dim=16, hidden_dim=64)
    icm.build(6, 2)
    optimizer = torch.optim.Adam(icm.parameters(), lr=3e-3)
    seen = toy_step()
    before = icm(seen).mean()
    first = None
    for _ in range(300):
        loss, logs = icm.loss(seen)
        first = float(loss) if first is None else first
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert float(loss) < 0.5 * first and set(logs) == {"train/icm_forward_error", "train/icm_inverse_error"}
    novel = RewardStep(seen.obs, seen.action, seen.obs - 3.0)  # a transition the dynamics never make
    assert icm(novel).mean() > 2 * icm(seen).mean() and icm(seen).mean() < before


def test_icm_features_are_shaped_by_the_inverse_model_only():
    icm = ICM(feature_dim=8, hidden_dim=16, beta=1.0)  # forward loss only
    icm.build(6, 2)
    loss, _ = icm.loss(toy_step())
    loss.backward()
    assert all(p.grad is None or p.grad.abs().sum() == 0 for p in icm.trunk.parameters())
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in icm.forward_model.parameters())


def test_rnd_predictor_learns_the_seen_features_and_target_stays_fixed():
    torch.manual_seed(0)
    rnd = RND(rep_dim=16, hidden_dim=32)
    rnd.build(6, 2)
    target_before = [p.clone() for p in rnd.target.parameters()]
    optimizer = torch.optim.Adam([p for p in rnd.parameters() if p.requires_grad], lr=3e-3)
    seen = toy_step()
    for _ in range(300):
        loss, _ = rnd.loss(seen)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    rnd.eval()  # fixed input normalisation for the comparison
    novel = RewardStep(seen.obs * 3 + 2, seen.action, seen.next_obs)
    assert rnd.prediction_error(novel.obs).mean() > 3 * rnd.prediction_error(seen.obs).mean()
    assert all(torch.equal(a, b) for a, b in zip(target_before, rnd.target.parameters(), strict=True))
    assert rnd(seen).shape == (64,)


def test_rnd_error_moments_merge_unbiased_batch_variances_as_urlb() -> None:
    """URLB's ``utils.RMS`` (which RND's reward divides by) uses ``torch.var``'s unbiased default;
    the biased variance shrank the running std by √((n−1)/n) and changed the reward's scale."""
    moments = RunningMoments()
    moments.update(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    # by hand, from URLB's start (mean 0, variance 1, count 1e-4): batch mean 2.5, unbiased
    # variance ((1.5² + 0.5²)·2)/3 = 5/3, then the parallel merge of the two
    n, count = 4, 1e-4
    total = count + n
    expected_mean = 2.5 * n / total
    expected_var = (1.0 * count + (5 / 3) * n + 2.5**2 * count * n / total) / total
    assert moments.mean.item() == pytest.approx(expected_mean, rel=1e-12)
    assert moments.var.item() == pytest.approx(expected_var, rel=1e-12)
    assert moments.count.item() == pytest.approx(total, rel=1e-12)
    moments.update(torch.tensor([7.0]))  # one value has no unbiased variance: no NaN
    assert torch.isfinite(moments.var) and moments.count.item() == pytest.approx(total + 1)


@pytest.mark.parametrize(
    "reward", [ICM(feature_dim=8, hidden_dim=16), RND(rep_dim=8, hidden_dim=16)], ids=["icm", "rnd"]
)
def test_palm_trains_a_reward_with_its_own_parameters(tmp_path, reward):
    model = PALM(**tiny_palm_kwargs(reward=reward))
    names = [g["name"] for g in model.configure_optimizers()[0].param_groups]
    assert names == ["representation", "reward"]
    trained = [p for p in model.reward.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in trained]
    trainer(tmp_path, 3).fit(model, LatentManifoldDataModule(**tiny_data_kwargs(tiny_generator_file(tmp_path))))
    assert int(model.updates) == 3
    assert all(not torch.equal(a, b) for a, b in zip(before, trained, strict=True))


def test_reward_window_first_and_sum(tmp_path):
    class One(ExplorationReward):
        def forward(self, step: RewardStep) -> torch.Tensor:
            return torch.ones(step.obs.shape[0])

    particles, actions = torch.zeros(5, 3, 4), torch.zeros(5, 2, 8)
    discounts = torch.tensor([1.0, 0.9]).expand(5, 2)
    first = PALM(**tiny_palm_kwargs(reward=One(), reward_window="first"))
    steps = first.reward_steps(particles, actions)
    assert len(steps) == 1 and first.window_reward(steps, discounts).tolist() == [1.0] * 5
    summed = PALM(**tiny_palm_kwargs(reward=One(), reward_window="sum"))
    steps = summed.reward_steps(particles, actions)
    assert len(steps) == 2
    torch.testing.assert_close(summed.window_reward(steps, discounts), torch.full((5,), 1.9))


def test_a_reward_of_the_wrong_shape_names_the_hook(tmp_path):
    class Column(ExplorationReward):
        def forward(self, step: RewardStep) -> torch.Tensor:
            return torch.ones(step.obs.shape[0], 1)

    model = PALM(**tiny_palm_kwargs(reward=Column()))
    data = LatentManifoldDataModule(**tiny_data_kwargs(tiny_generator_file(tmp_path)))
    with pytest.raises(ValueError, match=r"PALM.intrinsic_reward must return a Tensor of shape \(16,\), got \(16, 1\)"):
        trainer(tmp_path, 1).fit(model, data)
    with pytest.raises(TypeError, match=re.escape("reward must be a palm_lightning.rewards.ExplorationReward")):
        PALM(**tiny_palm_kwargs(reward=torch.nn.Linear(2, 2)))


def test_a_hook_written_for_the_old_contract_is_told_what_changed():
    class OldStyle(PALM):
        def intrinsic_reward(self, features):  # the old contract: a features tensor in, (reward, logs) out
            flat = features.flatten(1)
            return flat.norm(dim=1), {}

    particles, actions = torch.zeros(5, 3, 4), torch.zeros(5, 2, 8)
    discounts = torch.tensor([1.0, 0.9]).expand(5, 2)
    model = OldStyle(**tiny_palm_kwargs())
    with pytest.raises(AttributeError, match=r"no attribute 'flatten': .*take a RewardStep .*CHANGELOG.md"):
        model.window_reward(model.reward_steps(particles, actions), discounts)

    class TupleOut(PALM):
        def intrinsic_reward(self, step):
            return step.obs.norm(dim=1), {}

    model = TupleOut(**tiny_palm_kwargs())
    with pytest.raises(ValueError, match=r"returned a tuple; it returns one Tensor of shape \(5,\)"):
        model.window_reward(model.reward_steps(particles, actions), discounts)


def test_a_users_reward_by_class_path_from_the_command_line(tmp_path):
    generator = tiny_generator_file(tmp_path)
    from tests.test_palm_cli import TINY

    tiny = [
        *TINY,
        "--trainer.max_steps",
        "2",
        "--trainer.logger",
        "false",
        "--trainer.callbacks",
        "[]",
        "--data.init_args.generator",
        str(generator),
    ]
    result = run_cli(
        "fit",
        "--config",
        str(REPO / "configs/palm.yaml"),
        *tiny,
        "--model.init_args.reward.class_path",
        "tests.palm_fixtures.NoveltyOfChange",
        cwd=tmp_path,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "max_steps=2" in result.stderr


@pytest.mark.parametrize("overlay", ["icm", "rnd"])
def test_reward_overlays_parse(overlay):
    result = run_cli(
        "fit",
        "--config",
        str(REPO / "configs/palm.yaml"),
        "--config",
        str(REPO / f"configs/palm_variants/{overlay}.yaml"),
        "--print_config",
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert f"class_path: palm_lightning.rewards.{overlay.upper()}" in result.stdout


def test_representation_hooks_of_the_wrong_shape_name_the_hook(tmp_path):
    class OneView(PALM):
        def representation_pair(self, images):
            return images[:, 0]

    class BareLoss(PALM):
        def representation_loss(self, obs, next_obs, actions):
            return super().representation_loss(obs, next_obs, actions)[0]

    data = LatentManifoldDataModule(**tiny_data_kwargs(tiny_generator_file(tmp_path)))
    with pytest.raises(
        ValueError, match=r"OneView.representation_pair must return two Tensors of shape \(16, C, H, W\)"
    ):
        trainer(tmp_path, 1).fit(OneView(**tiny_palm_kwargs()), data)
    data = LatentManifoldDataModule(**tiny_data_kwargs(tiny_generator_file(tmp_path)))
    with pytest.raises(ValueError, match=r"BareLoss.representation_loss must return \(a scalar Tensor"):
        trainer(tmp_path, 1).fit(BareLoss(**tiny_palm_kwargs()), data)
