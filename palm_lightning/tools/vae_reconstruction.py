"""Does a VAE-GAN generator use z? Foreground error of its reconstructions against its prior samples.

    python -m palm_lightning.tools.vae_reconstruction runs/generator_atari_vaegan/version_2/checkpoints/last.ckpt \\
        --data configs/generator/atari_vaegan.yaml --grid recon.png

For each class, ``--per-class`` real test images x are encoded by the checkpoint's encoder; the EMA
generator decodes the posterior mean (the reconstruction) and, for comparison, as many z drawn from
the N(0, I) prior. On the *foreground* pixels of x — those that differ from the class's mean test
image by more than ``--threshold`` (images in [-1, 1]): on Atari, the sprites — it prints the mean
absolute error of both. A decoder that ignores z scores the same on both (the reconstruction is no
closer to x than a random sample: one frame per class); the ratio reconstruction ÷ prior is the
number to read (1 = z unused, 0 = perfect reconstructions). ``--grid`` writes, per class, rows of
real images, reconstructions and prior samples.

Why: pooled classifier features and pixel distances to the nearest training frame both miss a
generator that draws one frame per class, since frames of an Atari game share most of their pixels;
this asks the decoder directly whether the information in z reaches the image.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch
from torch import Tensor

from palm_lightning.envs.latent_manifold import from_uint8
from palm_lightning.models import VAEStyleGAN
from palm_lightning.tools.generator_quality import datamodule_from_config


def foreground_errors(
    model: VAEStyleGAN, images: Tensor, labels: Tensor, per_class: int, threshold: float, seed: int
) -> tuple[list[dict[str, float]], list[Tensor]]:
    """Per class: foreground fraction and mean foreground |error| of reconstructions and of prior
    samples; and the grid rows (real, reconstruction, prior) of each class."""
    generator = torch.Generator().manual_seed(seed)
    rows: list[dict[str, float]] = []
    grid: list[Tensor] = []
    network = model.generator_ema
    with torch.no_grad():
        for label in labels.unique().tolist():
            index = (labels == label).nonzero().flatten()
            background = from_uint8(images[index]).mean(0)
            index = index[torch.randperm(len(index), generator=generator)[:per_class]]
            x = from_uint8(images[index])
            c = torch.full((len(index),), label)
            mean, _ = model.encoder(x, c)
            reconstruction = network.generate(mean, c)
            prior = network.generate(torch.randn(mean.shape, generator=generator), c)
            foreground = ((x - background).abs() > threshold).to(x.dtype)
            pixels = foreground.sum().clamp_min(1.0)
            rec = float(((reconstruction - x).abs() * foreground).sum() / pixels)
            sample = float(((prior - x).abs() * foreground).sum() / pixels)
            rows.append(
                {
                    "class": label,
                    "foreground_fraction": float(foreground.mean()),
                    "reconstruction_l1": rec,
                    "prior_l1": sample,
                    "ratio": rec / max(sample, 1e-8),
                }
            )
            grid += [x, reconstruction, prior]
    return rows, grid


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkpoint", type=Path, help="a VAEStyleGAN Lightning checkpoint (.ckpt)")
    parser.add_argument("--data", required=True, help="a config whose data block names the images (the recipe's)")
    parser.add_argument("--data-dir", default=None, help="replaces the config's data_dir")
    parser.add_argument("--per-class", type=int, default=32, help="test images per class")
    parser.add_argument("--threshold", type=float, default=0.1, help="foreground: |x - class mean| above this")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--grid", type=Path, default=None, help="PNG: real / reconstruction / prior rows per class")
    args = parser.parse_args(argv)
    if not args.checkpoint.is_file():
        raise SystemExit(f"{args.checkpoint}: no such checkpoint (a VAEStyleGAN run's .ckpt)")
    model = VAEStyleGAN.load_from_checkpoint(args.checkpoint, map_location="cpu").eval()
    datamodule = datamodule_from_config(args.data, args.data_dir)
    datamodule.prepare_data()
    datamodule.setup("fit")
    images, labels = datamodule.load_split("test")
    rows, grid = foreground_errors(model, images, labels, args.per_class, args.threshold, args.seed)
    print(f"# {args.checkpoint}: foreground = |x - class mean| > {args.threshold}; {args.per_class} images per class")
    print("| class | foreground | reconstruction L1 | prior sample L1 | reconstruction / prior |")
    print("|---:|---:|---:|---:|---:|")
    for row in rows:
        print(
            f"| {row['class']} | {row['foreground_fraction']:.3f} | {row['reconstruction_l1']:.3f} | "
            f"{row['prior_l1']:.3f} | {row['ratio']:.2f} |"
        )
    mean_ratio = sum(r["ratio"] for r in rows) / len(rows)
    print(f"mean reconstruction / prior over classes: {mean_ratio:.2f}")
    if args.grid is not None:
        from torchvision.utils import save_image

        save_image(torch.cat(grid) * 0.5 + 0.5, args.grid, nrow=args.per_class, padding=1, pad_value=1)
        print(f"wrote {args.grid}")


if __name__ == "__main__":
    main()
