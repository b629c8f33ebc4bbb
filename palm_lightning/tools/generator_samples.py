"""Pictures of a conditional generator: a samples grid and a latent walk through the environment.

    python -m palm_lightning.tools.generator_samples --samples docs/images/fmnist_vaegan_samples.png \
        --walk docs/images/fmnist_vaegan_walk.png                      # the default shipped generator
    python -m palm_lightning.tools.generator_samples --generator fmnist_stylegan --walk walk_old.png

- ``--samples``: one row per class, one column per fixed latent z (the same z in every row), so a
  row shows how much z changes the garment within a class and a column how the class changes it.
- ``--walk``: one episode of PALM's latent environment per class (one row each): uniform random
  actions, the environment's own dynamics (``--ema``, ``--truncation-psi`` as in
  ``configs/palm.yaml``), frame 0 is the reset. This is what the exploring agent sees.

``--generator`` takes what ``tools.generator_quality`` takes: a shipped generator's name, a network
file or checkpoint, or a YAML file naming your own class.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torchvision.utils import make_grid, save_image

from palm_lightning.checkpoints import CheckpointError
from palm_lightning.envs.latent_manifold import LatentManifold, from_uint8
from palm_lightning.generators import GeneratorConfigError
from palm_lightning.nn.protocols import GeneratorProtocolError, check_generator
from palm_lightning.tools.generator_quality import load_generator_argument


@torch.no_grad()
def samples_grid(generator: Any, columns: int = 12, truncation_psi: float = 1.0, seed: int = 0) -> torch.Tensor:
    """A ``(C, H, W)`` grid in [0, 1]: row k = class k, column j = the same latent z_j in every row."""
    z = torch.randn(columns, generator.latent_dim, generator=torch.Generator().manual_seed(seed))
    labels = torch.arange(generator.num_classes).repeat_interleave(columns)
    kwargs = {"truncation_psi": truncation_psi} if truncation_psi != 1.0 else {}
    images = generator(z.repeat(generator.num_classes, 1), labels, **kwargs)
    return make_grid((images + 1) / 2, nrow=columns, padding=2, pad_value=0.5).clamp(0, 1)


@torch.no_grad()
def latent_walk(
    generator: Any, steps: int = 16, ema: float = 0.5, truncation_psi: float = 1.0, seed: int = 0
) -> torch.Tensor:
    """Frames ``(num_classes, steps + 1, C, H, W)`` in [0, 1]: an episode per class under uniform
    random actions, starting from the reset frame."""
    env = LatentManifold(
        generator,
        num_envs=generator.num_classes,
        ema=ema,
        truncation_psi=truncation_psi,
        seed=seed,
        episode_length=steps + 1,
    )
    env.reset()
    env.labels = torch.arange(generator.num_classes, device=env.device)  # one row per class
    env.latent = env.random_latent(env.labels)
    frames = [env.decode(env.latent, env.labels)]
    rng = torch.Generator(device=env.device).manual_seed(seed)
    for _ in range(steps):
        action = torch.rand(env.num_envs, env.action_dim, generator=rng, device=env.device) * 2 - 1
        frames.append(env.step(action)[0])
    stacked = torch.stack(frames, dim=1)
    return from_uint8(stacked).add(1).div(2) if stacked.dtype == torch.uint8 else stacked.add(1).div(2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--generator", default=None, help="a shipped generator's name, a network file, or a YAML")
    parser.add_argument("--samples", type=Path, help="write the samples grid (PNG) here")
    parser.add_argument("--walk", type=Path, help="write the latent-walk strip (PNG) here")
    parser.add_argument("--columns", type=int, default=12, help="latents per row of the samples grid")
    parser.add_argument("--steps", type=int, default=15, help="environment steps per walk row")
    parser.add_argument("--ema", type=float, default=0.5, help="the environment's λ (configs/palm.yaml)")
    parser.add_argument("--truncation-psi", type=float, default=1.0)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    if not (args.samples or args.walk):
        parser.error("give --samples and/or --walk")
    try:
        generator: Any = load_generator_argument(args.generator)
        check_generator(generator)
    except (CheckpointError, GeneratorConfigError, GeneratorProtocolError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    if args.samples:
        args.samples.parent.mkdir(parents=True, exist_ok=True)
        save_image(samples_grid(generator, args.columns, args.truncation_psi, args.seed), args.samples)
        print(f"samples: {args.samples}")
    if args.walk:
        frames = latent_walk(generator, args.steps, args.ema, args.truncation_psi, args.seed)
        grid = make_grid(frames.flatten(0, 1), nrow=frames.shape[1], padding=2, pad_value=0.5)
        args.walk.parent.mkdir(parents=True, exist_ok=True)
        save_image(grid, args.walk)
        print(f"latent walk: {args.walk}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
