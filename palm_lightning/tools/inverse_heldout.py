"""How much of the action a ``PALMInverseDynamics`` head reads from transitions it never trained on.

    python -m palm_lightning.tools.inverse_heldout runs/atari_table/palm_inverse_s0/version_0/checkpoints/last.ckpt \
        --config configs/palm_atari.yaml

Why: the run logs ``train/inverse_r2`` on its replay batches, and a replay of a few thousand transitions,
each sampled dozens of times, can be memorised. This script builds the run's environment from its
config (``data.init_args``: generator, ``ema``, ``action_scale``, ...) under a seed the run did not use,
steps it with uniform random actions (the random policy's), and prints the R² (``1 − MSE / Var(a)``) and
the correlation of the head's prediction with the action: on these fresh transitions, on the same frames
with the actions shuffled between transitions (what a head that reads nothing of the action scores), and
the bound of an observer that knows both latents exactly (its R²; its correlation is the square root).
With ``z_t`` and ``z_{t+1}`` known, ``ε + action_scale·a`` is known and ``ε ~ N(0, I)`` hides the rest;
the bound is that posterior mean's R², computed on a grid.
"""

from __future__ import annotations

import argparse
import inspect
from pathlib import Path

import torch
import yaml
from torch import Tensor

from palm_lightning.envs.latent_manifold import LatentManifold, from_uint8
from palm_lightning.models import PALMInverseDynamics


def r_squared(predicted: Tensor, actions: Tensor) -> float:
    """``1 − MSE / Var(a)``, both over every sample and action dimension."""
    return float(1.0 - (predicted - actions).pow(2).mean() / actions.var(dim=0, unbiased=False).mean())


def correlation(predicted: Tensor, actions: Tensor) -> float:
    """Pearson correlation of prediction and action per dimension, averaged: unlike R², blind to a head
    whose predictions are right in direction but too large (a memorising head's are)."""
    p, a = predicted - predicted.mean(0), actions - actions.mean(0)
    return float(((p * a).sum(0) / (p.norm(dim=0) * a.norm(dim=0)).clamp_min(1e-12)).mean())


def observer_bound(action_scale: float, samples: int = 200_000, seed: int = 0) -> float:
    """R² of ``E[a | a + ε / action_scale]`` for ``a ~ U(−1, 1)``, ``ε ~ N(0, 1)``: the most any head can read."""
    generator = torch.Generator().manual_seed(seed)
    actions = torch.rand(samples, generator=generator) * 2 - 1
    seen = actions + torch.randn(samples, generator=generator) / action_scale
    grid = torch.linspace(-1, 1, 401)
    weights = torch.exp(-0.5 * ((seen[:, None] - grid[None]) * action_scale) ** 2)
    posterior_mean = (weights * grid).sum(1) / weights.sum(1)
    return r_squared(posterior_mean[:, None], actions[:, None])


def environment(config: Path, num_envs: int, seed: int) -> LatentManifold:
    """The run's environment, from its config's ``data.init_args`` (the keys ``LatentManifold`` takes)."""
    data = yaml.safe_load(config.read_text())["data"]["init_args"]
    accepted = set(inspect.signature(LatentManifold).parameters) - {"num_envs", "seed", "device", "check"}
    settings = {key: value for key, value in data.items() if key in accepted}
    return LatentManifold(num_envs=num_envs, seed=seed, **settings)


@torch.no_grad()
def transitions(env: LatentManifold, steps: int, seed: int) -> tuple[Tensor, Tensor, Tensor]:
    """``steps`` batches of ``(o_t, a_t, o_{t+1})`` under uniform actions in ``[−1, 1]`` (resets at truncation)."""
    generator = torch.Generator().manual_seed(seed)
    obs, _ = env.reset(seed=seed)
    firsts, actions, nexts = [], [], []
    for _ in range(steps):
        action = torch.rand(env.num_envs, env.action_dim, generator=generator) * 2 - 1
        next_obs, _, _, truncated, _ = env.step(action)
        firsts.append(obs)
        actions.append(action)
        nexts.append(next_obs)
        obs = env.reset(truncated)[0] if truncated.any() else next_obs
    return torch.cat(firsts), torch.cat(actions), torch.cat(nexts)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a PALMInverseDynamics run's .ckpt")
    parser.add_argument("--config", type=Path, required=True, help="the run's config (its data.init_args)")
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--steps", type=int, default=64, help="steps per environment (64 x 64 = 4 096 transitions)")
    parser.add_argument("--seed", type=int, default=12345, help="a seed the run did not use")
    args = parser.parse_args(argv)
    with torch.no_grad():
        report(args)


def report(args: argparse.Namespace) -> None:
    """Build the environment, collect fresh transitions, print the table."""
    model = PALMInverseDynamics.load_from_checkpoint(args.checkpoint, map_location="cpu").eval()
    env = environment(args.config, args.num_envs, args.seed)
    obs, actions, next_obs = transitions(env, args.steps, args.seed)
    features = torch.cat([model.encode(from_uint8(chunk)) for chunk in obs.split(512)])
    next_features = torch.cat([model.encode(from_uint8(chunk)) for chunk in next_obs.split(512)])
    predicted = model.inverse_model(torch.cat([features, next_features], dim=1))
    shuffled = actions[torch.randperm(actions.shape[0], generator=torch.Generator().manual_seed(args.seed))]
    print(f"{args.checkpoint} ({actions.shape[0]} fresh transitions, seed {args.seed})")
    print("| the inverse head on | R² | correlation |\n|---|---:|---:|")
    print(f"| fresh transitions | {r_squared(predicted, actions):.3f} | {correlation(predicted, actions):.3f} |")
    shuffled_r2, shuffled_corr = r_squared(predicted, shuffled), correlation(predicted, shuffled)
    print(f"| actions shuffled between transitions | {shuffled_r2:.3f} | {shuffled_corr:.3f} |")
    bound = observer_bound(env.action_scale)
    print(
        f"| an observer of both latents (the bound; action_scale {env.action_scale}) | {bound:.3f} | {bound**0.5:.3f} |"
    )


if __name__ == "__main__":
    main()
