"""What a PALM policy shows the encoder: the actions, latents and frames it visits, beside the random policy's.

    python -m palm_lightning.tools.policy_frames runs/representation_long/palm_apt_s0/version_0/checkpoints/last.ckpt
    python -m palm_lightning.tools.policy_frames runs/atari_table/palm_apt_s0/version_0/checkpoints/last.ckpt \
        --generator palm_lightning/weights/atari_vaegan.pt --data configs/classifier/atari.yaml \
        --classifier runs/classifier_atari/version_0/checkpoints/last.ckpt            # PALM-Atari

For each policy — the checkpoint's agent (with its training exploration noise), uniform random
actions in [-1, 1] (the ``palm_random_policy`` ablation, and the seed frames of every run) and zero
actions (the generator's prior: the latent stays N(0, I)) — runs ``--envs`` environments of
``configs/palm.yaml``'s dynamics (λ, episode length, ψ as given) for ``--episodes`` episodes and
prints one row:

- actions: mean |a| and the fraction of components at the tanh's edge (|a| > 0.95);
- latents: ‖mean z‖ over the visited latents (drift away from the prior's 0), the mean per-dimension
  std, and the mean of ‖z‖²/d (1 under the prior);
- frames, scored by the reference classifier (the shipped Fashion-MNIST one, or ``--classifier`` on the
  real images of ``--data``'s config, as ``tools.generator_quality``): conditional accuracy against the episode's
  class, Fréchet distance to the real test images, within-class diversity (as
  ``tools.generator_quality``; real train images score ~0.1 / ~1.0 there);
- the Siamese pairs: mean absolute pixel change between consecutive frames (in [0, 1] units).

Why: APT maximises the spread of the frames in representation space, and nothing ties its actions to
the generator's prior; if its latents drift where the generator was never trained, the encoder
learns from frames unlike the real images it is probed on.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from palm_lightning import DEFAULT_GENERATOR, SHIPPED_CLASSIFIER
from palm_lightning.checkpoints import load_network, packaged
from palm_lightning.datamodules import FashionMNISTDataModule
from palm_lightning.datamodules.images.base import ImageDataModule
from palm_lightning.envs import LatentManifold
from palm_lightning.metrics.frechet import frechet_distance, gaussian_statistics
from palm_lightning.models.palm.palm import PALM
from palm_lightning.models.palm.sac_explorer import PALMSAC
from palm_lightning.tools.generator_quality import (
    class_spreads,
    classify,
    datamodule_from_config,
    load_generator_argument,
)

Policy = Callable[[Tensor], Tensor]


@torch.no_grad()
def visit(env: LatentManifold, policy: Policy, episodes: int) -> dict[str, Tensor]:
    """Run ``episodes`` full episodes of every environment; stack what was visited."""
    actions, latents, frames, labels, changes = [], [], [], [], []
    for _ in range(episodes):
        obs, info = env.reset()
        for _ in range(env.episode_length):
            action = policy(obs)
            next_obs, _, _, _, info = env.step(action)
            actions.append(action)
            latents.append(env.latent.clone())
            frames.append(next_obs)
            labels.append(info["class"])
            changes.append((next_obs.float() - obs.float()).abs().mean(dim=(1, 2, 3)) / 255)
            obs = next_obs
    return {
        "actions": torch.cat(actions),
        "latents": torch.cat(latents),
        "frames": torch.cat(frames),
        "labels": torch.cat(labels),
        "changes": torch.cat(changes),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoints", nargs="+", help="PALM checkpoints whose agent to roll out")
    parser.add_argument("--generator", default=DEFAULT_GENERATOR)
    parser.add_argument("--ema", type=float, default=0.5, help="λ (configs/palm.yaml: 0.5)")
    parser.add_argument("--episode-length", type=int, default=50)
    parser.add_argument("--truncation-psi", type=float, default=1.0)
    parser.add_argument("--action-scale", type=float, default=1.0)
    parser.add_argument("--latent-norm", choices=["free", "sphere"], default="free")
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--episodes", type=int, default=2)
    parser.add_argument("--env-steps", type=int, default=10**9, help="the agent's exploration-schedule step")
    parser.add_argument("--data", default=None, help="config naming the real images (data block; needs --classifier)")
    parser.add_argument("--classifier", default=None, help="network file or .ckpt (default: the shipped one)")
    parser.add_argument("--data-dir", default=None, help="replaces the data's data_dir (default: data)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if args.data and not args.classifier:
        parser.error(f"--data {args.data} needs --classifier: the shipped classifier knows Fashion-MNIST only")
    started = time.time()
    torch.manual_seed(args.seed)

    classifier = load_network(args.classifier or packaged(SHIPPED_CLASSIFIER), kind="classifier").eval()
    data: ImageDataModule
    if args.data:
        data = datamodule_from_config(args.data, args.data_dir)
    else:
        data = FashionMNISTDataModule(data_dir=args.data_dir or "data", resolution=32)
    data.prepare_data()
    data.setup("test")
    assert data.test_set is not None
    _, real_features = classify(classifier, data.normalize(data.test_set.images))
    reference = gaussian_statistics(real_features)
    reference_spreads = class_spreads(real_features, data.test_set.labels, data.num_classes)

    generator: Any = load_generator_argument(args.generator)  # a shipped name, network file or .ckpt
    dim = int(generator.latent_dim)
    policies: dict[str, Policy] = {
        "zero actions (the prior)": lambda obs: torch.zeros(obs.shape[0], dim),
        "uniform random actions": lambda obs: torch.rand(obs.shape[0], dim) * 2 - 1,
    }
    for path in args.checkpoints:
        keys = torch.load(path, map_location="cpu", weights_only=True)["state_dict"]
        cls = PALMSAC if "agent.log_alpha" in keys else PALM  # the agent's parameters tell the class
        model = cls.load_from_checkpoint(path, map_location="cpu").eval()

        def agent(obs: Tensor, model: PALM = model) -> Tensor:
            return model.act(obs, args.env_steps)

        policies[f"agent of {path}"] = agent

    print(
        "| policy | mean abs(a) | abs(a) > 0.95 | drift ‖mean z‖ | per-dim std | ‖z‖²/d | cond. acc | Fréchet "
        "| diversity | pair change |"
    )
    print("|---|" + "---:|" * 9)
    for name, policy in policies.items():
        env = LatentManifold(
            generator=generator,
            num_envs=args.envs,
            episode_length=args.episode_length,
            ema=args.ema,
            truncation_psi=args.truncation_psi,
            action_scale=args.action_scale,
            latent_norm=args.latent_norm,
            seed=args.seed,
            check=False,
        )
        seen = visit(env, policy, args.episodes)
        images = data.normalize(seen["frames"])
        predictions, features = classify(classifier, images)
        spreads = class_spreads(features, seen["labels"], data.num_classes)
        actions, latents = seen["actions"], seen["latents"]
        cells = [
            actions.abs().mean(),
            (actions.abs() > 0.95).float().mean(),
            latents.mean(0).norm(),
            latents.std(0).mean(),
            latents.pow(2).sum(1).mean() / dim,
            (predictions == seen["labels"]).float().mean(),
            torch.tensor(frechet_distance(*gaussian_statistics(features), *reference)),
            (spreads / reference_spreads).nanmean(),
            seen["changes"].mean(),
        ]
        print(f"| {name} | " + " | ".join(f"{float(c):.3f}" for c in cells) + " |")
    seconds = time.time() - started
    print(f"\n({seconds:.0f} s; {args.envs} envs x {args.episodes} episodes of {args.episode_length} steps)")


if __name__ == "__main__":
    main()
