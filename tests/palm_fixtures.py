"""Small generators, configs and the quiet Trainer shared by the tests (fast on one CPU thread)."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import torch

from palm_lightning.agents.ddpg import DDPGConfig
from palm_lightning.checkpoints import save_network
from palm_lightning.nn.stylegan import StyleGANGenerator
from palm_lightning.rewards import APT, ExplorationReward, RewardStep


def trainer(tmp_path: Path, steps: int | None = None, **overrides) -> L.Trainer:
    """A one-CPU Trainer that prints and saves nothing unless asked (``overrides`` win): the tests' default."""
    kwargs = {
        "accelerator": "cpu",
        "devices": 1,
        "logger": False,
        "enable_checkpointing": False,
        "enable_progress_bar": False,
        "enable_model_summary": False,
        "default_root_dir": str(tmp_path),
        **({} if steps is None else {"max_steps": steps}),
        **overrides,
    }
    return L.Trainer(**kwargs)


TINY_GENERATOR = dict(
    z_dim=8, w_dim=16, num_classes=3, img_resolution=16, img_channels=1, channel_base=64, channel_max=16
)


def tiny_generator(seed: int = 0) -> StyleGANGenerator:
    torch.manual_seed(seed)
    return StyleGANGenerator(**TINY_GENERATOR).eval()


def tiny_generator_file(directory: Path) -> Path:
    return save_network(tiny_generator(), directory / "tiny_generator.pt", kind="generator")


def tiny_palm_kwargs(**overrides) -> dict:
    """PALM init args sized for the tiny generator (1×16×16 images, 8-d latents)."""
    kwargs = dict(
        image_shape=(1, 16, 16),
        action_dim=8,
        encoder_channels=8,
        repr_dim=16,
        projector_hidden=32,
        projector_dim=16,
        predictor_hidden=8,
        agent=DDPGConfig(feature_dim=8, hidden_dim=32),
        reward=APT(k=4),
        trajectory_every_n_updates=0,
    )
    kwargs.update(overrides)
    return kwargs


def tiny_data_kwargs(generator: Path, **overrides) -> dict:
    kwargs = dict(
        generator=str(generator),
        num_envs=4,
        episode_length=6,
        batch_size=16,
        buffer_capacity=400,
        nstep=2,
        seed_frames=32,
        updates_per_step=1,
    )
    kwargs.update(overrides)
    return kwargs


class RecordRankEnvironments(L.Callback):
    """Saves, at the end of fit, what each rank's stream holds (``out_dir/rank<r>.pt``): its
    environments' latents, its seed and frame count, and whether every parameter is finite."""

    def __init__(self, out_dir: str) -> None:
        self.out_dir = Path(out_dir)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        dm = trainer.datamodule
        self.out_dir.mkdir(parents=True, exist_ok=True)
        torch.save(
            {
                "latent": dm.env.latent.cpu(),
                "seed": dm.seed + dm.rank,
                "env_steps": dm.env_steps,
                "updates": int(pl_module.updates),
                "finite": all(bool(torch.isfinite(p).all()) for p in pl_module.parameters()),
            },
            self.out_dir / f"rank{trainer.global_rank}.pt",
        )


class NoveltyOfChange(ExplorationReward):
    """docs/usage.md's worked example: reward = distance travelled in representation space."""

    def forward(self, step: RewardStep) -> torch.Tensor:
        return (step.next_obs - step.obs).norm(dim=1)
