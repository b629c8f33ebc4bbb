"""How much a PALM explorer controls its latent environment: what its actions decide, where they push the
latent, what its view can tell apart.

    python -m palm_lightning.tools.controllability runs/palm/version_0/checkpoints/last.ckpt
    python -m palm_lightning.tools.controllability --config configs/palm.yaml      # the untrained agent
    python -m palm_lightning.tools.controllability CKPT --config configs/palm.yaml --json out.json

The environment and the model come from the run's config (``config.yaml`` beside the run's
``checkpoints/`` folder, or ``--config``); the checkpoint's weights are loaded into that model. Two
policies play in the same environments from the same seeds: the model's (exploring, as when it
collects data; ``--eval-mode`` for its deterministic actions) and uniform random actions in
``[−1, 1]`` (the no-exploration ablation). For each, over ``--num-envs`` × ``--steps`` steps:

- **action effect**: from the same state and the same noise ε, the next frame under the policy's
  action against under a fresh uniform action: mean |Δpixel| (in [0, 1]) and the cosine distance of
  the representation's features. **noise effect**: the same action, two noise draws. An action
  effect far below the noise effect means the environment, not the agent, decides the next frame.
  **step change**: the frame-to-frame change along the trajectory (what the Siamese pairs see).
- **norm effect**: how much the generator's frames change when z is scaled by 3 (mean |Δpixel|),
  beside how much they change between two independent latents: a generator whose mapping
  network normalises z (StyleGAN's) shows ~0, and then only the direction of z is the state.
- **saturated**: the share of action components with |a| > 0.95 (uniform actions: 0.05).
- **latent directions** (of z − μ, μ the EMA's centre: 0 in z, the class's mean w in w-space):
  the resultant length ‖mean(z/‖z‖)‖ over every visited latent (near 0
  when directions are spread like the prior's, 1 when every latent points the same way), the
  cosine of consecutive latents, and ‖z‖²/d. A generator that normalises z (StyleGAN's mapping
  network) sees only the direction.
- **between-class / within-episode shares**: of the feature variance in cosine space (features
  normalised), the share between the class means and the mean share within an episode, for the
  reward space (APT's particles), the actor's input and the same encoder untrained. A high
  between-class share means the explorer mostly sees the class, which it cannot choose.
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import tempfile
import warnings
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor, nn

from palm_lightning.checkpoints import CheckpointError, read_lightning_checkpoint
from palm_lightning.envs.latent_manifold import LatentManifold, from_uint8

SATURATED = 0.95
REMOVED_SETTINGS = ("share_encoder_forward",)
"""PALM settings that older runs' configs hold and this version no longer takes (CHANGELOG.md)."""


@dataclass
class PolicyReport:
    """What one policy does in the environment (see the module docstring)."""

    policy: str
    action_effect_frame: float
    action_effect_feature: float
    noise_effect_frame: float
    noise_effect_feature: float
    step_change_frame: float
    step_change_feature: float
    norm_effect_frame: float
    latent_change_frame: float
    saturated: float
    latent_resultant: float
    consecutive_latent_cos: float
    latent_norm2_per_dim: float
    between_class_reward_space: float
    within_episode_reward_space: float
    between_class_actor_input: float
    within_episode_actor_input: float
    between_class_untrained: float
    within_episode_untrained: float


def build_from_config(config: Path) -> tuple[Any, Any]:
    """The model and DataModule of ``config`` (its ``model`` and ``data`` blocks; no probe data),
    built by the package's CLI so that every ``class_path`` (reward, generator) is honoured."""
    from palm_lightning.cli import PalmCLI

    settings = yaml.safe_load(config.read_text())
    if not isinstance(settings, dict) or "model" not in settings or "data" not in settings:
        raise ValueError(f"{config}: a PALM config needs model: and data: blocks (e.g. configs/palm.yaml)")
    model = copy.deepcopy(settings["model"])
    for key in REMOVED_SETTINGS:
        if model.get("init_args", {}).pop(key, None) is not None:
            print(f"note: {config} sets {key}, which this version no longer has (CHANGELOG.md); ignored")
    data = copy.deepcopy(settings["data"])
    data.setdefault("init_args", {})["probe_data"] = None
    minimal = {"seed_everything": settings.get("seed_everything", 0), "model": model, "data": data}
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as handle:
        yaml.safe_dump(minimal, handle)
    args = ["--config", handle.name, "--trainer.logger", "false", "--trainer.enable_checkpointing", "false"]
    loggers = [logging.getLogger(name) for name in ("lightning.pytorch", "lightning.fabric")]
    levels = [logger.level for logger in loggers]
    try:
        for logger in loggers:
            logger.setLevel(logging.WARNING)  # no seed / accelerator banner: the tool prints one table
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # LightningCLI warns when sys.argv holds this tool's own arguments
            cli = PalmCLI(args=args, run=False, save_config_callback=None)
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)
        Path(handle.name).unlink(missing_ok=True)
    if not hasattr(cli.model, "explorer_features") or not hasattr(cli.datamodule, "make_env"):
        raise ValueError(
            f"{config}: the model must be a PALM (or subclass) and the data a LatentManifoldDataModule, got "
            f"{type(cli.model).__name__} and {type(cli.datamodule).__name__}"
        )
    return cli.model, cli.datamodule


def run_config(checkpoint: Path) -> Path:
    """The ``config.yaml`` LightningCLI saved beside ``checkpoints/`` in the checkpoint's run."""
    config = checkpoint.resolve().parent.parent / "config.yaml"
    if not config.is_file():
        raise CheckpointError(f"{checkpoint}: no config.yaml in its run folder {config.parent}; pass --config")
    return config


def variance_shares(features: Tensor, labels: Tensor, episodes: Tensor) -> tuple[float, float]:
    """Between-class and mean within-episode shares of the variance of L2-normalised ``features``."""
    f = nn.functional.normalize(features.float(), dim=1)
    centred = f - f.mean(0)
    total = centred.pow(2).sum(1).mean()
    between = f.new_zeros(())
    for c in labels.unique():
        members = labels == c
        between += members.float().mean() * (f[members].mean(0) - f.mean(0)).pow(2).sum()
    within = f.new_zeros(())
    ids = episodes.unique()
    for e in ids:
        members = f[episodes == e]
        within += (members - members.mean(0)).pow(2).sum(1).mean()
    return float(between / total), float(within / len(ids) / total)


def cosine_distance(a: Tensor, b: Tensor) -> Tensor:
    return 1.0 - nn.functional.cosine_similarity(a.float(), b.float(), dim=1)


@torch.no_grad()
def norm_effect(env: LatentManifold, samples: int = 64, seed: int = 0) -> tuple[float, float]:
    """Mean |Δpixel| (in [0, 1]) between the frames of z and 3z, and between those of two independent z."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.randint(env.num_classes, (samples,), generator=generator)

    def latent() -> Tensor:  # a draw from the environment's own prior, without touching its random state
        noise = torch.randn(samples, env.noise_dim, generator=generator)
        if env.latent_space == "z":
            return noise
        return env.generator.mapping(noise, labels, truncation_psi=env.truncation_psi)

    z, other = latent(), latent()
    center = env.center(labels)
    frames = env.decode(z, labels).float()
    scaled = env.decode(center + 3 * (z - center), labels).float()
    return float((frames - scaled).abs().mean() / 255), float(
        (frames - env.decode(other, labels).float()).abs().mean() / 255
    )


@torch.no_grad()
def measure(
    model: Any,
    env: LatentManifold,
    untrained: nn.Module,
    policy: str,
    steps: int,
    seed: int,
    eval_mode: bool = False,
) -> PolicyReport:
    """Play ``steps`` steps of ``policy`` (``"model"`` or ``"random"``) in ``env`` and measure it."""
    uniform = torch.Generator().manual_seed(seed + 1)
    obs, info = env.reset(seed=seed)
    n = env.num_envs
    episode = torch.arange(n)
    next_episode = n
    action_frame, action_feature, noise_frame, noise_feature, step_frame, step_feature = ([] for _ in range(6))
    actions, latents, consecutive, frames, labels, episodes = [], [], [], [], [], []

    def encode(images: Tensor) -> Tensor:
        return model.encode(from_uint8(images)).float()

    def random_actions() -> Tensor:
        return torch.rand(n, env.action_dim, generator=uniform) * 2 - 1

    for _ in range(steps):
        action = random_actions() if policy == "random" else model.act(obs, 10**9, eval_mode=eval_mode).float()
        before = env.state_dict()
        previous_latent = env.latent - env.center(env.labels)  # μ: 0 in z, the class's mean w in w
        next_obs, _, _, truncated, info = env.step(action)
        after = env.state_dict()
        env.load_state_dict(before)  # same state, same noise, another action
        other_action, *_ = env.step(random_actions())
        env.load_state_dict(before)  # same state, same action, another noise draw
        torch.randn(1, generator=env.rng)
        other_noise, *_ = env.step(action)
        env.load_state_dict(after)
        features = encode(next_obs)
        action_frame.append((next_obs.float() - other_action.float()).abs().mean((1, 2, 3)) / 255)
        action_feature.append(cosine_distance(features, encode(other_action)))
        noise_frame.append((next_obs.float() - other_noise.float()).abs().mean((1, 2, 3)) / 255)
        noise_feature.append(cosine_distance(features, encode(other_noise)))
        step_frame.append((next_obs.float() - obs.float()).abs().mean((1, 2, 3)) / 255)
        step_feature.append(cosine_distance(features, encode(obs)))
        actions.append(action)
        latent = env.latent - env.center(env.labels)
        latents.append(latent)
        consecutive.append(nn.functional.cosine_similarity(previous_latent, latent, dim=1))
        frames.append(next_obs)
        labels.append(info["class"].clone())
        episodes.append(episode.clone())
        obs = next_obs
        if truncated.any():
            obs, _ = env.reset(truncated)
            fresh = truncated.nonzero().squeeze(1)
            episode[fresh] = torch.arange(next_episode, next_episode + fresh.numel())
            next_episode += fresh.numel()

    scale_effect, latent_change = norm_effect(env, seed=seed)
    all_actions, all_latents = torch.cat(actions), torch.cat(latents)
    all_frames, all_labels, all_episodes = torch.cat(frames), torch.cat(labels), torch.cat(episodes)
    directions = nn.functional.normalize(all_latents, dim=1)
    actor_input = torch.cat([model.explorer_features(chunk).float() for chunk in all_frames.split(1024)])
    reward_space = torch.cat([model.reward_features(chunk).float() for chunk in actor_input.split(1024)])
    untrained_features = torch.cat([untrained(from_uint8(chunk)).float() for chunk in all_frames.split(1024)])
    shares = {
        name: variance_shares(value, all_labels, all_episodes)
        for name, value in (("reward", reward_space), ("actor", actor_input), ("untrained", untrained_features))
    }

    def mean(values: list[Tensor]) -> float:
        return float(torch.cat(values).mean())

    return PolicyReport(
        policy=policy,
        action_effect_frame=mean(action_frame),
        action_effect_feature=mean(action_feature),
        noise_effect_frame=mean(noise_frame),
        noise_effect_feature=mean(noise_feature),
        step_change_frame=mean(step_frame),
        step_change_feature=mean(step_feature),
        norm_effect_frame=scale_effect,
        latent_change_frame=latent_change,
        saturated=float((all_actions.abs() > SATURATED).float().mean()),
        latent_resultant=float(directions.mean(0).norm()),
        consecutive_latent_cos=mean(consecutive),
        latent_norm2_per_dim=float(all_latents.pow(2).sum(1).mean() / all_latents.shape[1]),
        between_class_reward_space=shares["reward"][0],
        within_episode_reward_space=shares["reward"][1],
        between_class_actor_input=shares["actor"][0],
        within_episode_actor_input=shares["actor"][1],
        between_class_untrained=shares["untrained"][0],
        within_episode_untrained=shares["untrained"][1],
    )


def report(
    checkpoint: Path | None,
    config: Path | None,
    num_envs: int = 64,
    steps: int = 50,
    seed: int = 12345,
    eval_mode: bool = False,
) -> list[PolicyReport]:
    """Both policies' reports for a checkpoint (its run's config unless ``config``) or a config alone."""
    if checkpoint is None and config is None:
        raise ValueError("give a checkpoint, a --config, or both")
    if checkpoint is not None and not checkpoint.is_file():
        raise CheckpointError(f"{checkpoint}: no such checkpoint")
    model, data = build_from_config(config if config is not None else run_config(checkpoint))  # type: ignore[arg-type]
    untrained = copy.deepcopy(model.encoder).eval()  # the architecture as the config initialises it
    if checkpoint is not None:
        state = read_lightning_checkpoint(str(checkpoint))["state_dict"]
        missing, unexpected = model.load_state_dict(state, strict=False)
        if [k for k in missing if not k.startswith("reward.")] or unexpected:
            raise CheckpointError(
                f"{checkpoint} does not fit the model of its config (missing {missing[:4]}, unexpected "
                f"{unexpected[:4]}); pass the run's own --config"
            )
    model.eval()
    reports = []
    for policy in ("model", "random"):
        env = data.make_env(num_envs, seed, torch.device("cpu"))
        reports.append(measure(model, env, untrained, policy, steps, seed, eval_mode=eval_mode))
    return reports


def markdown(reports: list[PolicyReport]) -> str:
    """The reports as one Markdown table, a column per policy."""
    fields = [name for name in asdict(reports[0]) if name != "policy"]
    lines = ["| measure | " + " | ".join(r.policy for r in reports) + " |", "|---|" + "---:|" * len(reports)]
    for name in fields:
        lines.append(f"| {name} | " + " | ".join(f"{getattr(r, name):.3f}" for r in reports) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, nargs="?", help="a PALM run's .ckpt (optional with --config)")
    parser.add_argument("--config", type=Path, help="the run's config (default: config.yaml of the checkpoint's run)")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50, help="steps per environment")
    parser.add_argument("--seed", type=int, default=12345, help="a seed the run did not use")
    parser.add_argument("--eval-mode", action="store_true", help="the agent's deterministic actions, no noise")
    parser.add_argument("--json", type=Path, help="also write the reports here")
    args = parser.parse_args(argv)
    if args.checkpoint is None and args.config is None:
        parser.error("give a checkpoint, a --config, or both")
    reports = report(args.checkpoint, args.config, args.num_envs, args.steps, args.seed, args.eval_mode)
    print(markdown(reports))
    if args.json is not None:
        args.json.write_text(json.dumps([asdict(r) for r in reports], indent=2) + "\n")


if __name__ == "__main__":
    main()
