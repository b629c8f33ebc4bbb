"""How much a frozen encoder's features vary between frames of one Atari game, against their size.

    R=runs/atari_table; C=version_0/checkpoints/last.ckpt
    python -m palm_lightning.tools.feature_spread $R/palm_apt_s0/$C $R/simsiam_real_s0/$C $R/supervised_s0/$C \
        random:$R/palm_apt_s0/$C --game Boxing

Per encoder: the mean |feature| and the mean per-dimension std over ``--frames`` cached frames (every
second one of the first 2 × N). Why: AtariARI's probe feeds raw features to Adam at 3e-4 for ≤ 100
epochs, so an encoder whose features barely move within a game (std ≪ mean |f|) reads as uninformed
there though a linear map can decode it (``AtariStateProbe(standardize=True)``). ``random:X`` is X's
architecture untrained (torch seed ``--seed``, as the probe's ``random_init``).

And the effective rank of the within-game features, raw and standardized per dimension (the
participation ratio (Σλ)² / Σλ² of their covariance's eigenvalues: 1 when every frame moves the
features along one direction, the dimension when all directions vary alike). Why: standardizing
rescales each dimension but cannot bring back directions an encoder stopped varying along; an
encoder whose features vary along 1–2 directions within a game (ST-DIM trained on six games at
once: docs/results/atari.md) has little for a linear probe to read, whatever their scale.
"""

from __future__ import annotations

import argparse

import torch

from palm_lightning.datamodules.atari.frames import AtariFramesDataModule, load_collection
from palm_lightning.envs.latent_manifold import from_uint8
from palm_lightning.models.evaluation.frozen_encoder import FrozenEncoder


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


def effective_rank(features: torch.Tensor) -> float:
    """Participation ratio (Σλ)² / Σλ² of the covariance eigenvalues λ of ``features`` (N × D): from 1
    (one direction of variation) to min(N − 1, D) (all equal); 0 for features that never change."""
    centred = features - features.mean(0)
    eigenvalues = torch.linalg.svdvals(centred.double()) ** 2
    if float(eigenvalues.sum()) == 0.0:
        return 0.0
    return float(eigenvalues.sum() ** 2 / (eigenvalues**2).sum())


def within_game_ranks(encoder: FrozenEncoder, images: torch.Tensor) -> tuple[float, float]:
    """Effective rank of the encoder's features of ``images``, raw and with every dimension scaled to unit
    std (what ``AtariStateProbe(standardize=True)`` feeds its classifiers; constant dimensions stay 0)."""
    with torch.no_grad():
        features = encoder(images).double()
    std = features.std(0)
    standardized = (features - features.mean(0)) / torch.where(std > 0, std, torch.ones_like(std))
    return effective_rank(features), effective_rank(standardized)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("encoders", nargs="+", help="encoder checkpoints; random:X for X's architecture untrained")
    parser.add_argument("--game", default="Boxing")
    parser.add_argument("--frames", type=int, default=1000)
    parser.add_argument("--data-dir", default="data")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    images = game_frames(args.game, args.frames, args.data_dir)
    print(
        "| encoder | mean abs(f) | per-dim std | std / mean abs(f) | effective rank | standardized |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    for name in args.encoders:
        encoder = load_encoder(name, args.seed)
        size, std = spread(encoder, images)
        rank, standardized_rank = within_game_ranks(encoder, images)
        print(f"| {name} | {size:.4f} | {std:.4f} | {std / size:.3f} | {rank:.1f} | {standardized_rank:.1f} |")


if __name__ == "__main__":
    main()
