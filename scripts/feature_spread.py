"""How much a frozen encoder's features vary between frames of one Atari game, against their size.

    R=runs/atari_table; C=version_0/checkpoints/last.ckpt
    python scripts/feature_spread.py $R/palm_apt_s0/$C $R/simsiam_real_s0/$C $R/supervised_s0/$C \
        random:$R/palm_apt_s0/$C --game Boxing

Per encoder: the mean |feature| and the mean per-dimension std over ``--frames`` cached frames (every
second one of the first 2 × N). Why: AtariARI's probe feeds raw features to Adam at 3e-4 for ≤ 100
epochs, so an encoder whose features barely move within a game (std ≪ mean |f|) reads as uninformed
there though a linear map can decode it (``AtariStateProbe(standardize=True)``). ``random:X`` is X's
architecture untrained (torch seed ``--seed``, as the probe's ``random_init``).
"""

from __future__ import annotations

import argparse

import torch

from palm_lightning.datamodules.atari import AtariFramesDataModule, load_collection
from palm_lightning.envs.latent_manifold import from_uint8
from palm_lightning.models.frozen_encoder import FrozenEncoder


def game_frames(game: str, count: int, data_dir: str) -> torch.Tensor:
    """``count`` cached frames of ``game`` (every second one of the first ``2 × count``) in [-1, 1]."""
    data = AtariFramesDataModule(data_dir=data_dir, games=[game])
    frames = load_collection(data.cache_path(data.roms[0])).frames[: 2 * count : 2]
    return from_uint8(torch.from_numpy(frames).unsqueeze(1))


def load_encoder(name: str, seed: int) -> FrozenEncoder:
    """A frozen encoder from a file; ``random:X`` is X's architecture initialised under torch ``seed``."""
    torch.manual_seed(seed)
    return FrozenEncoder(name.removeprefix("random:"), name.startswith("random:"), None).eval()


def spread(encoder: FrozenEncoder, images: torch.Tensor) -> tuple[float, float]:
    """(mean |feature|, mean per-dimension std) of the encoder's features of ``images`` in [-1, 1]."""
    with torch.no_grad():
        features = encoder(images)
    return float(features.abs().mean()), float(features.std(0).mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("encoders", nargs="+", help="encoder checkpoints; random:X for X's architecture untrained")
    parser.add_argument("--game", default="Boxing")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    images = game_frames(args.game, args.frames, args.data_dir)
    print("| encoder | mean abs(f) | per-dim std | std / mean abs(f) |\n|---|---:|---:|---:|")
    for name in args.encoders:
        size, std = spread(load_encoder(name, args.seed), images)
        print(f"| {name} | {size:.4f} | {std:.4f} | {std / size:.3f} |")


if __name__ == "__main__":
    main()
