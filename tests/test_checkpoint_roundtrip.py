"""Checkpoints keep what they trained: a PALM's reward (class, settings, trained parameters) comes
back through ``load_from_checkpoint``, through a CLI run's checkpoint and through ``--ckpt_path``
resume; older checkpoints get an error that says how to load them."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from torch import Tensor, nn

from palm_lightning.class_paths import component_spec
from palm_lightning.datamodules import LatentManifoldDataModule
from palm_lightning.models import PALM, PALMSTDIM
from palm_lightning.rewards import APT, ICM, RND, ExplorationReward, RewardStep
from tests.cli_runner import REPO, run_cli
from tests.palm_fixtures import tiny_data_kwargs, tiny_generator_file, tiny_palm_kwargs, trainer


class LearnedNovelty(ExplorationReward):
    """A user's reward with a setting and a trained parameter: distance to a learned centre, scaled."""

    def __init__(self, scale: float = 1.0, margins: tuple[float, float] = (0.0, 1.0)) -> None:
        super().__init__()
        self.scale, self.margins = scale, margins
        self.centre: nn.Parameter | None = None

    def build(self, feature_dim: int, action_dim: int) -> None:
        self.centre = nn.Parameter(torch.zeros(feature_dim))

    def forward(self, step: RewardStep) -> Tensor:
        assert self.centre is not None
        return self.scale * (step.obs - self.centre).norm(dim=1)

    def loss(self, step: RewardStep) -> tuple[Tensor, dict[str, Tensor]]:
        assert self.centre is not None
        loss = (step.obs - self.centre).pow(2).mean()
        return loss, {"train/centre_loss": loss.detach()}


def trained_checkpoint(
    tmp_path: Path, reward: ExplorationReward, model_class: type[PALM] = PALM, **kwargs
) -> tuple[PALM, Path]:
    model = model_class(**tiny_palm_kwargs(reward=reward, **kwargs))
    fit = trainer(tmp_path, 3)
    fit.fit(model, LatentManifoldDataModule(**tiny_data_kwargs(tiny_generator_file(tmp_path))))
    path = tmp_path / "palm.ckpt"
    fit.save_checkpoint(path)
    return model, path


def assert_same_reward(loaded: ExplorationReward, trained: ExplorationReward) -> None:
    assert type(loaded) is type(trained)
    assert component_spec(loaded) == component_spec(trained)  # class and settings (tuples come back as lists)
    trained_state, loaded_state = trained.state_dict(), loaded.state_dict()
    assert trained_state.keys() == loaded_state.keys() and trained_state
    for key, value in trained_state.items():
        torch.testing.assert_close(loaded_state[key], value, msg=key)


@pytest.mark.parametrize(
    "reward",
    [
        APT(k=3, knn_rms=True, knn_clip=0.01, source="next_obs"),
        ICM(feature_dim=8, hidden_dim=16, beta=0.3),
        RND(rep_dim=8, hidden_dim=16, clip=3.0),
        LearnedNovelty(scale=2.5, margins=(0.1, 0.9)),
    ],
    ids=["apt_k3", "icm", "rnd", "users_reward"],
)
def test_load_from_checkpoint_rebuilds_the_trained_reward(tmp_path, reward):
    model, path = trained_checkpoint(tmp_path, reward)
    loaded = PALM.load_from_checkpoint(path, map_location="cpu")
    assert_same_reward(loaded.reward, model.reward)
    assert loaded.hparams["reward"]["class_path"] == f"{type(reward).__module__}.{type(reward).__qualname__}"
    # the checkpoint holds plain values only: it loads without unpickling code
    raw = torch.load(path, map_location="cpu", weights_only=True)
    assert raw["hyper_parameters"]["reward"]["init_args"] == loaded.hparams["reward"]["init_args"]


def test_the_reward_is_built_for_the_width_reward_features_returns(tmp_path):
    """PALMSTDIM rewards the encoder's features (repr_dim 16), not a projection (projector_dim 24):
    ICM's networks must be built for 16."""
    model, path = trained_checkpoint(tmp_path, ICM(feature_dim=8, hidden_dim=16), PALMSTDIM, projector_dim=24)
    assert model.reward_feature_width() == 16 and model.reward.trunk[0].in_features == 16
    loaded = PALMSTDIM.load_from_checkpoint(path, map_location="cpu")
    assert_same_reward(loaded.reward, model.reward)


def test_a_checkpoint_without_a_recorded_reward_names_the_fix(tmp_path):
    model, path = trained_checkpoint(tmp_path, RND(rep_dim=8, hidden_dim=16))
    raw = torch.load(path, map_location="cpu", weights_only=True)
    del raw["hyper_parameters"]["reward"]  # as checkpoints were saved before rewards were recorded
    torch.save(raw, tmp_path / "old.ckpt")
    with pytest.raises(ValueError, match=r"predates recorded rewards.*load_from_checkpoint\(path, reward="):
        PALM.load_from_checkpoint(tmp_path / "old.ckpt", map_location="cpu")
    loaded = PALM.load_from_checkpoint(tmp_path / "old.ckpt", map_location="cpu", reward=RND(rep_dim=8, hidden_dim=16))
    assert_same_reward(loaded.reward, model.reward)


def test_an_old_variant_checkpoint_with_unused_simsiam_heads_still_loads(tmp_path):
    model, path = trained_checkpoint(tmp_path, APT(k=4), PALMSTDIM)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    raw["state_dict"]["projector.0.weight"] = torch.zeros(32, 16)  # what variants used to carry, untrained
    raw["state_dict"]["predictor.0.weight"] = torch.zeros(8, 16)
    torch.save(raw, tmp_path / "old.ckpt")
    loaded = PALMSTDIM.load_from_checkpoint(tmp_path / "old.ckpt", map_location="cpu")
    torch.testing.assert_close(loaded.encoder.state_dict(), model.encoder.state_dict())


def test_a_representation_loss_with_the_old_signature_is_told_what_changed():
    with pytest.raises(TypeError, match=r"representation_loss\(self, obs, next_obs, actions\)"):

        class OldObjective(PALM):
            def representation_loss(self, obs: Tensor, next_obs: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
                raise AssertionError("never called")


def test_a_subclass_sets_what_its_agent_needs_after_super_init():
    """Heads, reward and agent are built after the most-derived __init__ returns."""

    class WideAgent(PALM):
        def __init__(self, *args, agent_width: int = 24, **kwargs) -> None:
            super().__init__(*args, **kwargs)
            self.agent_width = agent_width

        def build_agent(self):  # reads an attribute set after super().__init__()
            agent = super().build_agent()
            agent.chosen_width = self.agent_width
            return agent

    assert WideAgent(**tiny_palm_kwargs(), agent_width=7).agent.chosen_width == 7


def without_option(args: list[str], option: str) -> list[str]:
    index = args.index(option)
    return args[:index] + args[index + 2 :]


def test_a_cli_run_reloads_and_resumes_with_its_reward(tmp_path):
    """The checkpoint of ``fit --config palm.yaml + rnd.yaml`` loads with its RND, by
    ``load_from_checkpoint`` and by ``--ckpt_path`` resume."""
    from tests.test_palm_cli import TINY

    generator = tiny_generator_file(tmp_path)
    common = [
        "--config",
        str(REPO / "configs/palm.yaml"),
        "--config",
        str(REPO / "configs/palm_variants/rnd.yaml"),
        *without_option(TINY, "--model.init_args.reward.init_args.k"),  # APT's setting: RND has no k
        "--model.init_args.reward.init_args.rep_dim",
        "8",
        "--data.init_args.generator",
        str(generator),
        "--trainer.logger",
        "false",
        "--trainer.default_root_dir",
        str(tmp_path),
        "--trainer.callbacks",
        "[{class_path: lightning.pytorch.callbacks.ModelCheckpoint, init_args: {dirpath: ckpts, save_last: true}}]",
    ]
    result = run_cli("fit", *common, "--trainer.max_steps", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    last = tmp_path / "ckpts" / "last.ckpt"
    loaded = PALM.load_from_checkpoint(last, map_location="cpu")
    assert isinstance(loaded.reward, RND) and loaded.reward.init_args["rep_dim"] == 8
    result = run_cli("fit", *common, "--trainer.max_steps", "4", "--ckpt_path", str(last), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = PALM.load_from_checkpoint(last, map_location="cpu")
    assert int(resumed.updates) == 4 and isinstance(resumed.reward, RND)


def flatten_groups(hparams: dict, groups: dict[str, dict[str, str]]) -> None:
    """Turn grouped settings back into the flat keys an older checkpoint holds (field → old key)."""
    for group, fields in groups.items():
        values = hparams.pop(group)
        for field, old in fields.items():
            hparams[old] = values[field]


def test_a_checkpoint_saved_with_flat_agent_settings_still_loads(tmp_path):
    from palm_lightning.agents.ddpg import DDPGConfig

    config = DDPGConfig(feature_dim=6, hidden_dim=24, lr=3e-4, stddev_schedule="0.3")
    model, path = trained_checkpoint(tmp_path, APT(k=4), agent=config)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    old_names = {"feature_dim": "feature_dim", "hidden_dim": "hidden_dim", "lr": "agent_lr", "critic_tau": "critic_tau"}
    old_names |= {k: k for k in ("stddev_schedule", "stddev_clip", "straight_through", "sequential_updates")}
    flatten_groups(raw["hyper_parameters"], {"agent": old_names})
    torch.save(raw, tmp_path / "flat.ckpt")
    loaded = PALM.load_from_checkpoint(tmp_path / "flat.ckpt", map_location="cpu")
    assert loaded.hp.agent == config
    torch.testing.assert_close(loaded.agent.state_dict(), model.agent.state_dict())


def test_a_palm_sac_checkpoint_with_flat_settings_still_loads(tmp_path):
    from palm_lightning.agents.sac import SACConfig
    from palm_lightning.models import PALMSAC

    sac = SACConfig(hidden_dim=32, q_layers=1, lr=1e-3, tau=0.01, grad_clip=None)
    model, path = trained_checkpoint(tmp_path, APT(k=4), PALMSAC, sac=sac)
    raw = torch.load(path, map_location="cpu", weights_only=True)
    hparams = raw["hyper_parameters"]
    del hparams["sac"]
    hparams |= {"hidden_dim": 32, "sac_hidden_layers": 1, "sac_lr": 1e-3, "critic_tau": 0.01}
    hparams["feature_dim"] = hparams.pop("agent")["feature_dim"]
    torch.save(raw, tmp_path / "flat.ckpt")
    loaded = PALMSAC.load_from_checkpoint(tmp_path / "flat.ckpt", map_location="cpu")
    assert loaded.sac == sac
    torch.testing.assert_close(loaded.agent.state_dict(), model.agent.state_dict())
